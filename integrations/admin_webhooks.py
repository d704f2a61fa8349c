"""The admin of webhook endpoints and deliveries."""
