"""A line's history: its page and its JSON. Lines are the organization's shared data, so
any signed-in user may read them; every version says who wrote it and with which file."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from . import selectors


def _history_or_404(line_id):
    line, history = selectors.line_with_history(line_id=line_id)
    if line is None and not history:
        raise Http404("No such line.")
    return line, history


def _decimal(value) -> str | None:
    return None if value is None else str(value)


@login_required
@require_GET
def line_detail(request, line_id):
    line, history = _history_or_404(line_id)
    first = history[0]["version"] if history else None
    return render(
        request,
        "ingestion/line.html",
        {
            "line": line,
            "line_id": line_id,
            "po_number": line.purchase_order.po_number if line else None,
            "line_number": line.line_number if line else (first.line_number if first else None),
            "history": list(reversed(history)),  # newest first on the page
            "order_changes": selectors.order_changes(purchase_order_id=line.purchase_order_id) if line else [],
        },
    )


@login_required
@require_GET
def line_history_json(request, line_id):
    line, history = _history_or_404(line_id)
    return JsonResponse(
        {
            "line_id": int(line_id),
            "exists": line is not None,
            "po_number": line.purchase_order.po_number if line else None,
            "line_number": line.line_number if line else history[0]["version"].line_number,
            "versions": [
                {
                    "kind": entry["kind"],
                    "valid_from": entry["valid_from"].isoformat(),
                    "valid_to": entry["valid_to"].isoformat() if entry["valid_to"] else None,
                    "quantity": _decimal(entry["quantity"]),
                    "unit_price": _decimal(entry["unit_price"]),
                    "total_price": _decimal(entry["total_price"]),
                    "currency": entry["currency"],
                    "order_date": entry["order_date"].isoformat() if entry["order_date"] else None,
                    "material": entry["material"],
                    "material_id": entry["material_id"],
                    "upload_id": str(entry["upload"].pk) if entry["upload"] else None,
                    "file": entry["upload"].original_name if entry["upload"] else None,
                    "user": entry["user"],
                }
                for entry in history
            ],
            "order_changes": [
                {
                    "kind": change.kind,
                    "changed_at": change.changed_at.isoformat(),
                    "old_order_date": change.old_order_date.isoformat() if change.old_order_date else None,
                    "new_order_date": change.new_order_date.isoformat() if change.new_order_date else None,
                    "old_currency": change.old_currency,
                    "new_currency": change.new_currency,
                    "upload_id": str(change.upload_id) if change.upload_id else None,
                    "file": change.upload.original_name if change.upload else None,
                    "user": change.user.get_username() if change.user else "",
                }
                for change in (selectors.order_changes(purchase_order_id=line.purchase_order_id) if line else [])
            ],
        }
    )
