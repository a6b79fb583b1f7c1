"""The mapping step in Chromium: unknown headers stop for a choice, the preview follows the
dropdowns, the choice is saved as a profile, and the next file of that format loads alone."""

from __future__ import annotations

from playwright.sync_api import expect

from ingestion.models import MappingProfile, PurchaseOrderLine, Upload
from tests.e2e.test_dashboard import card, drop_files

HEADER = "Lieferant,Artikel,Bestellung,Menge,Preis,Bemerkung"
FIRST = HEADER + "\nAcme,Bolt M6,B-1,10,0.25,rush\nAcme,Nut M6,B-1,20,abc,\nBeta GmbH,Washer,B-2,5,0.05,x\n"
SECOND = HEADER + "\nGamma,Screw,B-3,7,1.50,\nAcme,Bolt M6,B-1,10,0.25,rush\n"


def test_a_buyer_maps_unknown_columns_saves_a_profile_and_the_next_file_loads_alone(signed_in):
    alice = signed_in("alice")
    page = alice.page
    drop_files(page, {"bestellungen.csv": FIRST})
    first = card(page, name="bestellungen.csv")
    expect(first).to_have_attribute("data-status", "needs_mapping", timeout=60_000)
    form = first.locator("form.mapping-form")
    expect(form.locator(".mapping-missing")).to_contain_text("Still needed: supplier code or supplier name")
    expect(form.locator(".load-mapped")).to_be_disabled()
    for column, field in [
        ("Lieferant", "supplier_name"),
        ("Artikel", "material_description"),
        ("Bestellung", "po_number"),
        ("Menge", "quantity"),
        ("Preis", "unit_price"),
    ]:
        form.locator(f'select[data-header="{column}"]').select_option(field)
    expect(form.locator(".mapping-missing")).to_have_text("")
    # The preview follows the choice: row 3's price 'abc' is rejected, its reason on hover.
    bad = form.locator(".preview-table td.cell-error")
    expect(bad).to_have_count(1)
    expect(bad).to_have_attribute("title", "Unit price is not a number.")
    expect(form.locator(".preview-summary")).to_contain_text("1 rejected")
    # Two columns on one field: said beside the field before anything is sent.
    form.locator('select[data-header="Bemerkung"]').select_option("quantity")
    expect(form.locator('select[data-header="Bemerkung"] + .field-error')).to_contain_text("Also chosen for 'Menge'")
    expect(form.locator(".load-mapped")).to_be_disabled()
    form.locator('select[data-header="Bemerkung"]').select_option("")
    form.locator('input[name="remember"]').check()
    form.locator('input[name="save_profile"]').fill("Lieferanten")
    form.locator(".load-mapped").click()
    expect(first).to_have_attribute("data-status", "completed", timeout=60_000)
    upload = Upload.objects.get(original_name="bestellungen.csv")
    assert upload.imported_rows == 2 and upload.rejected_rows == 1
    assert MappingProfile.objects.get().name == "Lieferanten"

    drop_files(page, {"bestellungen-2.csv": SECOND})
    second = card(page, name="bestellungen-2.csv")
    expect(second).to_have_attribute("data-status", "completed", timeout=60_000)
    expect(second).to_contain_text("Mapped with profile Lieferanten")
    assert Upload.objects.get(original_name="bestellungen-2.csv").imported_rows == 2
    assert PurchaseOrderLine.objects.count() == 3


def test_a_buyer_edits_a_profile_with_its_preview_and_an_options_mapping_never_sticks(signed_in):
    alice = signed_in("alice")
    page = alice.page
    # The Options panel's mapping serves the files dropped with it, then clears: the next
    # file is not held to it (it asks for its own columns instead of failing on these).
    page.locator("details.options summary").click()
    page.locator("#id_mapping").fill(
        '{"Lieferant": "supplier_name", "Artikel": "material_description", "Bestellung": "po_number",'
        ' "Menge": "quantity", "Preis": "unit_price"}'
    )
    drop_files(page, {"bestellungen.csv": FIRST})
    first = card(page, name="bestellungen.csv")
    expect(first).to_have_attribute("data-status", "completed", timeout=60_000)
    expect(page.locator("#id_mapping")).to_have_value("")
    expect(page.locator(".mapping-used")).to_contain_text("used for 1 file and cleared")
    drop_files(page, {"andere.csv": "Name,Teil,Auftrag,Anzahl,Kosten\nAcme,Bolt,A-1,1,2\n"})
    other = card(page, name="andere.csv")
    expect(other).to_have_attribute("data-status", "needs_mapping", timeout=60_000)
    assert "not in this file" not in Upload.objects.get(original_name="andere.csv").error_message

    # A profile from the first file, then its page: the same form, previewed on that file.
    upload = Upload.objects.get(original_name="bestellungen.csv")
    page.goto(f"{alice.base_url}/uploads/{upload.pk}/")
    page.locator("form.save-profile input[name=name]").fill("Lieferanten")
    page.locator("form.save-profile button").click()
    page.wait_for_url(f"{alice.base_url}/profiles/*/")
    form = page.locator("form.mapping-form")
    expect(form.locator(".preview-table td.cell-error")).to_have_count(1)  # row 3's price 'abc'
    # Taking the remark column as the price: every row's price is then rejected, live.
    form.locator('select[data-header="Preis"]').select_option("")
    form.locator('select[data-header="Bemerkung"]').select_option("unit_price")
    expect(form.locator(".preview-summary")).to_contain_text("3 rejected")
    form.locator('select[data-header="Bemerkung"]').select_option("")
    form.locator('select[data-header="Preis"]').select_option("total_price")
    form.locator('input[name="currency"]').fill("EUR")
    form.locator(".load-mapped").click()
    page.wait_for_url(f"{alice.base_url}/profiles/*/")
    profile = MappingProfile.objects.get(name="Lieferanten")
    assert (profile.mapping["preis"], profile.currency) == ("total_price", "EUR")
