"""Read-only queries. Views, the websocket consumer and commands read uploads through these,
so all of them apply the same ownership rule."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db.models import (
    Case,
    Count,
    DateTimeField,
    Exists,
    F,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Abs
from django.urls import reverse

from . import line_history, quality
from .models import (
    LineVersion,
    MappingProfile,
    Material,
    ProposedChange,
    PurchaseOrder,
    PurchaseOrderChange,
    PurchaseOrderLine,
    RowIssue,
    Supplier,
    Upload,
)


def uploads_for_user(*, user) -> QuerySet[Upload]:
    """Everything a user may see: their own uploads, newest first."""
    if not getattr(user, "is_authenticated", False):
        return Upload.objects.none()
    return Upload.objects.filter(owner_id=user.pk).order_by("-created_at")


def active_uploads_for_user(*, user) -> QuerySet[Upload]:
    """Unfinished: running, queued, or waiting for its owner (its mapping)."""
    return uploads_for_user(user=user).filter(status__in=Upload.ACTIVE_STATUSES + Upload.WAITING_STATUSES)


def upload_for_user(*, user, upload_id) -> Upload | None:
    """The user's upload with this id, or None (unknown, malformed or someone else's)."""
    try:
        return uploads_for_user(user=user).get(pk=upload_id)
    except (Upload.DoesNotExist, ValueError, TypeError, ValidationError):
        return None


def row_issues(
    *,
    upload: Upload,
    severity: str | None = None,
    rule: str | None = None,
    message: str | None = None,
    column: str | None = None,
) -> QuerySet[RowIssue]:
    """The upload's row issues; `rule` (a quality rule's key) keeps those that show it;
    `message` and `column` keep one group of issue_groups()."""
    issues = RowIssue.objects.filter(upload=upload).order_by("row_number", "id")
    if severity:
        issues = issues.filter(severity=severity)
    if message is not None:
        issues = issues.filter(message=message)
    if column is not None:
        issues = issues.filter(column=column)
    if rule:
        issues = quality.issues_of_rule(issues, rule=rule)
    return issues


def issue_groups(*, upload: Upload, limit: int = 100) -> list[dict]:
    """The upload's row issues grouped by message and column, most frequent first, with a
    count and an example value: "5,732 x Date not recognised, column PO Sent to Vendor Date".
    None when no message repeats (the list below says it all)."""
    groups = (
        RowIssue.objects.filter(upload=upload)
        .values("severity", "message", "column")
        .annotate(count=Count("id"), example=Min("value"), first_row=Min("row_number"))
        .order_by("-count", "message", "column")[:limit]
    )
    found: list[dict[str, Any]] = [dict(group) for group in groups]
    return found if any(int(group["count"]) > 1 for group in found) else []


def upload_quality(*, upload: Upload) -> dict | None:
    """`quality: {score, grade, dimensions}` of status.json and `ingest --json` (None until
    the upload has completed)."""
    # The score is the analytics' (its receiver of signals.lines_changed stores it): read
    # through the relation it declares, never by importing it.
    try:
        found = Upload.objects.select_related("quality").get(pk=upload.pk).quality
    except (ObjectDoesNotExist, AttributeError):
        return None
    return found.as_dict()


def score_pending(*, upload: Upload) -> bool:
    """Whether a completed upload's quality score is still being finished (its price
    outliers are checked by a task just after the load): what follows an upload to its
    final figures (`ingest`) waits for it."""
    try:
        return not Upload.objects.select_related("quality").get(pk=upload.pk).quality.prices_checked
    except (ObjectDoesNotExist, AttributeError):
        return False


def upload_summary(*, upload: Upload) -> dict:
    """The machine-readable state of an upload: `manage.py ingest --json`, status.json."""
    summary: dict = {
        "upload_id": str(upload.id),
        "file": upload.original_name,
        "status": upload.status,
        "total_rows": upload.total_rows,
        "processed_rows": upload.processed_rows,
        "percent": upload.percent,
        "imported_rows": upload.imported_rows,
        "rejected_rows": upload.rejected_rows,
        "warnings": upload.warning_count,
        "created": {
            "suppliers": upload.created_suppliers,
            "materials": upload.created_materials,
            "purchase_orders": upload.created_purchase_orders,
            "lines": upload.created_lines,
        },
        "updated_lines": upload.updated_lines,
        "changes": {
            "created": upload.created_lines,
            "updated": upload.updated_lines,
            "unchanged": upload.unchanged_lines,
            "kept": upload.kept_lines,
        },
        "on_existing": upload.on_existing,
        "reverted": upload.reverted_at is not None,
        "error": upload.error_message or None,
        "quality": upload_quality(upload=upload),
        "profile": upload.profile.name if upload.profile_id and upload.profile else None,
        **(
            {
                "missing": (upload.mapping_plan or {}).get("missing", []),
                "ambiguous": (upload.mapping_plan or {}).get("ambiguous", {}),
            }
            if upload.status == Upload.Status.NEEDS_MAPPING
            else {}
        ),
    }
    if upload.status == Upload.Status.AWAITING_REVIEW:
        summary["review"] = {
            "changed": upload.review_summary.get("changed", 0),
            "conflicts": upload.review_summary.get("conflicts", 0),
            "new": upload.review_summary.get("new", 0),
            "unchanged": upload.review_summary.get("unchanged", 0),
            "pending": upload.review_summary.get("pending", 0),
            "url": reverse("upload-review", args=[upload.pk]),
        }
    return summary


# --- line history -------------------------------------------------------------------------
# Lines are the organization's shared data: every signed-in user may read any line and its
# history (README: who may change shared prices).


def order_changes(*, purchase_order_id) -> list[PurchaseOrderChange]:
    """A purchase order's date and currency changes, newest first, with their upload and user."""
    return list(
        PurchaseOrderChange.objects.filter(purchase_order_id=purchase_order_id)
        .select_related("upload", "user")
        .order_by("-changed_at", "-id")
    )


