from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def portal(request: HttpRequest) -> dict:
    return {
        "CONTROLLER_NAME": settings.CONTROLLER_NAME,
        "CONTROLLER_EMAIL": settings.CONTROLLER_EMAIL,
        "CONTROLLER_ADDRESS": settings.CONTROLLER_ADDRESS,
        "DPO_NAME": settings.DPO_NAME,
        "DPO_EMAIL": settings.DPO_EMAIL,
    }
