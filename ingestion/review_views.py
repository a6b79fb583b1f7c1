"""Review of an upload that stopped before changing existing lines: the page, its JSON, the
decisions and Load; and Revert. Owner-only like every upload view (another user's upload is a 404);
the decisions go through `services`, the same the CLI uses, and reach every open page."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from itertools import groupby

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from . import po_changes, selectors, services
from .cards import render_card
from .models import RowIssue
from .revert import RevertBlocked
from .views import get_upload_or_404, refuse, upload_response, wants_json

CHANGES_PER_PAGE = 100


def _decimal(value) -> Decimal | None:
    try:
        return Decimal(str(value).strip()) if value not in (None, "") else None
    except InvalidOperation:
        return None


def _filters(request) -> dict:
    try:
        supplier_id = int(request.GET.get("supplier") or 0) or None
    except ValueError:
        supplier_id = None
    direction = request.GET.get("direction")
    return {
        "supplier_id": supplier_id,
        "direction": direction if direction in ("up", "down") else None,
        "min_percent": _decimal(request.GET.get("min")),
        "max_percent": _decimal(request.GET.get("max")),
        "sort": request.GET.get("sort") if request.GET.get("sort") in selectors.REVIEW_SORTS else "po",
    }


def _po_number(row: dict) -> str:
    return row["change"].po_number  # annotated by selectors.proposed_changes


@login_required
@require_GET
def upload_review(request, upload_id):
    upload = get_upload_or_404(request, upload_id)
    filters = _filters(request)
    page = Paginator(selectors.proposed_changes(upload=upload, **filters), CHANGES_PER_PAGE).get_page(
        request.GET.get("page")
    )
    rows = [{"change": change, "fields": selectors.field_changes(change)} for change in page.object_list]
    groups = [(po, list(items)) for po, items in groupby(rows, key=_po_number)]
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "ingestion/review.html",
        {
            "upload": upload,
            "card": render_card(upload),
            "page": page,
            "groups": groups,
            "filters": filters,
            "query": query.urlencode(),
            "suppliers": selectors.review_suppliers(upload=upload),
            "counts": selectors.review_counts(upload=upload),
            "conflicts": RowIssue.objects.filter(
                Q(message__contains=" appears again in row ") | Q(message__contains=po_changes.SUPPLIER_CONFLICT),
                upload=upload,
            )[:100],
        },
    )


@login_required
@require_GET
def upload_review_summary(request, upload_id):
    """The review page's summary and actions alone: the page fetches it again whenever the
    upload's card changes, so decisions taken on another open page show here at once."""
    upload = get_upload_or_404(request, upload_id)
    return render(
        request,
        "ingestion/_review_summary.html",
        {"upload": upload, "counts": selectors.review_counts(upload=upload)},
    )


@login_required
@require_GET
def upload_changes_json(request, upload_id):
    upload = get_upload_or_404(request, upload_id)
    page = Paginator(selectors.proposed_changes(upload=upload, **_filters(request)), CHANGES_PER_PAGE).get_page(
        request.GET.get("page")
    )
    results = [
        {
            "line_id": change.line_id,
            "po_number": change.po_number,  # type: ignore[attr-defined]
            "line_number": change.line_number,
            "supplier": change.supplier_name,  # type: ignore[attr-defined]
            "decision": change.decision or None,
            "field": field["field"],
            "old": None if field["old"] is None else str(field["old"]),
            "new": None if field["new"] is None else str(field["new"]),
            "change_percent": None if field["change_percent"] is None else str(field["change_percent"]),
        }
        for change in page.object_list
        for field in selectors.field_changes(change)
    ]
    return JsonResponse(
        {"total": page.paginator.count, "page": page.number, "pages": page.paginator.num_pages, "results": results}
    )


def _ids(request, name: str) -> list[int]:
    ids = []
    for value in request.POST.getlist(name):
        for part in value.split(","):
            if part.strip().isdigit():
                ids.append(int(part.strip()))
    return ids


@login_required
@require_POST
def upload_apply(request, upload_id):
    upload = get_upload_or_404(request, upload_id)
    percent = _decimal(request.POST.get("percent"))
    try:
        counts = services.apply_review(
            upload=upload,
            by=request.user,
            decision=request.POST.get("decision") or None,
            percent=percent,
            take=_ids(request, "take"),
            keep=_ids(request, "keep"),
        )
    except services.ReviewRefused as exc:
        return refuse(request, str(exc), status=409)
    if wants_json(request):
        return JsonResponse(counts)
    return redirect("upload-review", upload_id=upload.pk)


@login_required
@require_POST
def upload_load(request, upload_id):
    upload = get_upload_or_404(request, upload_id)
    try:
        upload = services.load_reviewed(upload=upload, by=request.user)
    except services.ReviewRefused as exc:
        return refuse(request, str(exc), status=409)
    if wants_json(request) or request.htmx:
        return upload_response(request, upload)
    return redirect("upload-detail", upload_id=upload.pk)


@login_required
@require_POST
def upload_revert(request, upload_id):
    upload = get_upload_or_404(request, upload_id)
    try:
        restored, removed = services.revert_upload(upload=upload, by=request.user)
    except services.RevertRefused as exc:
        return refuse(request, str(exc), status=409)
    except RevertBlocked as exc:
        if wants_json(request):
            return JsonResponse(
                {
                    "error": str(exc),
                    "lines": [
                        {
                            "line_id": b.line_id,
                            "po_number": b.po_number,
                            "line_number": b.line_number,
                            "changed_by": {"upload_id": b.upload_id, "file": b.file},
                        }
                        for b in exc.blockers
                    ],
                },
                status=409,
            )
        return render(request, "ingestion/revert_blocked.html", {"upload": upload, "blocked": exc}, status=409)
    if wants_json(request):
        return JsonResponse({"upload_id": str(upload.pk), "restored": restored, "removed": removed})
    return redirect("upload-detail", upload_id=upload.pk)
