"""What leaves the server as a file, and what a file's name does on the way in: issues.csv
is safe to open in any locale's spreadsheet, names in any script and of any length work,
and a request that fails leaves no stored file behind."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from urllib.parse import unquote

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.urls import reverse

from ingestion.models import RowIssue, Upload
from tests.helpers import HEADER, order_rows

CSV_TEXT = "\n".join([",".join(HEADER), *(",".join(row) for row in order_rows(5))]) + "\n"
FORMULA_STARTS = ("=", "+", "-", "@")


def csv_file(name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, CSV_TEXT.encode(), content_type="text/csv")


@pytest.fixture
def alice(client, user):
    client.force_login(user)
    return client


def stored_files(media_root: Path) -> list[Path]:
    return sorted(p for p in media_root.rglob("*") if p.is_file())


@pytest.mark.django_db
def test_issues_csv_quotes_every_cell_and_no_separator_starts_a_formula(alice, user):
    upload = Upload.objects.create(
        owner=user, original_name="Bestellübersicht März.csv", file="uploads/x.csv", size=1, seq=1
    )
    values = ['x;=HYPERLINK("http://evil.example","click")', "a,+1", "b\t-2", "c|@SUM(A1)", "d; =1+1", "line\n=2"]
    for number, value in enumerate(values, start=2):
        RowIssue.objects.create(upload=upload, row_number=number, column="Price;=cmd", value=value, message="bad")

    response = alice.get(reverse("upload-issues-csv", args=[upload.pk]))
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert [row[2] for row in rows[1:]] == [
        'x;\'=HYPERLINK("http://evil.example","click")',
        "a,'+1",
        "b\t'-2",
        "c|'@SUM(A1)",
        "d; '=1+1",
        "line\n'=2",
    ]
    assert rows[1][1] == "Price;'=cmd"
    # Every cell quoted, numbers too.
    assert text.splitlines()[1].startswith('"2","Price;')
    # Split as a European-locale Excel does (on ";", on tabs, on "|", quotes or not): no
    # piece starts a formula.
    for separator in (";", ",", "\t", "|", "\n"):
        for piece in text.replace('"', "").split(separator):
            assert not piece.lstrip(" ").startswith(FORMULA_STARTS), (separator, piece)


@pytest.mark.django_db
def test_non_ascii_name_downloads_under_its_name(alice, user):
    upload = Upload.objects.create(owner=user, original_name="Заказы 2024.csv", file="uploads/x.csv", size=1, seq=1)
    disposition = alice.get(reverse("upload-issues-csv", args=[upload.pk]))["Content-Disposition"]
    assert disposition.startswith('attachment; filename="')
    encoded = disposition.split("filename*=UTF-8''")[1]
    assert unquote(encoded) == "Заказы 2024-issues.csv"
    assert disposition.isascii()


@pytest.mark.django_db(transaction=True)
def test_a_name_longer_than_the_file_system_allows_is_stored_cut_by_bytes(alice, media_root):
    name = "Ü" * 300 + ".csv"  # 604 bytes of UTF-8; the file system takes 255
    response = alice.post(reverse("upload-create"), {"files": [csv_file(name)]}, HTTP_ACCEPT="application/json")
    assert response.status_code == 201
    upload = Upload.objects.get(pk=response.json()["uploads"][0]["id"])
    assert upload.original_name == "Ü" * 251 + ".csv"
    stored = Path(upload.file.path)
    assert stored.is_file() and stored.read_bytes() == CSV_TEXT.encode()
    assert stored.name == "Ü" * 98 + ".csv" and len(stored.name.encode()) == 200


@pytest.mark.django_db(transaction=True)
def test_files_stored_for_a_request_that_fails_are_removed(user, media_root):
    """The database refuses the second file's row (a real trigger, as a constraint would):
    the first file, already on disk, goes too."""
    before = stored_files(media_root)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION refuse_boom() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'no room for boom'; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER refuse_boom BEFORE INSERT ON ingestion_upload FOR EACH ROW "
                "WHEN (NEW.original_name = 'boom.csv') EXECUTE FUNCTION refuse_boom()"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER refuse_boom BEFORE INSERT ON ingestion_upload "
                "WHEN NEW.original_name = 'boom.csv' BEGIN SELECT RAISE(ABORT, 'no room for boom'); END"
            )
    try:
        client = Client(raise_request_exception=False)
        client.force_login(user)
        response = client.post(reverse("upload-create"), {"files": [csv_file("fine.csv"), csv_file("boom.csv")]})
        assert response.status_code == 500
        assert Upload.objects.count() == 0
        assert stored_files(media_root) == before
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER refuse_boom" + (" ON ingestion_upload" if connection.vendor == "postgresql" else "")
            )
            if connection.vendor == "postgresql":
                cursor.execute("DROP FUNCTION refuse_boom()")
