"""The mapping form's rows, built from an upload's stored plan (the card partial, rendered
without a view: by the page, the views and the socket alike) or from a profile and the plan
of the last upload that used it (the profile page: the same form, saved as the profile)."""

from __future__ import annotations

import json

from django import template
from django.urls import reverse

from ingestion.columns import CANONICAL_FIELDS, REQUIRED_GROUPS, normalize_header
from ingestion.profiles import form_columns
from ingestion.suggestions import FIELD_LABELS, REQUIRED_FIELDS

register = template.Library()


@register.filter
def field_label(name: str) -> str:
    """A field as a buyer says it ('unit price', not unit_price); '' stays ''."""
    return FIELD_LABELS.get(name, name)


@register.simple_tag
def unused_columns(upload) -> dict:
    """The columns a load left out and why, and those of them that look like a known field
    (a date column not taken as the order date): the card names these at once."""
    plan = upload.mapping_plan or {}
    unused = plan.get("unused") or {}
    suggestions = plan.get("suggestions") or {}
    return {
        "items": list(unused.items()),
        "notable": [h for h in unused if (suggestions.get(h) or {}).get("field")],
    }


def _form(*, rows: list[dict], constants: dict, **rest) -> dict:
    return {
        "rows": rows,
        "fields": [(f, FIELD_LABELS[f], f in REQUIRED_FIELDS) for f in CANONICAL_FIELDS],
        "groups": json.dumps([list(g) for g in REQUIRED_GROUPS]),
        "labels": json.dumps(FIELD_LABELS),
        "constants": constants or {},
        **rest,
    }


def _row(index: int, header: str, plan: dict, selected: str) -> dict:
    hint = (plan.get("suggestions") or {}).get(header) or {}
    return {
        "index": index,
        "header": header,
        "samples": (plan.get("samples") or {}).get(header, []),
        "selected": selected,
        "confidence": hint.get("confidence", "") if hint.get("field") else "",
        "reason": hint.get("reason", ""),
    }


@register.simple_tag
def mapping_form(upload) -> dict:
    plan = upload.mapping_plan or {}
    headers = plan.get("headers", [])
    explicit = upload.explicit_header_to_field or {}
    used = {h: f for f, h in (plan.get("chosen") or {}).items()}
    suggestions = plan.get("suggestions", {})
    ambiguous = {h for hs in (plan.get("ambiguous") or {}).values() for h in hs}
    rows = []
    for index, header in enumerate(headers):
        hint = suggestions.get(header) or {}
        if header in explicit:
            selected = explicit[header]
        elif header in used:
            selected = used[header]
        elif hint.get("field") and (header in ambiguous or hint["field"] not in used):
            selected = hint["field"]
        else:
            selected = ""
        rows.append(_row(index, header, plan, selected))
    return _form(
        rows=rows,
        constants=upload.constants,
        key=str(upload.pk),
        action=reverse("upload-mapping", args=[upload.pk]),
        preview_url=reverse("upload-mapping-preview", args=[upload.pk]),
        day_first=upload.day_first,
        decimal_comma=upload.decimal_comma,
        currency=upload.currency,
        profile=None,
        unused=plan.get("unused", {}),
    )


@register.simple_tag
def profile_mapping_form(profile, user) -> dict:
    headers, plan, upload = form_columns(profile=profile, user=user)
    rows = [_row(i, h, plan, profile.mapping.get(normalize_header(h), "")) for i, h in enumerate(headers)]
    return _form(
        rows=rows,
        constants=profile.constants,
        key=f"profile-{profile.pk}",
        action=reverse("profile-edit", args=[profile.pk]),
        preview_url=reverse("profile-preview", args=[profile.pk]) if plan else "",
        day_first=profile.day_first,
        decimal_comma=profile.decimal_comma,
        currency=profile.currency,
        profile=profile,
        preview_upload=upload,
        unused={},
    )
