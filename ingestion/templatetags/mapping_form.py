"""The mapping form's rows, built from an upload's stored plan, for the card partial (which
is rendered without a view: by the page, the views and the socket alike)."""

from __future__ import annotations

import json

from django import template

from ingestion.columns import CANONICAL_FIELDS, REQUIRED_GROUPS
from ingestion.suggestions import FIELD_LABELS, REQUIRED_FIELDS

register = template.Library()


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
        rows.append(
            {
                "index": index,
                "header": header,
                "samples": (plan.get("samples") or {}).get(header, []),
                "selected": selected,
                "confidence": hint.get("confidence", "") if hint.get("field") else "",
                "reason": hint.get("reason", ""),
            }
        )
    return {
        "rows": rows,
        "fields": [(f, FIELD_LABELS[f], f in REQUIRED_FIELDS) for f in CANONICAL_FIELDS],
        "groups": json.dumps([list(g) for g in REQUIRED_GROUPS]),
        "labels": json.dumps(FIELD_LABELS),
        "unused": plan.get("unused", {}),
        "constants": upload.constants or {},
    }
