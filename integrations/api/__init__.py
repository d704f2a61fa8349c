"""The versioned API under /api/v1/ (django-ninja): API keys with scopes, the
consent reads and writes other systems need, the audience of a purpose with
cursor pagination, the inventory; its OpenAPI 3.1 document at /api/schema/ and
a page that reads it at /api/docs/. Errors are RFC 9457 problem documents.

- auth.py: the key, its scope and its rate limit, before any operation runs.
- services.py: keys (created and revoked by staff, audited) and the call log.
- selectors.py: the reads (a person's consents, an audience, its changes).
- views.py: the operations; docs.py: the readable page of the document.
"""
