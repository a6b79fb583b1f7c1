"""`python manage.py ingest FILE [FILE ...] --user NAME [--mapping JSON] [--day-first]
[--strict] [--on-existing review|update|keep] [--dry-run] [--no-wait] [--json]`

Creates uploads exactly as the web does (the same service: stored file, SHA-256, queued to
the Celery worker on commit), then follows them to the end by reading their Upload rows,
with a progress bar on stderr. Exits 1 if any upload failed or was cancelled; Ctrl-C
cancels the uploads it started and exits 130.

`--dry-run` loads nothing: each file goes through the pipeline in this process, inside a
transaction rolled back at the end (`ingestion.dry_run`), and the command prints what would
happen: lines new, changed, unchanged and rejected; suppliers, materials and purchase orders
new; the first changes as old -> new."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from ingestion import dry_run, selectors, services
from ingestion.columns import validate_explicit_mapping
from ingestion.models import MappingProfile, Upload

POLL_SECONDS = 0.2
CANCEL_WAIT_SECONDS = 10


class Command(BaseCommand):
    help = "Load purchase-order files through the Celery worker, as the web upload does, and follow them."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE")
        parser.add_argument("--user", required=True, help="username that owns the uploads")
        parser.add_argument("--mapping", help='explicit column mapping as JSON, e.g. \'{"Vendor": "supplier_name"}\'')
        parser.add_argument("--profile", help="a mapping profile's name: its columns and options, whatever the headers")
        parser.add_argument("--day-first", action="store_true", help="read 11/09/2014 as 11 September")
        parser.add_argument("--strict", action="store_true", help="fail the whole upload if any row is rejected")
        parser.add_argument(
            "--on-existing",
            choices=list(Upload.OnExisting.values),
            default=Upload.OnExisting.UPDATE,
            help="lines that exist with other values: review (stop and ask), update (take the file's, the "
            "default) or keep (keep the existing ones; load only new lines)",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="write nothing; print what the load would do (lines new, changed, unchanged, rejected; "
            "suppliers, materials and purchase orders new; the first changes)",
        )
        parser.add_argument("--no-wait", action="store_true", help="return once the uploads are queued")
        parser.add_argument("--json", dest="as_json", action="store_true", help="print one JSON object per file")
        parser.add_argument("--timeout", type=float, default=None, help="give up following after this many seconds")

    def handle(
        self,
        *args,
        files,
        user,
        mapping,
        profile,
        day_first,
        strict,
        on_existing,
        dry_run,
        no_wait,
        as_json: bool,
        timeout,
        **options,
    ):
        self.stderr.style_func = None  # progress and notes, not errors: no red on a terminal
        owner = self._user(user)
        paths = [self._path(name) for name in files]
        clean_mapping = self._mapping(mapping)
        chosen_profile = self._profile(profile)

        if dry_run:
            self._dry_run(
                owner,
                paths,
                mapping=clean_mapping,
                day_first=True if day_first else None,
                strict=strict,
                on_existing=on_existing,
                profile=chosen_profile,
                as_json=as_json,
            )
            return

        uploads: list[Upload] = []
        for path in paths:
            try:
                uploads.append(
                    services.create_upload_from_path(
                        owner=owner,
                        path=path,
                        mapping=clean_mapping,
                        day_first=True if day_first else None,
                        strict=strict,
                        on_existing=on_existing,
                        profile=chosen_profile,
                    )
                )
            except services.UploadRejected as exc:
                if uploads:  # the earlier files are queued already: say so
                    self.stderr.write(f"Queued before the refusal: {', '.join(str(u.pk) for u in uploads)}")
                raise CommandError(str(exc)) from exc
        if not as_json:
            for upload in uploads:
                self.stderr.write(f"Queued {upload.original_name} as upload {upload.pk}")

        if no_wait:
            self._report(uploads, as_json=as_json)
            return

        try:
            uploads = self._follow(owner, uploads, timeout=timeout)
        except KeyboardInterrupt:
            self._interrupted(owner, uploads, as_json=as_json)
            sys.exit(130)
        self._report(uploads, as_json=as_json)
        for upload in uploads:
            if upload.status == Upload.Status.AWAITING_REVIEW and not as_json:
                self.stderr.write(
                    f"{upload.original_name} would change {upload.review_summary.get('changed', 0)} existing lines "
                    f"and waits for review: /uploads/{upload.pk}/review/"
                )
        bad = [u for u in uploads if u.status not in (Upload.Status.COMPLETED, Upload.Status.AWAITING_REVIEW)]
        if bad:
            detail = "; ".join(
                f"{u.original_name}: {u.status}" + (f" ({u.error_message})" if u.error_message else "") for u in bad
            )
            raise CommandError(f"{len(bad)} of {len(uploads)} uploads did not complete: {detail}", returncode=1)

    # --- arguments ---------------------------------------------------------------------

    def _user(self, username: str):
        User = get_user_model()
        try:
            return User.objects.get(**{User.USERNAME_FIELD: username})
        except User.DoesNotExist:
            raise CommandError(f"No user named {username!r}; create one with `manage.py createsuperuser`.") from None

    def _path(self, name: str) -> Path:
        path = Path(name)
        if not path.exists():
            raise CommandError(f"{name}: no such file.")
        if not path.is_file():
            raise CommandError(f"{name}: not a file.")
        try:  # refuse before anything is queued, with the web's own rules
            services.validate_upload_file(name=path.name, size=path.stat().st_size)
        except services.UploadRejected as exc:
            raise CommandError(str(exc)) from exc
        return path

    def _profile(self, name: str | None):
        if not name:
            return None
        found = MappingProfile.objects.filter(name=name).first()
        if found is None:
            known = ", ".join(MappingProfile.objects.values_list("name", flat=True)[:20]) or "none yet"
            raise CommandError(f"No mapping profile named {name!r} (profiles: {known}).")
        return found

    def _mapping(self, text: str | None) -> dict:
        if not text:
            return {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--mapping is not valid JSON ({exc.msg} at character {exc.pos}).") from exc
        try:
            return validate_explicit_mapping(value)
        except ValueError as exc:
            raise CommandError(f"--mapping: {exc}") from exc

    # --- dry run -------------------------------------------------------------------------

    def _dry_run(self, owner, paths: list[Path], *, as_json: bool, **options) -> None:
        failed = []
        for path in paths:
            report = dry_run.dry_run(owner=owner, path=path, **options)
            if report["status"] != "would_load":
                failed.append(report)
            if as_json:
                self.stdout.write(json.dumps(report, default=str))
                continue
            lines, created = report["lines"], report["created"]
            self.stdout.write(
                f"{report['file']}  dry run, nothing written: "
                + (
                    f"would load {lines['new']:,} new lines, change {lines['changed']:,}, leave {lines['unchanged']:,} "
                    f"unchanged, reject {lines['rejected']:,} rows; would create {created['suppliers']:,} suppliers, "
                    f"{created['materials']:,} materials, {created['purchase_orders']:,} purchase orders"
                    + (f"; {report['conflicts']:,} conflicts" if report["conflicts"] else "")
                    if report["status"] == "would_load"
                    else f"{report['status'].replace('_', ' ')}: {report['error']}"
                )
            )
            for change in report["changes"]:
                percent = f" ({change['change_percent']}%)" if change["change_percent"] is not None else ""
                self.stdout.write(
                    f"  PO {change['po_number']} line {change['line_number']} {change['field']}: "
                    f"{change['old']} -> {change['new']}{percent}"
                )
            if lines["changed"] > len({(c["po_number"], c["line_number"]) for c in report["changes"]}):
                self.stdout.write(f"  ... {lines['changed']:,} changed lines in all")
            orders = report["orders"]
            if orders and (orders["filled"] or orders["changed"]):
                self.stdout.write(
                    f"  purchase orders: would fill the order date of {orders['filled']:,}, "
                    f"change the date or currency of {orders['changed']:,}"
                )
                for change in orders["changes"]:
                    self.stdout.write(
                        f"  PO {change['po_number']} {change['field']}: {change['old']} -> {change['new']}"
                    )
            if orders and orders["supplier_conflicts"]:
                self.stdout.write(
                    f"  {orders['supplier_conflicts']:,} PO numbers would arrive with another supplier than their order's:"
                )
                for conflict in orders["conflicts"]:
                    self.stdout.write(
                        f"  PO {conflict['po_number']} belongs to {conflict['supplier']!r}; "
                        f"this file gives it {conflict['file_supplier']!r} ({conflict['rows']:,} rows)"
                    )
        if failed:
            raise CommandError(
                "; ".join(f"{r['file']}: {r['status'].replace('_', ' ')} ({r['error']})" for r in failed), returncode=1
            )

    # --- following -----------------------------------------------------------------------

    def _follow(self, owner, uploads: list[Upload], *, timeout: float | None) -> list[Upload]:
        ids = [u.pk for u in uploads]
        started = time.monotonic()
        bar = _ProgressBar(self.stderr)
        announced: set = set()
        while True:
            current = {u.pk: u for u in selectors.uploads_for_user(user=owner).filter(pk__in=ids)}
            uploads = [current.get(pk, old) for pk, old in zip(ids, uploads)]
            for upload in uploads:
                if (upload.is_finished or upload.is_waiting) and upload.pk not in announced:
                    announced.add(upload.pk)
                    bar.clear()
                    self.stderr.write(_finished_line(upload))
            # Finished, and its quality score final (the price check just after the load adds
            # its warnings: the rows are read again for them).
            if all(u.is_waiting or (u.is_finished and not selectors.score_pending(upload=u)) for u in uploads):
                bar.clear()
                current = {u.pk: u for u in selectors.uploads_for_user(user=owner).filter(pk__in=ids)}
                return [current.get(pk, old) for pk, old in zip(ids, uploads)]
            bar.draw(uploads, elapsed=time.monotonic() - started)
            if timeout is not None and time.monotonic() - started > timeout:
                bar.clear()
                raise CommandError(f"Gave up following after {timeout:g} s; the uploads go on in the worker.")
            time.sleep(POLL_SECONDS)

    def _interrupted(self, owner, uploads: list[Upload], *, as_json: bool) -> None:
        self.stderr.write("\nInterrupted: cancelling the uploads this command started...")
        for upload in uploads:
            upload.refresh_from_db()
            if upload.is_active:
                services.cancel_upload(upload=upload, by=owner)
        deadline = time.monotonic() + CANCEL_WAIT_SECONDS
        ids = [u.pk for u in uploads]
        while time.monotonic() < deadline:
            rows = list(selectors.uploads_for_user(user=owner).filter(pk__in=ids))
            if all(u.is_finished for u in rows):
                break
            time.sleep(POLL_SECONDS)
        for upload in uploads:
            upload.refresh_from_db()
            self.stderr.write(
                _finished_line(upload) if upload.is_finished else f"{upload.original_name}: still {upload.status}"
            )
        self._report(uploads, as_json=as_json)

    def _report(self, uploads: list[Upload], *, as_json: bool) -> None:
        for upload in uploads:
            if as_json:
                self.stdout.write(json.dumps(selectors.upload_summary(upload=upload), default=str))
            else:
                summary = selectors.upload_summary(upload=upload)
                created = summary["created"]
                self.stdout.write(
                    f"{upload.pk}  {upload.original_name}  {summary['status']}: "
                    f"{summary['imported_rows']:,} imported, {summary['rejected_rows']:,} rejected, "
                    f"{summary['warnings']:,} warnings; created {created['suppliers']:,} suppliers, "
                    f"{created['materials']:,} materials, {created['purchase_orders']:,} purchase orders, "
                    f"{created['lines']:,} lines; {summary['updated_lines']:,} lines updated"
                    + (f"; {summary['error']}" if summary["error"] else "")
                )


def _finished_line(upload: Upload) -> str:
    mark = {"completed": "done", "failed": "FAILED", "cancelled": "cancelled", "needs_mapping": "NEEDS MAPPING"}.get(
        upload.status, upload.status
    )
    elapsed = upload.elapsed_seconds
    rate = upload.rows_per_second
    timing = f" in {elapsed:.1f} s" if elapsed is not None else ""
    speed = f" ({rate:,.0f} rows/s)" if rate else ""
    line = f"{upload.original_name}: {mark}, {upload.processed_rows:,} rows{timing}{speed}"
    if upload.status != Upload.Status.COMPLETED and upload.error_message:
        line += f": {upload.error_message}"
    return line


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class _ProgressBar:
    """One self-rewriting line on a terminal; a line every 5 s otherwise (logs, CI)."""

    WIDTH = 28

    def __init__(self, stream) -> None:
        self.stream = stream
        stream.style_func = None  # plain text: Django would paint all of stderr red on a terminal
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.drawn = False
        self.last_plain = 0.0

    def draw(self, uploads: list[Upload], *, elapsed: float) -> None:
        processed = sum(u.processed_rows for u in uploads)
        # A queued upload's total is not known yet: the bar covers the known ones, "+?".
        unknown = any(not u.total_rows and not u.is_finished for u in uploads)
        total = sum(u.total_rows or u.processed_rows for u in uploads)
        rate = processed / elapsed if elapsed > 0 else 0.0
        eta = (max(total - processed, 0) / rate) if (total and rate and not unknown) else None
        running = sum(u.status in (Upload.Status.PROCESSING, Upload.Status.CANCELLING) for u in uploads)
        queued = sum(u.status == Upload.Status.QUEUED for u in uploads)
        done = sum(u.is_finished for u in uploads)
        share = min(processed / total, 1.0) if total else 0.0
        filled = int(share * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        text = (
            f"[{bar}] {share * 100:3.0f}% {processed:,}/{total:,}{'+?' if unknown else ''} rows  "
            f"{rate:,.0f} rows/s  ETA {_clock(eta)}  ({running} running, {queued} queued, {done}/{len(uploads)} done)"
        )
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K", ending="")
            self.stream.flush()
            self.drawn = True
        elif time.monotonic() - self.last_plain >= 5:
            self.last_plain = time.monotonic()
            self.stream.write(text)

    def clear(self) -> None:
        if self.tty and self.drawn:
            self.stream.write("\r\x1b[K", ending="")
            self.stream.flush()
            self.drawn = False
