"""Services: the writes a caller may ask for (create, cancel, retry, enqueue, validate), from
a view, the websocket consumer or a management command. What the Celery task runs for an
upload is in `runner`."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.files import File
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from . import dimensions
from .cancel_flags import clear_cancel_flag, set_cancel_flag
from .columns import validate_explicit_mapping
from .filenames import display_name, stored_name
from .models import ProposedChange, RowIssue, Upload

log = logging.getLogger(__name__)

ALLOWED_EXTENSIONS = (".csv", ".txt", ".tsv", ".xlsx", ".xls", ".ods")


class UploadRejected(ValueError):
    """A file refused before it is queued; the message says why, for the user."""


class RetryRefused(ValueError):
    """A retry of an upload that is not failed or cancelled; the message says its state."""


def now_seq() -> int:
    """Microseconds since the epoch: orders the states of one upload across processes."""
    return time.time_ns() // 1000


# --- creating, cancelling, retrying -------------------------------------------------------


def validate_upload_file(*, name: str, size: int) -> None:
    ext = Path(name).suffix.lower()
    if ext not in ALLOWED_EXTENSIONS:
        raise UploadRejected(
            f"{name}: {ext or 'no extension'} files are not supported; upload .csv, .xlsx, .xls or .ods."
        )
    if size == 0:
        raise UploadRejected(f"{name}: the file is empty.")
    if size > settings.UPLOAD_MAX_BYTES:
        raise UploadRejected(
            f"{name}: the file is {size / 1_048_576:.1f} MB; the limit is {settings.UPLOAD_MAX_BYTES / 1_048_576:.0f} MB."
        )


def create_upload(
    *,
    owner,
    file,
    name: str | None = None,
    mapping: dict | None = None,
    day_first: bool | None = None,
    strict: bool = False,
    on_existing: str = Upload.OnExisting.UPDATE,
    profile=None,
    enqueue: bool = True,
) -> Upload:
    """Store a file and queue it. `file` is a Django UploadedFile or any binary file object.
    Raises UploadRejected with a user-facing reason for a file that cannot be taken."""
    name = display_name(name or getattr(file, "name", "") or "upload.csv")
    size = getattr(file, "size", None)
    if size is None:
        file.seek(0, os.SEEK_END)
        size = file.tell()
        file.seek(0)
    validate_upload_file(name=name, size=size)
    try:
        clean_mapping = validate_explicit_mapping(mapping)
    except ValueError as exc:
        raise UploadRejected(str(exc)) from exc

    _check_unfinished_cap(owner=owner, name=name)

    digest = hashlib.sha256()
    chunks = file.chunks() if hasattr(file, "chunks") else iter(lambda: file.read(1 << 20), b"")
    for chunk in chunks:
        digest.update(chunk)
    file.seek(0)

    sha256 = digest.hexdigest()
    upload = Upload(
        owner=owner,
        original_name=name,
        size=size,
        sha256=sha256,
        same_file_as=Upload.objects.filter(sha256=sha256, status=Upload.Status.COMPLETED, reverted_at__isnull=True)
        .order_by("-finished_at")
        .first(),
        explicit_header_to_field=clean_mapping,
        day_first=settings.INGEST_DAY_FIRST if day_first is None else day_first,
        strict=strict,
        on_existing=on_existing,
        profile=profile,
        seq=now_seq(),
    )
    with transaction.atomic():
        _check_unfinished_cap(owner=owner, name=name, lock=True)
        upload.file.save(stored_name(name), file if isinstance(file, File) else File(file, name=name), save=False)
        try:
            upload.save()
        except BaseException:
            upload.file.delete(save=False)  # a row that is not there must leave no file behind
            raise
    publish_state(upload)
    if enqueue:
        transaction.on_commit(lambda: enqueue_upload(upload=upload))
    return upload


def _check_unfinished_cap(*, owner, name: str, lock: bool = False) -> None:
    """Fairness: one user's unfinished uploads are capped, so nobody's 1,000 files fill the
    queue for everyone. With `lock`, the owner's row is locked until the transaction ends,
    so two requests at once cannot both take the last place."""
    if lock:
        get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
    cap = settings.INGEST_MAX_ACTIVE_UPLOADS_PER_USER
    unfinished = Upload.objects.filter(owner=owner, status__in=Upload.ACTIVE_STATUSES).count()
    if unfinished >= cap:
        raise UploadRejected(
            f"{name}: you already have {unfinished} files queued or loading, the most one person may have at once "
            f"({cap}); upload it again once some of them have finished."
        )


def create_upload_from_path(*, owner, path: str | Path, **options) -> Upload:
    path = Path(path)
    with path.open("rb") as handle:
        return create_upload(owner=owner, file=File(handle, name=path.name), name=path.name, **options)


def enqueue_upload(*, upload: Upload) -> bool:
    """Send the upload's task, to the large-file queue if it is large. With the broker down
    the upload stays queued with a note, and the sweeper sends it once the broker is back:
    never an error for the request that already stored the file."""
    from .queueing import send_upload

    sent = send_upload(upload=upload)
    if not sent:
        publish_state(upload)
    return sent


def cancel_upload(*, upload: Upload, by) -> Upload:
    """Stop an upload. A queued one is revoked and ends now, and so does one whose run is gone
    (its lease is stale) or that awaits its review, each removing the suppliers, materials and
    purchase orders it created that nothing else uses; a running one is flagged and the task
    ends it as cancelled within half a second, keeping none of its line writes. The task is never terminated: its process
    may already be running another task."""
    from .sweeper import end_cancel_without_run

    if upload.owner_id != getattr(by, "pk", None):
        raise PermissionDenied("Not your upload.")
    now = timezone.now()
    if Upload.objects.filter(pk=upload.pk, status=Upload.Status.AWAITING_REVIEW).update(
        status=Upload.Status.CANCELLED,
        finished_at=now,
        seq=now_seq(),
        review_summary={},
        error_message="Cancelled at its review; no lines were written.",
    ):
        ProposedChange.objects.filter(upload=upload).delete()
        dimensions.release_after_end(upload)
    elif Upload.objects.filter(pk=upload.pk, status=Upload.Status.QUEUED).update(
        status=Upload.Status.CANCELLED, finished_at=now, seq=now_seq(), error_message="Cancelled before it started."
    ):
        if upload.task_id:
            from config.celery import app

            app.control.revoke(upload.task_id)
        # Queued again after a run died (by the sweeper) or a retry: what earlier runs created goes.
        dimensions.release_after_end(upload)
    elif end_cancel_without_run(upload_id=upload.pk):
        pass  # its run was gone (a killed worker): nothing else would ever end it
    elif Upload.objects.filter(pk=upload.pk, status=Upload.Status.PROCESSING).update(
        status=Upload.Status.CANCELLING, seq=now_seq()
    ):
        set_cancel_flag(upload_id=upload.pk)
    else:  # waiting for its mapping: dropped, nothing was written
        Upload.objects.filter(pk=upload.pk, status=Upload.Status.NEEDS_MAPPING).update(
            status=Upload.Status.CANCELLED, finished_at=now, seq=now_seq(), error_message="Dropped; nothing was loaded."
        )
    upload.refresh_from_db()
    publish_state(upload)
    return upload


def retry_upload(*, upload: Upload, by) -> Upload:
    """Queue a failed or cancelled upload again, with the same options. The new attempt
    starts its rows, issues and line counts from zero; the suppliers, materials and purchase
    orders earlier attempts created stay counted, since this upload created them."""
    if upload.owner_id != getattr(by, "pk", None):
        raise PermissionDenied("Not your upload.")
    if not upload.file:
        raise RetryRefused(
            f"The stored copy of {upload.original_name} was deleted after {settings.INGEST_KEEP_FILES_DAYS} days; "
            "upload the file again."
        )
    fields = attempt_counters()
    fields.update(
        status=Upload.Status.QUEUED,
        seq=now_seq(),
        heartbeat_at=None,
        started_at=None,
        finished_at=None,
        task_id="",
        crashed_runs=0,  # the user asked again: a file that stopped its workers gets new tries
    )
    reopen = failed_on_its_columns(upload)
    if reopen:
        fields.update(
            status=Upload.Status.NEEDS_MAPPING,
            error_message=f"It failed: {upload.error_message} Check the columns and options below, then load it again.",
            explicit_header_to_field=_previous_choice(upload),
        )
    # Conditional, so that two retries at once queue it once.
    retryable = Upload.objects.filter(pk=upload.pk, status__in=Upload.RETRYABLE_STATUSES)  # Upload.can_retry
    if not retryable.update(**fields):
        upload.refresh_from_db()
        raise RetryRefused(f"Only a failed or cancelled upload can be retried; this one is {upload.status}.")
    clear_cancel_flag(upload_id=upload.pk)
    RowIssue.objects.filter(upload=upload).delete()
    upload.refresh_from_db()
    publish_state(upload)
    if not reopen:
        enqueue_upload(upload=upload)
    return upload


def failed_on_its_columns(upload: Upload) -> bool:
    """A failure the columns or options may have caused: rows rejected (too many of them,
    or one under strict), which a wrong column or a wrong date order does. Its retry opens
    the mapping form with the choices it failed with instead of failing the same way. One
    whose worker kept dying, or that failed before its rows were read (a damaged file, an
    outage), is simply queued again."""
    return (
        upload.status == Upload.Status.FAILED
        and bool((upload.mapping_plan or {}).get("headers"))
        and upload.crashed_runs == 0
        and (
            upload.rejected_rows > 0
            # strict stops at the first rejected row, before the batch is counted
            or RowIssue.objects.filter(upload=upload, severity=RowIssue.Severity.ERROR).exists()
        )
    )


def _previous_choice(upload: Upload) -> dict[str, str]:
    """{header: field or ''} as the failed attempt loaded it."""
    plan = upload.mapping_plan or {}
    used = {h: f for f, h in (plan.get("chosen") or {}).items()}
    return {h: used.get(h, "") for h in plan.get("headers", [])}


# --- the mapping step ---------------------------------------------------------------------


class MappingRejected(ValueError):
    """A mapping that still cannot load the file; the message says what is lacking."""


def clean_options(*, currency: str, constants: dict | None) -> tuple[str, dict[str, str]]:
    """The mapping form's default currency and its values for every row, checked: raises
    MappingRejected with the reason in the buyer's words."""
    from .suggestions import CONSTANT_FIELDS, FIELD_LABELS

    currency = (currency or "").strip().upper()
    if currency and not (len(currency) == 3 and currency.isalpha()):
        raise MappingRejected(f"The default currency must be a three-letter code such as USD, not {currency!r}.")
    fixed = {}
    for field, value in (constants or {}).items():
        if field not in CONSTANT_FIELDS:
            raise MappingRejected(
                f"Only the {', '.join(FIELD_LABELS[f] for f in CONSTANT_FIELDS)} can be given one value for every row."
            )
        if str(value).strip():
            fixed[field] = str(value).strip()
    if "currency" in fixed:
        currency = currency or fixed.pop("currency").upper()
    return currency, fixed


