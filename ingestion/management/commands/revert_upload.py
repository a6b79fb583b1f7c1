"""`python manage.py revert_upload ID [--json]`: take a completed upload back, as its Revert
button does (the same service): its changed lines get their replaced values, its new lines
go, in one transaction. Exits 1, changing nothing, if later uploads changed some of its
lines, and lists them."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from ingestion import services
from ingestion.models import Upload
from ingestion.revert import RevertBlocked


class Command(BaseCommand):
    help = "Revert a completed upload: its changed lines get their previous values back, its new lines go."

    def add_arguments(self, parser):
        parser.add_argument("upload_id")
        parser.add_argument("--json", dest="as_json", action="store_true", help="print the outcome as JSON")

    def handle(self, *args, upload_id, as_json: bool, **options):
        try:
            upload = Upload.objects.select_related("owner").get(pk=upload_id)
        except (Upload.DoesNotExist, ValueError, Exception) as exc:
            raise CommandError(f"No upload {upload_id}.") from exc
        try:
            restored, removed = services.revert_upload(upload=upload, by=upload.owner)
        except services.RevertRefused as exc:
            raise CommandError(str(exc)) from exc
        except RevertBlocked as exc:
            lines = "\n".join(
                f"  PO {b.po_number} line {b.line_number} (line {b.line_id}): changed by {b.file} ({b.upload_id})"
                for b in exc.blockers
            )
            raise CommandError(f"{exc}\n{lines}") from exc
        if as_json:
            self.stdout.write(json.dumps({"upload_id": str(upload.pk), "restored": restored, "removed": removed}))
        else:
            self.stdout.write(f"Reverted {upload.original_name}: {restored} lines restored, {removed} removed.")
