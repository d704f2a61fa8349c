"""The privacy analysts' group."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

ANALYSTS = "Privacy analysts"


def analyst_group_ensure() -> Group:
    """The group whose members see the dashboard and its exports, and hold no
    other permission: no admin list that names a person opens to them. Made by
    migration 0001; this makes it again if it was deleted, and takes back any
    permission added to it since."""
    group, _created = Group.objects.get_or_create(name=ANALYSTS)
    permission = Permission.objects.get(content_type__app_label="insight", codename="view_figures")
    group.permissions.set([permission])
    return group