def apply_mapping(
    *,
    upload: Upload,
    by,
    mapping: object,
    day_first: bool | None = None,
    decimal_comma: bool = False,
    currency: str = "",
    constants: dict | None = None,
    save_profile: str = "",
) -> Upload:
    """Continue an upload waiting for its mapping with the owner's choice: the same upload,
    the same stored file, queued again. Raises MappingRejected (nothing changes) when the
    choice still lacks a required field or names a column twice."""
    from . import profiles
    from .suggestions import suggest

    if upload.owner_id != getattr(by, "pk", None):
        raise PermissionDenied("Not your upload.")
    if upload.status != Upload.Status.NEEDS_MAPPING:
        raise MappingRejected(f"This upload is {upload.get_status_display().lower()}, not waiting for its mapping.")
    try:
        clean = validate_explicit_mapping(mapping)
    except ValueError as exc:
        raise MappingRejected(str(exc)) from exc
    currency, fixed = clean_options(currency=currency, constants=constants)
    plan = upload.mapping_plan or {}
    headers = plan.get("headers") or list(clean)
    full = {h: clean.get(h, "") for h in headers}  # a column not chosen is ignored
    unknown = [h for h in clean if h not in headers]
    if unknown:
        raise MappingRejected(f"The file has no column {unknown[0]!r}.")
    checked = suggest(headers, None, explicit=full, constants=fixed)
    if not checked.ready:
        raise MappingRejected(checked.message().replace(" Choose the columns below.", ""))
    fields = attempt_counters()
    fields.update(
        status=Upload.Status.QUEUED,
        explicit_header_to_field=full,
        decimal_comma=bool(decimal_comma),
        currency=currency,
        constants=fixed,
        profile=None,
        profile_note="",
        seq=now_seq(),
        heartbeat_at=None,
        started_at=None,
        finished_at=None,
        task_id="",
    )
    if day_first is not None:
        fields["day_first"] = day_first
    with transaction.atomic():
        if not Upload.objects.filter(pk=upload.pk, status=Upload.Status.NEEDS_MAPPING).update(**fields):
            upload.refresh_from_db()
            raise MappingRejected(f"This upload is {upload.get_status_display().lower()}, not waiting for its mapping.")
        upload.refresh_from_db()
        if save_profile.strip():
            try:
                profile = profiles.save_profile(name=save_profile, upload=upload, mapping=full, by=by)
            except profiles.ProfileRejected as exc:
                raise MappingRejected(str(exc)) from exc
            Upload.objects.filter(pk=upload.pk).update(profile=profile)
            upload.profile = profile
    publish_state(upload)
    transaction.on_commit(lambda: enqueue_upload(upload=upload))
    return upload


