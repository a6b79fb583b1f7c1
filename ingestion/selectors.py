"""Read-only queries. Views, the websocket consumer and commands read uploads through these,
so all of them apply the same ownership rule."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from .models import MappingProfile, RowIssue, Upload


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
