from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """Browse pages (suppliers, materials, purchase orders, lines) and price analytics: reads
    of the loaded data, for every signed-in user; and each upload's quality score, finished
    when its lines are committed (scoring.py, on ingestion's `lines_changed`)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "analytics"

    def ready(self) -> None:
        from ingestion.signals import lines_changed

        from . import receivers  # noqa: F401 - connects the summaries' lines_changed receiver
        from .scoring import score_loaded_upload

        lines_changed.connect(score_loaded_upload, dispatch_uid="analytics.scoring.score_loaded_upload")
