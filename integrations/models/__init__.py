"""The API's models live in api.py, the webhooks' in webhooks.py, the
connected systems' in systems.py."""

from .api import *  # noqa: F403
from .systems import *  # noqa: F403
from .webhooks import *  # noqa: F403