def line_with_history(*, line_id) -> tuple[PurchaseOrderLine | None, list[dict]]:
    """A line (None once a revert removed it) and its versions, oldest first: values, when,
    kind, and the upload and user that wrote each; a line never changed has one, its own row
    (`line_history.implicit_version`). (None, []) for an id no line ever had."""
    try:
        line_id = int(line_id)
    except (TypeError, ValueError):
        return None, []
    line = (
        PurchaseOrderLine.objects.select_related("purchase_order__supplier", "material", "upload__owner")
        .filter(pk=line_id)
        .first()
    )
    versions = list(
        LineVersion.objects.filter(line_id=line_id).select_related("upload", "user").order_by("valid_from", "id")
    )
    if not versions and line is not None:  # written once, never changed: its row is its version
        versions = [line_history.implicit_version(line)]
    materials = Material.objects.in_bulk({v.material_id for v in versions if v.material_id})
    history = []
    for version in versions:
        material = materials.get(version.material_id) if version.material_id else None
        history.append(
            {
                "version": version,
                "kind": version.kind,
                "valid_from": version.valid_from,
                "valid_to": version.valid_to,
                "quantity": version.quantity,
                "unit_price": version.unit_price,
                "total_price": version.total_price,
                "currency": version.currency,
                "order_date": version.order_date,
                "material": str(material) if material else "",
                "material_id": version.material_id,
                "upload": version.upload,
                "user": version.user.get_username() if version.user else "",
            }
        )
    return line, history


def lines_written_by(*, upload: Upload) -> QuerySet:
    """The states an upload wrote, one per line it created or changed, in line order: its
    versions, and the lines it created that have none yet (`line_history`). Rows are dicts:
    line, seq, number, order, kind_value, kind_label, qty, price, cur, until (the names
    differ from the models' so that both sides of the union are annotations, in one order).
    A page of them gets its PO numbers from `with_po_numbers`: joined here, every row of a
    1M-line upload would be joined before the page is cut."""
    labels = Case(*(When(kind=kind, then=Value(str(label))) for kind, label in LineVersion.Kind.choices))
    columns = ("line", "seq", "number", "order", "kind_value", "kind_label", "qty", "price", "cur", "until")
    versions = (
        LineVersion.objects.filter(upload=upload)
        .annotate(
            line=F("line_id"),
            seq=F("id"),
            number=F("line_number"),
            order=F("purchase_order_id"),
            kind_value=F("kind"),
            kind_label=labels,
            qty=F("quantity"),
            price=F("unit_price"),
            cur=F("currency"),
            until=F("valid_to"),
        )
        .values(*columns)
    )
    created = (
        PurchaseOrderLine.objects.filter(upload=upload)
        .exclude(Exists(LineVersion.objects.filter(line_id=OuterRef("pk"))))
        .annotate(
            line=F("id"),
            seq=Value(0),
            number=F("line_number"),
            order=F("purchase_order_id"),
            # As `line_history.implicit_version` tells them: created unless changed while history was off.
            kind_value=Case(
                When(created_at=F("updated_at"), then=Value(LineVersion.Kind.CREATED.value)),
                default=Value(LineVersion.Kind.UPDATED.value),
            ),
            kind_label=Case(
                When(created_at=F("updated_at"), then=Value(str(LineVersion.Kind.CREATED.label))),
                default=Value(str(LineVersion.Kind.UPDATED.label)),
            ),
            qty=F("quantity"),
            price=F("unit_price"),
            cur=F("currency"),
            until=Value(None, output_field=DateTimeField()),
        )
        .values(*columns)
    )
    # No ORDER BY inside a union's parts (the models' default ordering): SQLite refuses it.
    return versions.order_by().union(created.order_by(), all=True).order_by("line", "seq")


def with_po_numbers(*, rows) -> list[dict]:
    """`lines_written_by` rows (a page of them), each with its `po_number`."""
    rows = list(rows)
    numbers = dict(PurchaseOrder.objects.filter(pk__in={row["order"] for row in rows}).values_list("pk", "po_number"))
    return [{**row, "po_number": numbers.get(row["order"], "")} for row in rows]


