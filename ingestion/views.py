"""HTTP views: thin functions that read through `selectors`, write through `services`, and
show uploads as the one card of `cards`. Every view is for signed-in users and owner-only: someone
else's upload is a 404, exactly like an upload that does not exist."""

from __future__ import annotations

import csv
import json
import re
import uuid
from pathlib import Path
from urllib.parse import quote, urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import issue_export, previews, profiles, rejected, runner, selectors, services
from .cards import render_card, render_cards
from .models import RowIssue, Upload

UPLOADS_PER_PAGE = 25
ISSUES_PER_PAGE = 50
LINES_PER_PAGE = 50
MAX_CARD_IDS = 100
# A formula start (after optional spaces) at the start of the cell or after a separator.
FORMULA_START = re.compile(r"(^|[,;\t|\r\n])( *)(?=[=+\-@])")


# --- helpers ------------------------------------------------------------------------------


def wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def get_upload_or_404(request, upload_id) -> Upload:
    upload = selectors.upload_for_user(user=request.user, upload_id=upload_id)
    if upload is None:
        raise Http404("No such upload.")
    return upload


def upload_ref(upload: Upload) -> dict:
    return {"id": str(upload.pk), "status": upload.status, "url": reverse("upload-detail", args=[upload.pk])}


def upload_response(request, upload: Upload) -> HttpResponse:
    """After a cancel or a retry: the card for htmx, the reference for scripts, else back to the page."""
    if request.htmx:
        return HttpResponse(render_card(upload))
    if wants_json(request):
        return JsonResponse(upload_ref(upload))
    return redirect("upload-detail", upload_id=upload.pk)


