"""Read-only queries. Views, the websocket consumer and commands read uploads through these,
so all of them apply the same ownership rule."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import OuterRef, QuerySet, Subquery

from .models import LineVersion, Material, PurchaseOrder, PurchaseOrderLine, RowIssue, Upload


def uploads_for_user(*, user) -> QuerySet[Upload]:
    """Everything a user may see: their own uploads, newest first."""
    if not getattr(user, "is_authenticated", False):
        return Upload.objects.none()
    return Upload.objects.filter(owner_id=user.pk).order_by("-created_at")


def active_uploads_for_user(*, user) -> QuerySet[Upload]:
    return uploads_for_user(user=user).filter(status__in=Upload.ACTIVE_STATUSES)


def upload_for_user(*, user, upload_id) -> Upload | None:
    """The user's upload with this id, or None (unknown, malformed or someone else's)."""
    try:
        return uploads_for_user(user=user).get(pk=upload_id)
    except (Upload.DoesNotExist, ValueError, TypeError, ValidationError):
        return None


def row_issues(*, upload: Upload, severity: str | None = None) -> QuerySet[RowIssue]:
    issues = RowIssue.objects.filter(upload=upload).order_by("row_number", "id")
    if severity:
        issues = issues.filter(severity=severity)
    return issues


def upload_summary(*, upload: Upload) -> dict:
    """The machine-readable state of an upload: `manage.py ingest --json`, status.json."""
    return {
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
        "error": upload.error_message or None,
    }


# --- line history -------------------------------------------------------------------------
# Lines are the organization's shared data: every signed-in user may read any line and its
# history (README: who may change shared prices).


def line_with_history(*, line_id) -> tuple[PurchaseOrderLine | None, list[dict]]:
    """A line (None once a revert removed it) and its versions, oldest first: values, when,
    kind, and the upload and user that wrote each. (None, []) for an id no line ever had."""
    try:
        line_id = int(line_id)
    except (TypeError, ValueError):
        return None, []
    line = PurchaseOrderLine.objects.select_related("purchase_order__supplier", "material").filter(pk=line_id).first()
    versions = list(
        LineVersion.objects.filter(line_id=line_id).select_related("upload", "user").order_by("valid_from", "id")
    )
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


def lines_written_by(*, upload: Upload) -> QuerySet[LineVersion]:
    """The versions an upload wrote, one per line it created or changed, in line order."""
    po_number = PurchaseOrder.objects.filter(pk=OuterRef("purchase_order_id")).values("po_number")[:1]
    return (
        LineVersion.objects.filter(upload=upload)
        .annotate(po_number=Subquery(po_number))
        .order_by("purchase_order_id", "line_number", "id")
    )
