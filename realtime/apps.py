from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    name = "realtime"

    def ready(self) -> None:
        from . import checks, signals  # noqa: F401 - registers the system check and the sign-out handler
