"""Signed webhooks: staff register endpoints (services.py, the admin in
integrations/admin_webhooks.py); every domain event (portal/events.py) that an
endpoint wants becomes a delivery through the one outbox (delivery.py),
signed per Standard Webhooks (signing.py) and sent without server-side
request forgery (net.py)."""