# --- review ---------------------------------------------------------------------------------


class ReviewRefused(ValueError):
    """A review action that does not fit the upload's state; the message says why."""


DECISIONS = ("all", "keep", "newer", "within")


def apply_review(
    *,
    upload: Upload,
    by,
    decision: str | None = None,
    percent: Decimal | None = None,
    take: Iterable[int] = (),
    keep: Iterable[int] = (),
) -> dict:
    """Decide an awaiting upload's proposed changes in set-based steps: a rule for all of
    them (`all` take incoming, `keep` keep existing, `newer` take where the incoming order
    date is later, `within` take where the unit price moved by at most `percent` %), then
    the `take` and `keep` line ids, which override it. Every open page is told."""
    if upload.owner_id != getattr(by, "pk", None):
        raise PermissionDenied("Not your upload.")
    if upload.status != Upload.Status.AWAITING_REVIEW:
        raise ReviewRefused(f"Only an upload awaiting review can be decided; this one is {upload.status}.")
    changes = ProposedChange.objects.filter(upload=upload)
    TAKE, KEEP = ProposedChange.Decision.TAKE, ProposedChange.Decision.KEEP
    with transaction.atomic():
        if decision == "all":
            changes.update(decision=TAKE)
        elif decision == "keep":
            changes.update(decision=KEEP)
        elif decision == "newer":
            later = Q(
                new_order_date__isnull=False, old_order_date__isnull=False, new_order_date__gt=F("old_order_date")
            )
            changes.filter(later).update(decision=TAKE)
            changes.exclude(later).update(decision=KEEP)
        elif decision == "within":
            if percent is None or percent < 0:
                raise ReviewRefused("The rule 'within' needs a percent of 0 or more.")
            near = Q(price_change_percent__gte=-percent, price_change_percent__lte=percent)
            changes.filter(near).update(decision=TAKE)
            changes.exclude(near).update(decision=KEEP)
        elif decision:
            raise ReviewRefused(f"Unknown decision {decision!r}; use one of {', '.join(DECISIONS)}.")
        take, keep = list(take), list(keep)
        if take:
            changes.filter(line_id__in=take).update(decision=TAKE)
        if keep:
            changes.filter(line_id__in=keep).update(decision=KEEP)
        counts = changes.aggregate(
            changed=Count("id"),
            taken=Count("id", filter=Q(decision=TAKE)),
            kept=Count("id", filter=Q(decision=KEEP)),
            pending=Count("id", filter=Q(decision="")),
        )
        summary = {**upload.review_summary, "pending": counts["pending"]}
        Upload.objects.filter(pk=upload.pk).update(review_summary=summary, seq=now_seq())
    upload.refresh_from_db()
    publish_state(upload)
    return counts


