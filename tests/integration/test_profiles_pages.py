"""The profiles pages, saving a profile from a finished upload, the preview fragment and the
mapping endpoints' guards (owner only, CSRF)."""

from __future__ import annotations

import io
import json

import pytest
from django.test import Client
from django.urls import reverse

from ingestion import services
from ingestion.mapping_step import plan_json
from ingestion.models import MappingProfile, Upload
from ingestion.suggestions import suggest
from tests.integration.test_pages import inline_parts

pytestmark = pytest.mark.django_db

HEADERS = ["Lieferant", "Artikel", "Bestellung", "Menge", "Preis"]
ROWS = [["Acme", "Bolt", "B-1", "10", "0.25"], ["Acme", "Nut", "B-1", "-2", "abc"]]
CHOICE = {
    "Lieferant": "supplier_name",
    "Artikel": "material_description",
    "Bestellung": "po_number",
    "Menge": "quantity",
    "Preis": "unit_price",
}


def waiting_upload(owner) -> Upload:
    import pandas as pd

    file = io.BytesIO(b"Lieferant,Artikel,Bestellung,Menge,Preis\nAcme,Bolt,B-1,10,0.25\n")
    upload = services.create_upload(owner=owner, file=file, name="b.csv", enqueue=False)
    sample = pd.DataFrame(ROWS, columns=HEADERS, index=[2, 3], dtype=object)
    plan = suggest(HEADERS, sample)
    Upload.objects.filter(pk=upload.pk).update(
        status=Upload.Status.NEEDS_MAPPING, mapping_plan=plan_json(plan, sample, profile=None)
    )
    upload.refresh_from_db()
    return upload


def test_the_preview_marks_rejected_cells_with_their_reason(client, user):
    upload = waiting_upload(user)
    client.force_login(user)
    query = {f"col-{i}": CHOICE[h] for i, h in enumerate(HEADERS)}
    html = client.get(reverse("upload-mapping-preview", args=[upload.pk]), query).content.decode()
    assert "First 2 rows as they would be stored: 1 rejected" in html
    assert '<td class="cell-error" title="Quantity must be above zero.">-2</td>' in html
    assert '<td class="cell-error" title="Unit price is not a number.">abc</td>' in html
    assert "<td>0.25</td>" in html
    # A choice still lacking a field says so instead.
    query["col-3"] = ""
    html = client.get(reverse("upload-mapping-preview", args=[upload.pk]), query).content.decode()
    assert "Preview: The file has no quantity column." in html


def test_the_card_shows_the_form_with_suggestions_and_samples(client, user):
    upload = waiting_upload(user)
    client.force_login(user)
    html = client.get(reverse("upload-detail", args=[upload.pk])).content.decode()
    assert 'class="mapping-form"' in html
    assert 'name="col-0"' in html and '<span class="sample">Acme</span>' in html
    assert "— ignore this column —" in html
    assert "quantity *" in html


def test_mapping_endpoints_are_owner_only_and_keep_csrf(user, other_user):
    upload = waiting_upload(user)
    other = Client()
    other.force_login(other_user)
    assert other.get(reverse("upload-mapping-json", args=[upload.pk])).status_code == 404
    assert other.get(reverse("upload-mapping-preview", args=[upload.pk])).status_code == 404
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    answer = strict.post(reverse("upload-mapping", args=[upload.pk]), {"mapping": json.dumps(CHOICE)})
    assert answer.status_code == 403
    upload.refresh_from_db()
    assert upload.status == Upload.Status.NEEDS_MAPPING


def test_profiles_page_lists_renames_and_deletes(client, user, other_user):
    upload = waiting_upload(user)
    plan = {**upload.mapping_plan, "chosen": {f: h for h, f in CHOICE.items()}}
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.COMPLETED, mapping_plan=plan)
    client.force_login(user)
    answer = client.post(reverse("upload-save-profile", args=[upload.pk]), {"name": "Lieferanten"})
    profile = MappingProfile.objects.get()
    assert answer.status_code == 302 and answer["Location"] == reverse("profile-edit", args=[profile.pk])
    assert profile.created_by == user and profile.mapping["menge"] == "quantity"
    # Shared: another user sees it, with who made it.
    other = Client()
    other.force_login(other_user)
    listing = other.get(reverse("profile-list")).content.decode()
    assert "Lieferanten" in listing and user.get_username() in listing
    assert other.post(reverse("profile-edit", args=[profile.pk]), {"name": "Bestellungen DE"}).status_code == 302
    assert MappingProfile.objects.get().name == "Bestellungen DE"
    assert other.post(reverse("profile-edit", args=[profile.pk]), {"delete": "1"}).status_code == 302
    assert not MappingProfile.objects.exists()


def saved_profile(client, user) -> tuple[Upload, MappingProfile]:
    """A completed upload of the HEADERS file, saved as profile 'Lieferanten' from its
    detail page (which offers that form)."""
    upload = waiting_upload(user)
    plan = {**upload.mapping_plan, "chosen": {f: h for h, f in CHOICE.items()}}
    Upload.objects.filter(pk=upload.pk).update(status=Upload.Status.COMPLETED, mapping_plan=plan)
    client.force_login(user)
    detail = client.get(reverse("upload-detail", args=[upload.pk])).content.decode()
    assert 'action="' + reverse("upload-save-profile", args=[upload.pk]) + '"' in detail
    client.post(reverse("upload-save-profile", args=[upload.pk]), {"name": "Lieferanten"})
    return upload, MappingProfile.objects.get(name="Lieferanten")


