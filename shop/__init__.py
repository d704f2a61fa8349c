"""The demo shop: a catalogue, the interests customers tell it, and what it
gives back for each purpose (recommendations, a discount code, allergy-safe
suggestions). It stands for the company's own shop: it reads consent only
through the API's services (integrations.api), and tells the portal about its
personal data and its benefits through consents' registries (shop.apps)."""