def load_reviewed(*, upload: Upload, by) -> Upload:
    """Load an upload whose every proposed change is decided: the same upload runs again,
    with progress on its card. Its pass diffs the file afresh, so a line another upload
    changed since the review is asked again instead of overwritten."""
    if upload.owner_id != getattr(by, "pk", None):
        raise PermissionDenied("Not your upload.")
    pending = ProposedChange.objects.filter(upload=upload, decision="").count()
    if upload.status == Upload.Status.AWAITING_REVIEW and pending:
        raise ReviewRefused(f"{pending} changed lines have no decision yet; take or keep them first.")
    fields = attempt_counters()
    fields.update(status=Upload.Status.QUEUED, seq=now_seq(), heartbeat_at=None, started_at=None, finished_at=None)
    if not Upload.objects.filter(pk=upload.pk, status=Upload.Status.AWAITING_REVIEW).update(**fields):
        upload.refresh_from_db()
        raise ReviewRefused(f"Only an upload awaiting review can be loaded; this one is {upload.status}.")
    upload.refresh_from_db()
    publish_state(upload)
    enqueue_upload(upload=upload)
    return upload


# --- undo -----------------------------------------------------------------------------------


class RevertRefused(ValueError):
    """A revert of an upload that is not completed, or reverted already."""


