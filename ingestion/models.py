"""Procurement data (suppliers, materials, purchase orders and their lines) and the uploads
that feed it. Money and quantities are Decimals; currencies are ISO 4217 codes."""

import uuid
from typing import Any

from django.conf import settings
from django.db import models


def default_currency() -> str:
    return settings.INGEST_DEFAULT_CURRENCY


class Supplier(models.Model):
    """`key` is the identity: the supplier code when the file has one, else `~` plus the
    normalized name, so "ACME Ltd." and "acme  ltd" are one supplier."""

    key = models.CharField(max_length=300, unique=True)
    code = models.CharField(max_length=100, blank=True)
    name = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The upload whose load created it: a cancelled, failed or reverted upload removes what it
    # created that nothing else uses (`dimensions.remove_unused`). No database constraint:
    # set in the batch's own set-based upsert.
    created_by_upload = models.ForeignKey(
        "Upload", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_constraint=False
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name or self.code


class Material(models.Model):
    """Identity is the material code, else the normalized description and unit of measure."""

    key = models.CharField(max_length=600, unique=True)
    code = models.CharField(max_length=100, blank=True)
    description = models.CharField(max_length=500, blank=True)
    category = models.CharField(max_length=200, blank=True)
    unit_of_measure = models.CharField(max_length=50, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The upload whose load created it: a cancelled, failed or reverted upload removes what it
    # created that nothing else uses (`dimensions.remove_unused`). No database constraint:
    # set in the batch's own set-based upsert.
    created_by_upload = models.ForeignKey(
        "Upload", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_constraint=False
    )

    class Meta:
        ordering = ["code", "description"]

    def __str__(self) -> str:
        return self.code or self.description


class PurchaseOrder(models.Model):
    po_number = models.CharField(max_length=100, unique=True)
    supplier = models.ForeignKey(Supplier, on_delete=models.PROTECT, related_name="purchase_orders")
    order_date = models.DateField(null=True, blank=True)
    currency = models.CharField(max_length=3, default=default_currency)
    created_at = models.DateTimeField(auto_now_add=True)
    # The upload whose load created it: a cancelled, failed or reverted upload removes what it
    # created that nothing else uses (`dimensions.remove_unused`). No database constraint:
    # set in the batch's own set-based upsert.
    created_by_upload = models.ForeignKey(
        "Upload", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_constraint=False
    )

    class Meta:
        ordering = ["po_number"]

    def __str__(self) -> str:
        return self.po_number


class PurchaseOrderLine(models.Model):
    """One observed price. `upload` is the upload that last wrote the line."""

    # No index of its own: `unique_po_line` (purchase_order, line_number) serves every lookup
    # by order, and each index is one more insert per line a load writes.
    purchase_order = models.ForeignKey(PurchaseOrder, on_delete=models.CASCADE, related_name="lines", db_index=False)
    line_number = models.PositiveIntegerField()
    material = models.ForeignKey(Material, on_delete=models.PROTECT, related_name="lines")
    quantity = models.DecimalField(max_digits=20, decimal_places=4)
    unit_price = models.DecimalField(max_digits=20, decimal_places=6)
    total_price = models.DecimalField(max_digits=22, decimal_places=4, null=True, blank=True)
    currency = models.CharField(max_length=3, default=default_currency)
    # No database constraint: a load writes hundreds of thousands of lines at once and the
    # upload is bookkeeping, not part of the line's identity; Django still nulls it on delete.
    upload = models.ForeignKey(
        "Upload", on_delete=models.SET_NULL, null=True, blank=True, related_name="lines", db_constraint=False
    )
    # A spend line: the upload that last wrote it gave a value for every row (a payments
    # file's quantity 1, one PO number), so it records money paid, not a priced PO line.
    # Set by `spend_lines` after a load or a revert; the line writers leave it to the
    # database default.
    spend = models.BooleanField(db_default=False, default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["purchase_order_id", "line_number"]
        constraints = [
            models.UniqueConstraint(fields=["purchase_order", "line_number"], name="unique_po_line"),
        ]
        # Few lines are spend lines: a priced load finds the ones it overwrote at once.
        indexes = [models.Index(fields=["upload"], condition=models.Q(spend=True), name="line_spend_upload")]

    def __str__(self) -> str:
        return f"{self.purchase_order_id}/{self.line_number}"


class LineVersion(models.Model):
    """One state of a line, from `valid_from` until `valid_to` (open: its current state).

    The lines table holds the current state, so every query on lines keeps working; this
    table keeps every state a change, a review or a revert replaced, and the states since,
    so no price is ever lost. A line written once and never changed has no version: its row
    is its one state (`line_history.implicit_version`). Written set-based by the line writers
    in the same statement (PostgreSQL) or transaction (SQLite) as the lines. The line's
    identity (`purchase_order`, `line_number`) is kept beside `line_id` so the history
    outlives a line a revert removes."""

    class Kind(models.TextChoices):
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        REVERTED = "reverted", "Reverted"
        REMOVED = "removed", "Removed"

    # Plain ids, no database constraints: versions are written by the hundred thousand in
    # the load's own statement, and they must outlive a line (or an upload) that goes.
    line_id = models.BigIntegerField(db_index=True)
    purchase_order_id = models.BigIntegerField()
    line_number = models.PositiveIntegerField()
    material_id = models.BigIntegerField(null=True, blank=True)
    quantity = models.DecimalField(max_digits=20, decimal_places=4, null=True, blank=True)
    unit_price = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    total_price = models.DecimalField(max_digits=22, decimal_places=4, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    order_date = models.DateField(null=True, blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CREATED)
    valid_from = models.DateTimeField()
    valid_to = models.DateTimeField(null=True, blank=True)
    # Indexed by `lineversion_upload_line` (upload, line_id), which serves a lookup by upload.
    upload = models.ForeignKey(
        "Upload",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="line_versions",
        db_constraint=False,
        db_index=False,
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="line_versions",
        db_constraint=False,
    )

    class Meta:
        ordering = ["line_id", "valid_from", "id"]
        indexes = [models.Index(fields=["upload", "line_id"], name="lineversion_upload_line")]

    def __str__(self) -> str:
        return f"line {self.line_id} from {self.valid_from:%Y-%m-%d %H:%M}"


class PurchaseOrderChange(models.Model):
    """A purchase order's own fields (order date, currency) as a load changed them: the values
    it replaced beside the ones it wrote, so no date is ever lost. Written set-based by the
    line writers in the lines' own transaction (`po_changes`); `filled` when the order had no
    date and the file brings one, `updated` when it replaces one, `reverted` when a revert
    put the old values back."""

    class Kind(models.TextChoices):
        FILLED = "filled", "Filled"
        UPDATED = "updated", "Updated"
        REVERTED = "reverted", "Reverted"

    purchase_order = models.ForeignKey(
        PurchaseOrder, on_delete=models.CASCADE, related_name="changes", db_constraint=False
    )
    old_order_date = models.DateField(null=True, blank=True)
    new_order_date = models.DateField(null=True, blank=True)
    old_currency = models.CharField(max_length=3, blank=True)
    new_currency = models.CharField(max_length=3, blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.UPDATED)
    changed_at = models.DateTimeField()
    upload = models.ForeignKey(
        "Upload", on_delete=models.SET_NULL, null=True, blank=True, related_name="po_changes", db_constraint=False
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
    )

    class Meta:
        ordering = ["purchase_order_id", "changed_at", "id"]
        indexes = [models.Index(fields=["upload"], name="pochange_upload")]

    def __str__(self) -> str:
        return f"PO {self.purchase_order_id}: {self.old_order_date} -> {self.new_order_date}"


class Upload(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        CANCELLING = "cancelling", "Cancelling"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        NEEDS_MAPPING = "needs_mapping", "Needs mapping"
        # The file would change existing lines: it waits, nothing written, for its owner's decisions.
        AWAITING_REVIEW = "awaiting_review", "Awaiting review"

    class OnExisting(models.TextChoices):
        """What a load does with a line that exists with other values."""

        REVIEW = "review", "Ask me (review)"
        UPDATE = "update", "Take the file's values"
        KEEP = "keep", "Keep the existing values"

    ACTIVE_STATUSES = (Status.QUEUED, Status.PROCESSING, Status.CANCELLING)
    # Awaiting review counts as finished: its run is over (no worker, no lock), until Load
    # queues it again.
    FINISHED_STATUSES = (Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.AWAITING_REVIEW)
    # Which uploads Cancel and Retry apply to: the card's buttons and the services both ask.
    CANCELLABLE_STATUSES = (Status.QUEUED, Status.PROCESSING, Status.AWAITING_REVIEW)
    RETRYABLE_STATUSES = (Status.FAILED, Status.CANCELLED)
    # Stopped for its owner (no worker on it, nothing written): not active, not finished.
    WAITING_STATUSES = (Status.NEEDS_MAPPING,)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="uploads")
    file = models.FileField(upload_to="uploads/%Y/%m/%d/", max_length=500)
    original_name = models.CharField(max_length=255)
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    # Options chosen at upload time.
    # The mapping given with the upload, {file header: canonical field}: it wins over the guesses.
    explicit_header_to_field = models.JSONField(
        default=dict, blank=True, help_text="The mapping given with the upload: {file header: canonical field}."
    )
    # What the load used, {canonical field: file header}: the given mapping plus the guesses.
    resolved_field_to_header = models.JSONField(
        default=dict, blank=True, help_text="The columns the load used: {canonical field: file header}."
    )
    day_first = models.BooleanField(default=False)
    on_existing = models.CharField(max_length=10, choices=OnExisting.choices, default=OnExisting.UPDATE)
    strict = models.BooleanField(default=False)
    # The mapping step (ingestion/suggestions.py): what the worker made of the columns
    # (headers, samples, suggestions, the first rows for the preview), the options chosen
    # on the mapping form, and the profile used.
    mapping_plan = models.JSONField(default=dict, blank=True)
    decimal_comma = models.BooleanField(default=False)
    currency = models.CharField(max_length=3, blank=True, help_text="Default currency; blank: INGEST_DEFAULT_CURRENCY.")
    # {field: value} for columns a file lacks (a payments file's quantity 1): its lines are spend lines.
    constants = models.JSONField(default=dict, blank=True)
    profile = models.ForeignKey(
        "MappingProfile", on_delete=models.SET_NULL, null=True, blank=True, related_name="uploads"
    )
    profile_note = models.TextField(blank=True, help_text="How the file differed from its profile.")
    # Progress: the row always holds the truth, whatever a socket may have missed.
    total_rows = models.PositiveIntegerField(null=True, blank=True)
    processed_rows = models.PositiveIntegerField(default=0)
    imported_rows = models.PositiveIntegerField(default=0)
    rejected_rows = models.PositiveIntegerField(default=0)
    warning_count = models.PositiveIntegerField(default=0)
    created_suppliers = models.PositiveIntegerField(default=0)
    created_materials = models.PositiveIntegerField(default=0)
    created_purchase_orders = models.PositiveIntegerField(default=0)
    created_lines = models.PositiveIntegerField(default=0)
    updated_lines = models.PositiveIntegerField(default=0)
    unchanged_lines = models.PositiveIntegerField(default=0)
    kept_lines = models.PositiveIntegerField(default=0)
    # While awaiting review: {new, changed, unchanged, rejected, conflicts, pending}.
    review_summary = models.JSONField(default=dict, blank=True)
    reverted_at = models.DateTimeField(null=True, blank=True)
    # A completed upload of a file with the same SHA-256, found when this one was created.
    same_file_as = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_constraint=False
    )
    error_message = models.TextField(blank=True)
    task_id = models.CharField(max_length=255, blank=True)
    # Microseconds since the epoch of the last state change: events carry it so a browser
    # never lets an older fragment overwrite a newer one.
    seq = models.BigIntegerField(default=0)
    # Written by the running task; a stale heartbeat means its worker died.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # Runs that died holding the lease (their worker killed) since the upload was last queued
    # by its owner: at INGEST_MAX_ATTEMPTS the upload fails instead of stopping workers forever.
    crashed_runs = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # Not stored: while the line writer finishes (SQLite's final merge of the staged lines,
    # one transaction), the pipeline sets how far it got here and the card shows it; the
    # row meanwhile shows every read row processed.
    saving_percent: int | None = None
    # Not stored: `ingest --dry-run` runs the pipeline with a writer that writes no line
    # (`line_writers.DryRunWriter`), inside a transaction it rolls back.
    dry_run: bool = False
    dry_run_orders: Any = None  # not stored: a dry run's orders with their values (`dry_run`)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="upload_owner_recent")]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED_STATUSES

    @property
    def can_cancel(self) -> bool:
        """Cancel applies until the upload ends; one already cancelling has nothing left to ask."""
        return self.status in self.CANCELLABLE_STATUSES

    @property
    def can_retry(self) -> bool:
        """Only an upload that ended without loading can be queued again."""
        return self.status in self.RETRYABLE_STATUSES

    @property
    def is_waiting(self) -> bool:
        return self.status in self.WAITING_STATUSES

    @property
    def default_currency(self) -> str:
        return self.currency or settings.INGEST_DEFAULT_CURRENCY

    @property
    def percent(self) -> int:
        if self.status == self.Status.COMPLETED:
            return 100
        if not self.total_rows:
            return 0
        return min(100, int(self.processed_rows * 100 / self.total_rows))

    @property
    def elapsed_seconds(self) -> float | None:
        if not self.started_at:
            return None
        from django.utils import timezone

        end = self.finished_at or timezone.now()
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def rows_per_second(self) -> float | None:
        elapsed = self.elapsed_seconds
        if not elapsed or not self.processed_rows:
            return None
        return self.processed_rows / elapsed

    @property
    def eta_seconds(self) -> float | None:
        rate = self.rows_per_second
        if not rate or not self.total_rows or not self.is_active:
            return None
        return max(0.0, (self.total_rows - self.processed_rows) / rate)


class MappingProfile(models.Model):
    """A sender's format: the mapping and options chosen once, found again by the file's
    header signature (its set of normalized headers). Shared by every user."""

    name = models.CharField(max_length=100, unique=True)
    signature = models.CharField(max_length=64, db_index=True, help_text="SHA-256 of the sorted normalized headers.")
    headers = models.JSONField(default=list, help_text="The normalized headers of the file it was made from.")
    # {normalized header: canonical field, or "" for a column ignored}
    mapping = models.JSONField(default=dict)
    day_first = models.BooleanField(default=False)
    decimal_comma = models.BooleanField(default=False)
    currency = models.CharField(max_length=3, blank=True)
    constants = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="mapping_profiles"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_upload = models.ForeignKey(
        "Upload", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_constraint=False
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RowIssue(models.Model):
    class Severity(models.TextChoices):
        ERROR = "error", "Error"
        WARNING = "warning", "Warning"

    upload = models.ForeignKey(Upload, on_delete=models.CASCADE, related_name="issues")
    row_number = models.PositiveIntegerField(
        null=True, blank=True, help_text="As a spreadsheet shows it; header = row 1."
    )
    column = models.CharField(max_length=255, blank=True)
    value = models.TextField(blank=True)
    message = models.TextField()
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.ERROR)

    class Meta:
        ordering = ["row_number", "id"]
        indexes = [models.Index(fields=["upload", "severity", "row_number"], name="rowissue_upload_sev_row")]

    def __str__(self) -> str:
        return f"row {self.row_number} {self.column}: {self.message}"


class StagedLine(models.Model):
    """SQLite only: lines an upload has validated but not yet merged. SQLite allows one
    writer at a time, so batches commit here (progress stays visible) and the lines table
    changes only in the final merge transaction. On PostgreSQL lines are never staged: the
    TransactionLineWriter writes them into the lines table batch by batch, inside one
    transaction that commits at the end. Either way a cancelled or failed upload leaves the
    lines table exactly as it was."""

    # No database constraint: the staging table is write-heavy scratch space, and a
    # foreign-key check per copied row would cost more than the whole copy.
    upload = models.ForeignKey(Upload, on_delete=models.CASCADE, related_name="staged_lines", db_constraint=False)
    purchase_order_id = models.BigIntegerField()
    line_number = models.PositiveIntegerField()
    material_id = models.BigIntegerField()
    quantity = models.DecimalField(max_digits=20, decimal_places=4)
    unit_price = models.DecimalField(max_digits=20, decimal_places=6)
    total_price = models.DecimalField(max_digits=22, decimal_places=4, null=True, blank=True)
    currency = models.CharField(max_length=3)
    order_date = models.DateField(null=True, blank=True)  # the row's, for the review's `newer` rule
    source_row = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"staged {self.purchase_order_id}/{self.line_number} of {self.upload_id}"


class ProposedChange(models.Model):
    """A line a file would change, old and new values side by side, and its owner's decision
    ('' while none). Written set-based by the diff of each batch (`review`); a later pass
    over the same file updates the row, and resets the decision when the line or the
    incoming values moved since (a stale review asks again)."""

    class Decision(models.TextChoices):
        PENDING = "", "Undecided"
        TAKE = "take", "Take incoming"
        KEEP = "keep", "Keep existing"

    upload = models.ForeignKey(Upload, on_delete=models.CASCADE, related_name="proposed_changes", db_constraint=False)
    line_id = models.BigIntegerField()
    purchase_order_id = models.BigIntegerField()
    line_number = models.PositiveIntegerField()
    supplier_id = models.BigIntegerField(null=True, blank=True)
    old_material_id = models.BigIntegerField()
    new_material_id = models.BigIntegerField()
    old_quantity = models.DecimalField(max_digits=20, decimal_places=4)
    new_quantity = models.DecimalField(max_digits=20, decimal_places=4)
    old_unit_price = models.DecimalField(max_digits=20, decimal_places=6)
    new_unit_price = models.DecimalField(max_digits=20, decimal_places=6)
    old_total_price = models.DecimalField(max_digits=22, decimal_places=4, null=True, blank=True)
    new_total_price = models.DecimalField(max_digits=22, decimal_places=4, null=True, blank=True)
    old_currency = models.CharField(max_length=3)
    new_currency = models.CharField(max_length=3)
    old_order_date = models.DateField(null=True, blank=True)
    new_order_date = models.DateField(null=True, blank=True)
    price_change_percent = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    quantity_change_percent = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    source_row = models.PositiveIntegerField(null=True, blank=True)
    decision = models.CharField(max_length=4, choices=Decision.choices, default="", blank=True)
    seen = models.BooleanField(default=True)

    class Meta:
        ordering = ["purchase_order_id", "line_number"]
        constraints = [models.UniqueConstraint(fields=["upload", "line_id"], name="unique_proposed_line")]

    def __str__(self) -> str:
        return f"{self.line_id}: {self.old_unit_price} -> {self.new_unit_price}"
