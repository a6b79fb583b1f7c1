"""ASGI entry point: HTTP goes to Django behind the body limit, websockets to Channels behind
auth and an Origin check."""

import os
import sys

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# The app serves its own few static files (htmx, CSS, a little JS): no CDN, no extra server.
django_asgi_app = ASGIStaticFilesHandler(get_asgi_application())

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from config.body_limit import BodyLimitMiddleware, install_daphne_guard  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402

if "daphne.server" in sys.modules:  # served by daphne: refuse oversize bodies as they arrive
    install_daphne_guard()

application = ProtocolTypeRouter(
    {
        "http": BodyLimitMiddleware(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