def form_post(headers: list[str], choice: dict[str, str], **options) -> dict:
    data = {"edit_mapping": "1", **options}
    for i, header in enumerate(headers):
        data[f"hdr-{i}"] = header
        data[f"col-{i}"] = choice.get(header, "")
    return data


def test_a_profile_is_edited_with_the_mapping_form_and_previewed_against_its_last_file(client, user):
    upload, profile = saved_profile(client, user)
    page = client.get(reverse("profile-edit", args=[profile.pk])).content.decode()
    # The upload's form: every column of the last file with its samples, pre-set to the profile.
    assert 'class="mapping-form"' in page and 'data-submit="page"' in page
    assert f'data-preview-url="{reverse("profile-preview", args=[profile.pk])}"' in page
    assert '<span class="sample">Acme</span>' in page
    assert '<option value="quantity" selected>quantity *</option>' in page
    assert "the last of your files that used this profile" in page and upload.original_name in page
    assert inline_parts(page).found == []  # the strict CSP: no inline script, style or handler

    # The preview follows a choice, on the last file's first rows.
    query = {f"hdr-{i}": h for i, h in enumerate(HEADERS)} | {f"col-{i}": CHOICE[h] for i, h in enumerate(HEADERS)}
    html = client.get(reverse("profile-preview", args=[profile.pk]), query).content.decode()
    assert "First 2 rows as they would be stored: 1 rejected" in html
    assert '<td class="cell-error" title="Unit price is not a number.">abc</td>' in html

    # Saving changes the mapping and the options; the signature (the files it serves) stays.
    signature = profile.signature
    changed = {**CHOICE, "Artikel": "material_code"}
    answer = client.post(
        reverse("profile-edit", args=[profile.pk]),
        form_post(HEADERS, changed, currency="eur", day_first="1", const_quantity=""),
    )
    assert answer.status_code == 302
    profile.refresh_from_db()
    assert profile.mapping["artikel"] == "material_code" and profile.mapping["menge"] == "quantity"
    assert (profile.currency, profile.day_first, profile.signature) == ("EUR", True, signature)

    # A choice that could not load a file is refused with the reason, nothing saved.
    answer = client.post(reverse("profile-edit", args=[profile.pk]), form_post(HEADERS, {**changed, "Menge": ""}))
    assert answer.status_code == 400
    assert answer.content.decode() == "The file has no quantity column."
    profile.refresh_from_db()
    assert profile.mapping["menge"] == "quantity"


def test_a_profile_whose_last_file_is_gone_is_edited_without_a_preview(client, user, other_user):
    upload, profile = saved_profile(client, user)
    # Another user's file is not shown to them: no samples, no preview, still editable.
    other = Client()
    other.force_login(other_user)
    page = other.get(reverse("profile-edit", args=[profile.pk])).content.decode()
    assert "None of your stored files used this profile, so there is no preview" in page
    assert "data-preview-url" not in page and '<span class="sample">' not in page
    assert other.get(reverse("profile-preview", args=[profile.pk])).status_code == 404

    # Housekeeping deleted the file: the page says so, lists the profile's own columns.
    from ingestion.housekeeping import delete_expired_files

    Upload.objects.filter(pk=upload.pk).update(finished_at="2000-01-01T00:00:00Z")
    assert delete_expired_files(days=1)["files"] == 1
    page = client.get(reverse("profile-edit", args=[profile.pk])).content.decode()
    assert f"The last file that used this profile ({upload.original_name}) was deleted" in page
    assert "data-preview-url" not in page
    assert 'value="menge"' in page  # the profile's own (normalized) column names
    assert client.get(reverse("profile-preview", args=[profile.pk])).status_code == 404
    headers = list(profile.mapping)
    choice = dict(profile.mapping) | {"preis": "total_price"}
    assert client.post(reverse("profile-edit", args=[profile.pk]), form_post(headers, choice)).status_code == 302
    profile.refresh_from_db()
    assert profile.mapping["preis"] == "total_price"


def test_the_mapped_with_profile_note_links_to_the_profile_page(client, user):
    upload, profile = saved_profile(client, user)
    Upload.objects.filter(pk=upload.pk).update(profile=profile, profile_note="new column 'X' not loaded")
    html = client.get(reverse("upload-detail", args=[upload.pk])).content.decode()
    link = reverse("profile-edit", args=[profile.pk])
    assert f'Mapped with profile <a href="{link}">Lieferanten</a>: new column &#x27;X&#x27; not loaded' in html
    assert f'<a class="muted" href="{link}">(change it)</a>' in html


def test_only_a_completed_upload_saves_its_columns_as_a_profile(client, user):
    upload = waiting_upload(user)
    client.force_login(user)
    answer = client.post(reverse("upload-save-profile", args=[upload.pk]), {"name": "Zu früh"})
    assert answer.status_code == 409
    assert answer.content.decode() == "Only the columns of a completed upload can be saved as a profile."
    assert not MappingProfile.objects.exists()
