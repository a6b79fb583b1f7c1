from django.urls import path

from .consumers import UploadsConsumer

websocket_urlpatterns = [
    path("ws/uploads/", UploadsConsumer.as_asgi()),
]
