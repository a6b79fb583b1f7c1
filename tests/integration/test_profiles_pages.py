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
