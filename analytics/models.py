"""What the analytics keep of their own: each upload's quality score (the procurement data
itself lives in `ingestion`)."""

from __future__ import annotations

from django.db import models


class UploadQuality(models.Model):
    """An upload's quality score, its dimensions (share in %) and the rules that cost it
    points (ingestion/quality.py), written when its load completes; its price outliers are
    checked just after, in their own task (analytics/scoring.py), which then writes the
    final score (`prices_checked`)."""

    upload = models.OneToOneField(
        "ingestion.Upload", on_delete=models.CASCADE, primary_key=True, related_name="quality"
    )
    score = models.DecimalField(max_digits=4, decimal_places=1, null=True, blank=True)
    grade = models.CharField(max_length=1, blank=True)
    dimensions = models.JSONField(default=dict, blank=True)
    rules = models.JSONField(default=list, blank=True)
    # What computing it cost within the load (its share of the load is a bench figure).
    seconds = models.FloatField(default=0)
    # What each rule counted ({rule: [measured, failed]}), for the price check to finish it.
    counts = models.JSONField(default=dict, blank=True)
    prices_checked = models.BooleanField(default=True)
    price_check_seconds = models.FloatField(default=0)  # the outlier task's time, after the load
    computed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.grade or '-'} {self.score}"

    def as_dict(self) -> dict:
        return {
            "score": float(self.score) if self.score is not None else None,
            "grade": self.grade or None,
            "dimensions": self.dimensions,
        }

    @property
    def top_rules(self) -> list[dict]:
        return self.rules[:3]
