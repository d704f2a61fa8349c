"""The API's models live in api.py, the webhooks' in webhooks.py."""

from .api import *  # noqa: F403
from .webhooks import *  # noqa: F403
