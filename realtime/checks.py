"""System checks for the websocket's security."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security)
def allowed_hosts_wildcard(app_configs, **kwargs) -> list[Warning]:
    """The websocket accepts a page whose Origin is one of ALLOWED_HOSTS (Channels'
    AllowedHostsOriginValidator): a wildcard lets any site's page open a socket with the
    visitor's session and cancel their uploads."""
    if "*" in settings.ALLOWED_HOSTS:
        return [
            Warning(
                "DJANGO_ALLOWED_HOSTS contains '*', which also disables the websocket's Origin check.",
                hint="List the host names the site is served under, e.g. DJANGO_ALLOWED_HOSTS=intake.example.com.",
                id="realtime.W001",
            )
        ]
    return []