def revert_upload(*, upload: Upload, by) -> tuple[int, int]:
    """Take an upload back (`revert`): its changed lines get their replaced values, its new
    lines go, in one transaction recorded as versions. Returns (restored, removed); raises
    revert.RevertBlocked (nothing reverted) if later uploads changed some of its lines."""
    from . import revert

    if upload.owner_id != getattr(by, "pk", None):
        raise PermissionDenied("Not your upload.")
    if upload.status != Upload.Status.COMPLETED:
        raise RevertRefused(f"Only a completed upload can be reverted; this one is {upload.status}.")
    if upload.reverted_at:
        raise RevertRefused(f"This upload was reverted already, at {upload.reverted_at:%Y-%m-%d %H:%M}.")
    restored, removed = revert.revert_lines(upload=upload, user_id=by.pk)
    upload.refresh_from_db()
    upload.seq = now_seq()
    Upload.objects.filter(pk=upload.pk).update(seq=upload.seq)
    publish_state(upload, final=True)
    return restored, removed


def attempt_counters() -> dict:
    """The counters an attempt at an upload starts from (a retry, a takeover from a dead
    worker). Not the created suppliers, materials and purchase orders: an attempt commits
    those batch by batch and nothing rolls them back, so the next attempt finds them
    existing; they stay counted for the upload, whichever attempt created them. Lines
    count only for the attempt that commits them."""
    return dict(
        total_rows=None,
        processed_rows=0,
        imported_rows=0,
        rejected_rows=0,
        warning_count=0,
        created_lines=0,
        updated_lines=0,
        unchanged_lines=0,
        kept_lines=0,
        review_summary={},
        error_message="",
        resolved_field_to_header={},
    )


def publish_state(upload: Upload, *, final: bool = False) -> None:
    """Tell every open page. Publishing is best effort: the Upload row is the truth, and a
    page rebuilds from it whenever its socket reconnects."""
    try:
        from realtime.publish import publish_upload

        publish_upload(upload, final=final)
    except SoftTimeLimitExceeded:
        raise  # the task's time is up: that must reach the runner, not be logged away
    except Exception:  # noqa: BLE001 - a lost event must never fail a load
        log.warning("Could not publish the state of upload %s", upload.pk, exc_info=True)


def use_profile(*, upload: Upload, profile) -> None:
    """Record that `upload` is described by `profile` (saved from its detail page)."""
    Upload.objects.filter(pk=upload.pk).update(profile=profile, seq=now_seq())
