from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """Browse pages (suppliers, materials, purchase orders, lines) and price analytics: reads
    of the loaded data, for every signed-in user."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "analytics"

    def ready(self) -> None:
        from . import receivers  # noqa: F401 - connects the lines_changed receiver
