"""The runner's second line of defence: a Rust reader's panic (pyo3's PanicException, a
BaseException that `except Exception` lets through) fails the upload with a message instead
of leaving it processing forever. The reader module converts the panics it knows of; here
the pipeline is replaced by a direct calamine call on a workbook that really panics (a
shared-strings count of 10^18), so the panic reaches the runner as it would from a reader
path nobody has guarded yet."""

from __future__ import annotations

import zipfile
from pathlib import Path

import openpyxl
import pytest

from ingestion import pipeline, services
from ingestion.models import Upload
from ingestion.runner import run_upload

pytestmark = pytest.mark.django_db(transaction=True)

SHARED_STRINGS = (
    b'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    b' count="1" uniqueCount="1000000000000000000"><si><t>PO Number</t></si></sst>'
)


def panicking_workbook(path: Path) -> Path:
    plain = path.with_name("plain.xlsx")
    book = openpyxl.Workbook()
    book.active.append(["PO Number", "Qty"])
    book.save(plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/_rels/workbook.xml.rels":
                data = data.replace(
                    b"</Relationships>",
                    b'<Relationship Id="rIdS" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                    b'relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>',
                )
            if item.filename == "[Content_Types].xml":
                data = data.replace(
                    b"</Types>",
                    b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                    b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
                )
            target.writestr(item, data)
        target.writestr("xl/sharedStrings.xml", SHARED_STRINGS)
    return path


def test_a_reader_panic_fails_the_upload_instead_of_leaving_it_processing(user, tmp_path, monkeypatch):
    import python_calamine

    path = panicking_workbook(tmp_path / "panic.xlsx")
    upload = services.create_upload_from_path(owner=user, path=path, enqueue=False)

    def unguarded_read(*, upload, **_):
        python_calamine.CalamineWorkbook.from_path(upload.file.path)

    monkeypatch.setattr(pipeline, "run_pipeline", unguarded_read)
    result = run_upload(upload_id=upload.pk, task_id="panic-test")

    upload.refresh_from_db()
    assert upload.status == Upload.Status.FAILED
    assert upload.error_message == (
        "The file could not be read: its reader crashed (PanicException). Nothing was written. "
        f"The details are in the server log under upload {upload.pk}."
    )
    assert (upload.heartbeat_at, result["status"]) == (None, "failed")