# --- review -------------------------------------------------------------------------------

REVIEW_SORTS = {
    "po": ("purchase_order_id", "line_number"),
    "change": ("-abs_change", "purchase_order_id", "line_number"),
    "-change": ("abs_change", "purchase_order_id", "line_number"),
    "supplier": ("supplier_name", "purchase_order_id", "line_number"),
}


def proposed_changes(
    *,
    upload: Upload,
    supplier_id: int | None = None,
    direction: str | None = None,
    min_percent: Decimal | None = None,
    max_percent: Decimal | None = None,
    sort: str = "po",
) -> QuerySet[ProposedChange]:
    """An awaiting upload's proposed changes, filtered (supplier, price up or down, size of
    the price change in percent) and sorted; each with its PO number, supplier name and
    both materials' names."""
    changes = ProposedChange.objects.filter(upload=upload)
    if supplier_id:
        changes = changes.filter(supplier_id=supplier_id)
    if direction == "up":
        changes = changes.filter(new_unit_price__gt=F("old_unit_price"))
    elif direction == "down":
        changes = changes.filter(new_unit_price__lt=F("old_unit_price"))
    changes = changes.annotate(abs_change=Abs("price_change_percent"))
    if min_percent is not None:
        changes = changes.filter(abs_change__gte=min_percent)
    if max_percent is not None:
        changes = changes.filter(abs_change__lte=max_percent)
    return changes.annotate(
        po_number=Subquery(PurchaseOrder.objects.filter(pk=OuterRef("purchase_order_id")).values("po_number")[:1]),
        supplier_name=Subquery(Supplier.objects.filter(pk=OuterRef("supplier_id")).values("name")[:1]),
        old_material=Subquery(Material.objects.filter(pk=OuterRef("old_material_id")).values("code")[:1]),
        new_material=Subquery(Material.objects.filter(pk=OuterRef("new_material_id")).values("code")[:1]),
    ).order_by(*REVIEW_SORTS.get(sort, REVIEW_SORTS["po"]))


def review_suppliers(*, upload: Upload) -> list[tuple[int, str]]:
    """The suppliers of an awaiting upload's proposed changes, for its filter."""
    ids = ProposedChange.objects.filter(upload=upload).values("supplier_id").distinct()
    return list(Supplier.objects.filter(pk__in=ids).order_by("name").values_list("id", "name"))


def review_counts(*, upload: Upload) -> dict:
    return ProposedChange.objects.filter(upload=upload).aggregate(
        changed=Count("id"),
        taken=Count("id", filter=Q(decision="take")),
        kept=Count("id", filter=Q(decision="keep")),
        pending=Count("id", filter=Q(decision="")),
    )


def field_changes(change: ProposedChange) -> list[dict]:
    """A proposed change as old -> new per field that differs, with the change in percent
    for prices and quantities."""
    fields: list[dict] = []
    for field in ("quantity", "unit_price", "total_price", "currency", "material", "order_date"):
        if field == "order_date":  # the purchase order's: a new date, not a missing one filled
            if change.old_order_date is None or change.new_order_date in (None, change.old_order_date):
                continue
            fields.append(
                {"field": field, "old": change.old_order_date, "new": change.new_order_date, "change_percent": None}
            )
            continue
        elif field == "material":
            old, new = getattr(change, "old_material", None), getattr(change, "new_material", None)
            if change.old_material_id == change.new_material_id:
                continue
        else:
            old, new = getattr(change, f"old_{field}"), getattr(change, f"new_{field}")
            if old == new:
                continue
        percent = None
        if field == "unit_price":
            percent = change.price_change_percent
        elif field == "quantity":
            percent = change.quantity_change_percent
        elif field == "total_price" and old and new is not None:
            percent = round((new - old) * 100 / abs(old), 2)
        fields.append({"field": field, "old": old, "new": new, "change_percent": percent})
    return fields


def mapping_of(*, upload: Upload) -> dict:
    """GET /uploads/<id>/mapping.json: what the worker made of the file's columns."""
    plan = upload.mapping_plan or {}
    return {
        "headers": plan.get("headers", []),
        "samples": plan.get("samples", {}),
        "suggestions": plan.get("suggestions", {}),
        "missing": plan.get("missing", []),
        "ambiguous": plan.get("ambiguous", {}),
        "unused": plan.get("unused", {}),
        "profile": upload.profile.name if upload.profile_id and upload.profile else None,
    }


def mapping_profiles() -> QuerySet[MappingProfile]:
    """Profiles are shared by every user of the installation."""
    return MappingProfile.objects.select_related("created_by").order_by("name")


def mapping_profile(*, profile_id) -> MappingProfile | None:
    try:
        return mapping_profiles().get(pk=profile_id)
    except (MappingProfile.DoesNotExist, ValueError, TypeError):
        return None
