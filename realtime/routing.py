from django.urls import re_path

from .consumers import UploadsConsumer

# The detail page adds ?upload=<uuid>; the query string is not part of the matched path.
websocket_urlpatterns = [
    re_path(r"^ws/uploads/$", UploadsConsumer.as_asgi()),
]