def refuse(request, message: str, status: int = 400) -> HttpResponse:
    if wants_json(request):
        return JsonResponse({"error": message}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def form_flag(request, name: str) -> bool | None:
    """A checkbox or a script's field: absent -> None (the default applies)."""
    value = request.POST.get(name)
    if value is None:
        return None
    return value.strip().lower() in {"1", "true", "on", "yes"}


def neutralize(cell) -> object:
    """Keep a spreadsheet from running a cell as a formula (CSV injection): a formula start
    at the beginning of the cell, or after any character a spreadsheet may split on (Excel
    in a European locale splits on ";" whatever the quoting), gets a "'" before it."""
    if not isinstance(cell, str):
        return cell
    if cell.startswith(("\t", "\r")):
        cell = "'" + cell
    return FORMULA_START.sub(r"\1\2'", cell)


def attachment_header(filename: str) -> str:
    """Content-Disposition for any name: an ASCII fallback, and the real name (RFC 5987)."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;' else "_" for ch in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


class Echo:
    """A file-like object whose write() hands the line back, for streaming csv.writer output."""

    def write(self, value: str) -> str:
        return value


# --- pages --------------------------------------------------------------------------------


@login_required
@require_GET
def dashboard(request):
    page = Paginator(selectors.uploads_for_user(user=request.user), UPLOADS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "ingestion/dashboard.html",
        {
            "page": page,
            "cards": render_cards(page.object_list),
            "max_bytes": settings.UPLOAD_MAX_BYTES,
            "extensions": ",".join(services.ALLOWED_EXTENSIONS),
            "on_existing_choices": Upload.OnExisting.choices,
        },
    )


@login_required
@require_GET
def upload_detail(request, upload_id):
    upload = get_upload_or_404(request, upload_id)
    severity = request.GET.get("severity")
    if severity not in (RowIssue.Severity.ERROR, RowIssue.Severity.WARNING):
        severity = None
    rule = request.GET.get("rule") or None
    message, column = request.GET.get("message"), request.GET.get("column")
    chosen = selectors.row_issues(upload=upload, severity=severity, rule=rule, message=message, column=column)
    issues = Paginator(chosen, ISSUES_PER_PAGE).get_page(request.GET.get("page"))
    written_lines = Paginator(selectors.lines_written_by(upload=upload), LINES_PER_PAGE).get_page(
        request.GET.get("lines_page")
    )
    written_lines.object_list = selectors.with_po_numbers(rows=written_lines.object_list)
    return render(
        request,
        "ingestion/detail.html",
        {
            "upload": upload,
            "card": render_card(upload),
            "issues": issues,
            "severity": severity,
            "rule": rule,
            "group": {"message": message, "column": column} if message is not None else None,
            "issue_groups": selectors.issue_groups(upload=upload),
            "filter_query": urlencode(
                {
                    name: value
                    for name, value in (
                        ("severity", severity),
                        ("rule", rule),
                        ("message", message),
                        ("column", column),
                    )
                    if value is not None
                }
            ),
            "written_lines": written_lines,
            "issue_counts": {
                "all": selectors.row_issues(upload=upload).count(),
                "error": selectors.row_issues(upload=upload, severity=RowIssue.Severity.ERROR).count(),
                "warning": selectors.row_issues(upload=upload, severity=RowIssue.Severity.WARNING).count(),
            },
        },
    )


# --- uploads ------------------------------------------------------------------------------


@login_required
@require_POST
def upload_create(request):
    files = request.FILES.getlist("files")
    if not files:
        return refuse(request, "Choose at least one file to upload.")

    mapping = None
    raw_mapping = request.POST.get("mapping", "").strip()
    if raw_mapping:
        try:
            mapping = json.loads(raw_mapping)
        except json.JSONDecodeError as exc:
            return refuse(
                request, f"The column mapping is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
            )

    # The web asks before changing existing lines unless told otherwise.
    on_existing = request.POST.get("on_existing") or Upload.OnExisting.REVIEW
    if on_existing not in Upload.OnExisting.values:
        return refuse(
            request, f"on_existing must be one of {', '.join(Upload.OnExisting.values)}, not {on_existing!r}."
        )

    # Check every file before storing any, so a batch is taken whole or not at all.
    for file in files:
        try:
            services.validate_upload_file(name=file.name, size=file.size)
        except services.UploadRejected as exc:
            return refuse(request, str(exc))

    uploads: list[Upload] = []
    try:
        with transaction.atomic():
            for file in files:
                uploads.append(
                    services.create_upload(
                        owner=request.user,
                        file=file,
                        name=file.name,
                        mapping=mapping,
                        day_first=form_flag(request, "day_first"),
                        strict=bool(form_flag(request, "strict")),
                        on_existing=on_existing,
                    )
                )
    except BaseException as exc:
        # The rows rolled back; the files stored before the failure must go too.
        for upload in uploads:
            upload.file.delete(save=False)
        if isinstance(exc, services.UploadRejected):
            return refuse(request, str(exc))
        raise

    if wants_json(request):
        return JsonResponse({"uploads": [upload_ref(upload) for upload in uploads]}, status=201)
    if request.htmx:
        return HttpResponse(render_cards(uploads), status=201)
    return redirect("dashboard")


@login_required
@require_POST
def upload_cancel(request, upload_id):
    upload = get_upload_or_404(request, upload_id)
    upload = services.cancel_upload(upload=upload, by=request.user)
    return upload_response(request, upload)


@login_required
@require_POST
def upload_retry(request, upload_id):
    upload = get_upload_or_404(request, upload_id)
    try:
        upload = services.retry_upload(upload=upload, by=request.user)
    except services.RetryRefused as exc:
        return refuse(request, str(exc), status=409)
    return upload_response(request, upload)


# --- the mapping step ----------------------------------------------------------------------


def mapping_choice(request) -> dict:
    """The mapping form's fields, or a script's: `mapping` as JSON, or one `col-<n>` select
    per column of the stored plan (n = its position); constants as `const_<field>`."""
    raw = request.POST.get("mapping", "").strip()
    if raw:
        try:
            mapping = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise services.MappingRejected(f"The mapping is not valid JSON: {exc.msg}.") from exc
    else:
        mapping = None
    return {
        "mapping": mapping,
        "day_first": form_flag(request, "day_first"),
        "decimal_comma": bool(form_flag(request, "decimal_comma")),
        "currency": request.POST.get("currency", ""),
        "constants": {
            name: request.POST.get(f"const_{name}", "")
            for name in ("quantity", "po_number")
            if request.POST.get(f"const_{name}", "").strip()
        },
    }


def wanted_profile_name(request) -> str:
    """`save_profile` (a name) from a script; on the form only with its checkbox ticked."""
    if "profile_form" in request.POST and not request.POST.get("remember"):
        return ""
    return request.POST.get("save_profile", "")


def form_mapping(data, headers: list[str]) -> dict[str, str]:
    """{header: field} from the form's `col-<n>` selects; each names its column in `hdr-<n>`
    (the profile page's columns may change between showing the form and posting it), else
    the n-th of `headers`."""
    mapping = {}
    for i, header in enumerate(headers):
        mapping[data.get(f"hdr-{i}", header)] = data.get(f"col-{i}", "")
    i = len(headers)
    while f"hdr-{i}" in data:
        mapping[data[f"hdr-{i}"]] = data.get(f"col-{i}", "")
        i += 1
    return mapping


def form_constants(data) -> dict[str, str]:
    return {name: data.get(f"const_{name}", "") for name in ("quantity", "po_number")}


@login_required
@require_GET
def upload_mapping_json(request, upload_id):
    upload = get_upload_or_404(request, upload_id)
    return JsonResponse(selectors.mapping_of(upload=upload))


@login_required
@require_POST
def upload_mapping(request, upload_id):
    upload = get_upload_or_404(request, upload_id)
    try:
        choice = mapping_choice(request)
        if choice["mapping"] is None:
            choice["mapping"] = form_mapping(request.POST, (upload.mapping_plan or {}).get("headers", []))
        upload = services.apply_mapping(
            upload=upload,
            by=request.user,
            save_profile=wanted_profile_name(request),
            **choice,
        )
    except services.MappingRejected as exc:
        return refuse(request, str(exc))
    if request.htmx:
        return HttpResponse(render_cards([upload]), status=202)
    if wants_json(request):
        return JsonResponse(upload_ref(upload), status=202)
    return redirect("upload-detail", upload_id=upload.pk)


@login_required
@require_GET
def upload_mapping_preview(request, upload_id):
    """The first rows as they would be stored under the choice in the query (the form's
    fields): a fragment the form swaps in whenever a choice changes."""
    upload = get_upload_or_404(request, upload_id)
    preview = previews.preview(
        plan=upload.mapping_plan or {},
        mapping=form_mapping(request.GET, (upload.mapping_plan or {}).get("headers", [])),
        day_first=request.GET.get("day_first") in ("1", "on", "true"),
        decimal_comma=request.GET.get("decimal_comma") in ("1", "on", "true"),
        currency=request.GET.get("currency", "").strip().upper(),
        constants=form_constants(request.GET),
    )
    return render(request, "ingestion/_mapping_preview.html", {"preview": preview})


# --- machine-readable state ---------------------------------------------------------------


@login_required
@require_GET
def upload_status(request, upload_id):
    upload = get_upload_or_404(request, upload_id)
    summary = selectors.upload_summary(upload=upload)
    summary["processed_rows"] = upload.processed_rows
    summary["percent"] = upload.percent
    summary["seq"] = upload.seq
    return JsonResponse(summary)


CELERY_STATES = {
    Upload.Status.QUEUED: "PENDING",
    Upload.Status.PROCESSING: "PROGRESS",
    Upload.Status.CANCELLING: "PROGRESS",
    Upload.Status.COMPLETED: "SUCCESS",
    Upload.Status.FAILED: "FAILURE",
    Upload.Status.CANCELLED: "REVOKED",
}


@login_required
@require_GET
def upload_progress(request, upload_id):
    """The response shape of celery-progress's task status view, so its scripts keep working."""
    upload = get_upload_or_404(request, upload_id)
    total = upload.total_rows or 0
    if upload.status == Upload.Status.QUEUED:
        description = "Queued"
    elif upload.is_active:
        description = (
            f"{upload.get_status_display()}: {upload.processed_rows:,} of {total:,} rows"
            if total
            else upload.get_status_display()
        )
    else:
        description = upload.get_status_display()
    result: dict | str | None = None
    success = None
    if upload.status == Upload.Status.COMPLETED:
        success = True
        result = runner.task_result(upload)
    elif upload.status in (Upload.Status.FAILED, Upload.Status.CANCELLED):
        success = False
        result = upload.error_message or upload.get_status_display()
    return JsonResponse(
        {
            "state": CELERY_STATES[Upload.Status(upload.status)],
            "complete": upload.is_finished,
            "success": success,
            "progress": {
                "pending": upload.status == Upload.Status.QUEUED,
                "current": upload.processed_rows,
                "total": total,
                "percent": float(upload.percent),
                "description": description,
            },
            "result": result,
        }
    )


@login_required
@require_GET
def upload_issues_csv(request, upload_id):
    """Each issue beside its row's PO number, supplier and material (issue_export)."""
    upload = get_upload_or_404(request, upload_id)
    writer = csv.writer(Echo(), quoting=csv.QUOTE_ALL)

    def lines():
        for row in issue_export.issue_rows(upload=upload):
            yield writer.writerow([neutralize(cell) for cell in row])

    filename = f"{Path(upload.original_name).stem or 'upload'}-issues.csv"
    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = attachment_header(filename)
    return response


@login_required
@require_GET
def upload_rejected_csv(request, upload_id):
    """The rejected rows in the file's own columns plus the reason: fix them, upload again."""
    upload = get_upload_or_404(request, upload_id)
    writer = csv.writer(Echo(), quoting=csv.QUOTE_ALL)

    def lines():
        for row in rejected.rejected_rows(upload=upload):
            yield writer.writerow([neutralize(cell) for cell in row])

    filename = f"{Path(upload.original_name).stem or 'upload'}-rejected.csv"
    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = attachment_header(filename)
    return response


@login_required
@require_http_methods(["GET"])
def upload_cards(request):
    """Cards by id (own only), plus with active=1 all the user's unfinished uploads: the
    page's fallback when its websocket cannot be opened."""
    wanted = []
    for value in request.GET.getlist("ids"):
        for part in value.split(","):
            try:
                wanted.append(uuid.UUID(part.strip()))
            except ValueError:
                continue
    wanted = wanted[:MAX_CARD_IDS]
    uploads = {upload.pk: upload for upload in selectors.uploads_for_user(user=request.user).filter(pk__in=wanted)}
    if request.GET.get("active") in ("1", "true"):
        for upload in selectors.active_uploads_for_user(user=request.user)[:MAX_CARD_IDS]:
            uploads.setdefault(upload.pk, upload)
    ordered = sorted(uploads.values(), key=lambda upload: upload.created_at, reverse=True)
    return HttpResponse(render_cards(ordered))


# --- mapping profiles (shared by every user) ------------------------------------------------


@login_required
@require_GET
def profile_list(request):
    return render(request, "ingestion/profiles.html", {"profiles": selectors.mapping_profiles()})


def get_profile_or_404(profile_id):
    profile = selectors.mapping_profile(profile_id=profile_id)
    if profile is None:
        raise Http404("No such profile.")
    return profile


@login_required
@require_http_methods(["GET", "POST"])
def profile_edit(request, profile_id):
    """GET shows the profile with its mapping form (the upload's form, previewed against the
    last file that used it). POST saves that form (`edit_mapping`), deletes (`delete`), or
    renames (`name`)."""
    profile = get_profile_or_404(profile_id)
    if request.method == "POST":
        if request.POST.get("delete"):
            profiles.delete_profile(profile=profile)
            return redirect("profile-list")
        try:
            if request.POST.get("edit_mapping"):
                profiles.update_profile(
                    profile=profile,
                    mapping=form_mapping(request.POST, []),
                    day_first=bool(form_flag(request, "day_first")),
                    decimal_comma=bool(form_flag(request, "decimal_comma")),
                    currency=request.POST.get("currency", ""),
                    constants=form_constants(request.POST),
                )
            else:
                profiles.rename_profile(profile=profile, name=request.POST.get("name", ""))
        except profiles.ProfileRejected as exc:
            return refuse(request, str(exc))
        return redirect("profile-edit", profile_id=profile.pk)
    return render(request, "ingestion/profile.html", {"profile": profile})


@login_required
@require_GET
def profile_preview(request, profile_id):
    """The profile form's preview: the first rows of the last file that used the profile,
    as the form's current choice would store them."""
    profile = get_profile_or_404(profile_id)
    _, plan, _ = profiles.form_columns(profile=profile, user=request.user)
    if not plan:
        raise Http404("The last file that used this profile is gone.")
    preview = previews.preview(
        plan=plan,
        mapping=form_mapping(request.GET, []),
        day_first=request.GET.get("day_first") in ("1", "on", "true"),
        decimal_comma=request.GET.get("decimal_comma") in ("1", "on", "true"),
        currency=request.GET.get("currency", "").strip().upper(),
        constants=form_constants(request.GET),
    )
    return render(request, "ingestion/_mapping_preview.html", {"preview": preview})


@login_required
@require_POST
def upload_save_profile(request, upload_id):
    """Save a completed upload's mapping as a profile, from its detail page."""
    upload = get_upload_or_404(request, upload_id)
    if upload.status != Upload.Status.COMPLETED or not (upload.mapping_plan or {}).get("headers"):
        return refuse(request, "Only the columns of a completed upload can be saved as a profile.", status=409)
    chosen = (upload.mapping_plan or {}).get("chosen") or {}
    used = {h: f for f, h in chosen.items()}
    mapping = {h: used.get(h, "") for h in (upload.mapping_plan or {}).get("headers", [])}
    try:
        profile = profiles.save_profile(
            name=request.POST.get("name", ""), upload=upload, mapping=mapping, by=request.user
        )
    except profiles.ProfileRejected as exc:
        return refuse(request, str(exc))
    services.use_profile(upload=upload, profile=profile)
    return redirect("profile-edit", profile_id=profile.pk)
