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
    # What computing it cost within the load: the counting thread's CPU time plus storing's
    # wall time (its share of the load is a bench figure).
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


# --- summaries: what the /analytics/ pages read instead of a million lines -------------------
# Each is a pure function of the lines (analytics/summaries.py rebuilds them set-based in SQL,
# all of them or the suppliers and materials an upload touched), so a page over them gives
# exactly what the same query over the lines gives.


class SpendMonth(models.Model):
    """Spend, quantity and line count per month of the order date, supplier, category and
    currency (`month` null: lines without an order date). The overview's spend and counts."""

    month = models.DateField(null=True, blank=True)
    supplier_id = models.BigIntegerField()
    category = models.CharField(max_length=200, blank=True)
    currency = models.CharField(max_length=3)
    spend = models.DecimalField(max_digits=40, decimal_places=10)
    quantity = models.DecimalField(max_digits=30, decimal_places=4)
    lines = models.BigIntegerField()
    last_day = models.DateField(null=True, blank=True)  # the latest order date in the group

    class Meta:
        indexes = [
            models.Index(fields=["currency", "month"], name="spendmonth_currency_month"),
            models.Index(fields=["supplier_id", "month"], name="spendmonth_supplier_month"),
            models.Index(fields=["category", "month"], name="spendmonth_category_month"),
        ]

    def __str__(self) -> str:
        return f"{self.month} {self.supplier_id} {self.category} {self.currency}"


class SupplierMonth(models.Model):
    """SpendMonth summed over categories: spend by supplier without reading every category."""

    month = models.DateField(null=True, blank=True)
    supplier_id = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    spend = models.DecimalField(max_digits=40, decimal_places=10)
    lines = models.BigIntegerField()

    class Meta:
        indexes = [
            models.Index(fields=["currency", "month"], name="suppliermonth_currency_month"),
            models.Index(fields=["supplier_id"], name="suppliermonth_supplier"),
        ]

    def __str__(self) -> str:
        return f"{self.month} {self.supplier_id} {self.currency}"


class CategoryMonth(models.Model):
    """SpendMonth summed over suppliers: spend by category and month, totals, currencies."""

    month = models.DateField(null=True, blank=True)
    category = models.CharField(max_length=200, blank=True)
    currency = models.CharField(max_length=3)
    spend = models.DecimalField(max_digits=40, decimal_places=10)
    lines = models.BigIntegerField()
    last_day = models.DateField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["currency", "month"], name="categorymonth_currency_month")]

    def __str__(self) -> str:
        return f"{self.month} {self.category} {self.currency}"


class MaterialTotal(models.Model):
    """MaterialMonth summed over months: how many materials, when no period is asked."""

    material_id = models.BigIntegerField()
    category = models.CharField(max_length=200, blank=True)
    currency = models.CharField(max_length=3)
    lines = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.material_id} {self.currency}"


class MaterialMonth(models.Model):
    """Line count per month, material and currency: how many materials a period bought."""

    month = models.DateField(null=True, blank=True)
    material_id = models.BigIntegerField()
    category = models.CharField(max_length=200, blank=True)
    currency = models.CharField(max_length=3)
    lines = models.BigIntegerField()

    class Meta:
        indexes = [
            models.Index(fields=["currency", "month"], name="materialmonth_currency_month"),
            models.Index(fields=["material_id"], name="materialmonth_material"),
        ]

    def __str__(self) -> str:
        return f"{self.month} {self.material_id} {self.currency}"


class LineOutlier(models.Model):
    """A line whose unit price is an outlier in its material and currency, with the
    statistics that make it one (analytics.selectors' definition, over all lines)."""

    line_id = models.BigIntegerField(primary_key=True)
    material_id = models.BigIntegerField(db_index=True)
    category = models.CharField(max_length=200, blank=True)
    currency = models.CharField(max_length=3)
    supplier_id = models.BigIntegerField(db_index=True)
    order_date = models.DateField(null=True, blank=True)
    median = models.FloatField()
    mad = models.FloatField()
    z_score = models.FloatField()

    class Meta:
        indexes = [
            models.Index(
                models.OrderBy(models.F("order_date"), descending=True, nulls_last=True),
                models.OrderBy(models.F("line_id"), descending=True),
                name="lineoutlier_newest",
            )
        ]

    def __str__(self) -> str:
        return f"line {self.line_id} z={self.z_score:.2f}"


class VarianceGroup(models.Model):
    """For the default variance period (the 90 days that end at the latest order date, and
    the 90 before): per supplier, material and currency bought in both, the quantity and spend
    of each period. Valid for every filter that keeps these groups whole and ends on the same
    day (SummaryState.variance_to)."""

    supplier_id = models.BigIntegerField(db_index=True)
    material_id = models.BigIntegerField(db_index=True)
    category = models.CharField(max_length=200, blank=True)
    currency = models.CharField(max_length=3)
    quantity = models.DecimalField(max_digits=30, decimal_places=4)
    spend = models.DecimalField(max_digits=40, decimal_places=10)
    previous_quantity = models.DecimalField(max_digits=30, decimal_places=4)
    previous_spend = models.DecimalField(max_digits=40, decimal_places=10)
    # spend - quantity x previous average, as analytics.selectors computes it (Python's
    # Decimal), so the pages sort and sum it in SQL and agree with the lines to the digit.
    variance = models.DecimalField(max_digits=80, decimal_places=50)

    class Meta:
        indexes = [models.Index(models.Func(models.F("variance"), function="abs").desc(), name="variancegroup_abs")]

    def __str__(self) -> str:
        return f"{self.supplier_id}/{self.material_id} {self.currency}"


class SummaryState(models.Model):
    """One row: whether the summaries may be read. `built_at` null: never built (or a
    refresh could not be queued): pages read the lines. `pending`: refreshes queued and not
    done: pages read the lines (and say the figures are updating) until it is back to 0."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    built_at = models.DateTimeField(null=True, blank=True)
    pending = models.IntegerField(default=0)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    variance_to = models.DateField(null=True, blank=True)
    # The default variance period's groups, counted and summed per currency (exact decimal
    # strings) when they are stored: the unfiltered page needs no pass over them.
    variance_count = models.IntegerField(default=0)
    variance_totals = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"built {self.built_at}, {self.pending} pending"
