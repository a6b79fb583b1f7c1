"""Read-only queries. Views, the websocket consumer and commands read uploads through these,
so all of them apply the same ownership rule."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, Min, QuerySet

from . import quality
from .models import RowIssue, Upload


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
    from analytics.models import UploadQuality

    found = UploadQuality.objects.filter(upload_id=upload.pk).first()
    return found.as_dict() if found else None


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
        "quality": upload_quality(upload=upload),
    }
