"""The write path without a worker: the id cache, the dimension upserts and the line
writers, on the test database (SQLite or PostgreSQL, whichever the run uses)."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd
import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections

from ingestion.dimensions import IdCache, upsert_dimensions
from ingestion.line_writers import StagingLineWriter, TransactionLineWriter, open_line_writer
from ingestion.models import LineVersion, Material, PurchaseOrder, PurchaseOrderLine, StagedLine, Supplier
from ingestion.validation import LINE_COLUMNS

NOW = datetime(2024, 1, 1, tzinfo=UTC)


def lines(*rows: tuple) -> pd.DataFrame:
    """Validated lines as the pipeline hands them on: (supplier, material, PO, line number,
    quantity, unit price) each; the rest follows from them."""
    records = []
    for n, (supplier, material, po, line, quantity, unit_price) in enumerate(rows):
        records.append(
            {
                "supplier_key": supplier,
                "supplier_code": supplier,
                "supplier_name": f"Supplier {supplier}",
                "material_key": material,
                "material_code": material,
                "material_description": f"Material {material}",
                "category": "MRO",
                "unit_of_measure": "EA",
                "po_number": po,
                "line_number": line,
                "order_date": "2024-03-01",
                "quantity": quantity,
                "unit_price": unit_price,
                "total_price": None,
                "currency": "USD",
                "source_row": n + 2,
            }
        )
    return pd.DataFrame(records, columns=LINE_COLUMNS)


def resolve_suppliers(cache: IdCache, keys: list[str]):
    frame = lines(*[(k, "M1", "PO1", 1, "1", "1") for k in keys])
    return cache.resolve(
        "supplier",
        Supplier,
        "key",
        frame,
        "supplier_key",
        {"key": "supplier_key", "code": "supplier_code", "name": "supplier_name"},
        NOW,
    )


# --- the id cache ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_id_cache_creates_the_missing_keys_once_and_answers_hits_without_a_query(django_assert_num_queries):
    cache = IdCache()
    ids, created = resolve_suppliers(cache, ["S2", "S1", "S2", "S3"])
    assert created == 3
    by_key = dict(Supplier.objects.values_list("key", "id"))
    assert ids.tolist() == [by_key["S2"], by_key["S1"], by_key["S2"], by_key["S3"]]

    with django_assert_num_queries(0):
        again, created = resolve_suppliers(cache, ["S3", "S1"])
    assert created == 0
    assert again.tolist() == [by_key["S3"], by_key["S1"]]

    # A miss costs one statement on PostgreSQL (a lookup and an insert on SQLite), whatever
    # the hits beside it.
    with django_assert_num_queries(1 if connection.vendor == "postgresql" else 2):
        mixed, created = resolve_suppliers(cache, ["S1", "S4", "S2"])
    assert created == 1
    assert mixed.tolist() == [by_key["S1"], Supplier.objects.get(key="S4").id, by_key["S2"]]
    assert Supplier.objects.count() == 4


@pytest.mark.django_db
def test_id_cache_forgets_everything_past_max_entries_and_finds_the_same_ids_again():
    cache = IdCache()
    cache.MAX_ENTRIES = 3
    first, created = resolve_suppliers(cache, ["S1", "S2", "S3", "S4"])
    assert created == 4
    assert len(cache.maps["supplier"]) == 4  # past the limit: emptied at the next batch

    again, created = resolve_suppliers(cache, ["S1", "S5"])
    assert created == 1
    assert set(cache.maps["supplier"]) == {"S1", "S5"}
    assert again[0] == first[0]
    assert Supplier.objects.count() == 5


# --- the dimension upserts ------------------------------------------------------------------


@pytest.mark.django_db
def test_dimension_upsert_creates_exactly_the_missing_rows_and_a_second_call_none():
    # Already there: one of each, as an earlier upload left them.
    old_supplier = Supplier.objects.create(key="S1", code="S1", name="Supplier S1")
    Material.objects.create(key="M1", code="M1", description="Material M1")
    PurchaseOrder.objects.create(po_number="PO1", supplier=old_supplier)
    batch = lines(
        ("S1", "M1", "PO1", 1, "2", "1.50"),
        ("S2", "M2", "PO2", 1, "3", "2.25"),
        ("S2", "M3", "PO2", 2, "1", "9.99"),
        ("S3", "M2", "PO3", 1, "5", "0.10"),
    )

    written, counts = upsert_dimensions(batch, IdCache())

    assert (counts.suppliers, counts.materials, counts.purchase_orders) == (2, 2, 2)
    assert Supplier.objects.count() == 3 and Material.objects.count() == 3 and PurchaseOrder.objects.count() == 3
    suppliers = dict(Supplier.objects.values_list("key", "id"))
    materials = dict(Material.objects.values_list("key", "id"))
    orders = dict(PurchaseOrder.objects.values_list("po_number", "id"))
    assert written["supplier_id"].tolist() == [suppliers[k] for k in ("S1", "S2", "S2", "S3")]
    assert written["material_id"].tolist() == [materials[k] for k in ("M1", "M2", "M3", "M2")]
    assert written["purchase_order_id"].tolist() == [orders[k] for k in ("PO1", "PO2", "PO2", "PO3")]
    # A new purchase order takes its supplier, date and currency from its first line.
    po2 = PurchaseOrder.objects.get(po_number="PO2")
    assert (po2.supplier_id, str(po2.order_date), po2.currency) == (suppliers["S2"], "2024-03-01", "USD")
    assert Material.objects.get(key="M3").description == "Material M3"

    again, counts = upsert_dimensions(batch, IdCache())  # the same file loaded again
    assert (counts.suppliers, counts.materials, counts.purchase_orders) == (0, 0, 0)
    assert again["purchase_order_id"].tolist() == written["purchase_order_id"].tolist()
    assert Supplier.objects.count() == 3 and Material.objects.count() == 3 and PurchaseOrder.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_supplier_another_upload_creates_meanwhile_is_found_and_not_counted():
    """Another upload inserts S2 in a transaction still open while this one resolves S1..S3:
    this one waits for it (on the unique key, or SQLite's write lock), then takes its id."""
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    other.ensure_connection()
    other.set_autocommit(False)
    with other.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ingestion_supplier (key, code, name, created_at) VALUES (%s, %s, %s, %s)",
            ["S2", "S2", "Supplier S2 (other upload)", NOW],
        )
    outcome: dict = {}

    def this_upload() -> None:
        try:
            outcome["ids"], outcome["counts"] = upsert_dimensions(
                lines(
                    ("S1", "M1", "PO1", 1, "1", "1"), ("S2", "M1", "PO2", 1, "1", "1"), ("S3", "M1", "PO3", 1, "1", "1")
                ),
                IdCache(),
            )
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=this_upload)
    thread.start()
    time.sleep(0.5)
    assert thread.is_alive()  # waiting for the other upload's S2
    other.commit()
    other.close()
    thread.join(timeout=30)
    assert "error" not in outcome, outcome.get("error")
    counts = outcome["counts"]
    assert (counts.suppliers, counts.materials, counts.purchase_orders) == (2, 1, 3)
    theirs = Supplier.objects.get(key="S2")
    assert theirs.name == "Supplier S2 (other upload)"
    assert outcome["ids"]["supplier_id"].tolist()[1] == theirs.id
    assert Supplier.objects.count() == 3


# --- the line writers -----------------------------------------------------------------------


def load(writer_class, batches: list[pd.DataFrame], *, upload_id=None) -> tuple[int, int]:
    """Write `batches` through a writer of `writer_class` (None: the database's own) and
    commit them; returns (created, updated)."""
    upload_id = upload_id or uuid.uuid4()
    cache = IdCache()
    opened = (writer_class or open_line_writer)(upload_id, should_stop=lambda: False)
    with opened as writer:
        for batch in batches:
            resolved, _ = upsert_dimensions(batch, cache)
            writer.write(resolved)
        return writer.finish()


def stored() -> dict[tuple[str, int], tuple[Decimal, Decimal]]:
    return {
        (line.purchase_order.po_number, line.line_number): (line.quantity, line.unit_price)
        for line in PurchaseOrderLine.objects.select_related("purchase_order")
    }


WRITERS = [pytest.param(StagingLineWriter, id="staging"), pytest.param(None, id="this-database's")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("writer_class", WRITERS)
def test_line_writer_counts_created_updated_and_unchanged_lines_exactly(writer_class):
    first = lines(
        ("S1", "M1", "PO1", 1, "2", "1.50"),
        ("S1", "M2", "PO1", 2, "3", "2.25"),
        ("S2", "M1", "PO2", 1, "1", "0.333333"),
    )
    assert load(writer_class, [first]) == (3, 0)
    before = dict(
        PurchaseOrderLine.objects.values_list("line_number", "updated_at").filter(purchase_order__po_number="PO2")
    )

    second = lines(
        ("S1", "M1", "PO1", 1, "2", "1.50"),  # unchanged
        ("S1", "M2", "PO1", 2, "3", "2.40"),  # a new price: updated
        ("S2", "M1", "PO2", 1, "1", "0.333333"),  # unchanged
        ("S2", "M1", "PO2", 2, "7", "12345678.123456"),  # new
    )
    assert load(writer_class, [second]) == (1, 1)
    assert stored() == {
        ("PO1", 1): (Decimal("2"), Decimal("1.5")),
        ("PO1", 2): (Decimal("3"), Decimal("2.4")),
        ("PO2", 1): (Decimal("1"), Decimal("0.333333")),
        ("PO2", 2): (Decimal("7"), Decimal("12345678.123456")),
    }
    # An unchanged line is not written at all.
    assert PurchaseOrderLine.objects.get(purchase_order__po_number="PO2", line_number=1).updated_at == before[1]
    assert load(writer_class, [second]) == (0, 0)


def versions_of(po: str, line: int) -> list[tuple]:
    line_id = PurchaseOrderLine.objects.get(purchase_order__po_number=po, line_number=line).pk
    return list(
        LineVersion.objects.filter(line_id=line_id)
        .order_by("id")
        .values_list("kind", "unit_price", "upload_id", "valid_from", "valid_to")
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("writer_class", WRITERS)
def test_line_writer_records_the_state_a_change_replaces_and_nothing_for_created_lines(writer_class):
    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    rows = [("S1", "M1", "PO1", 1, "2", "1.50"), ("S1", "M2", "PO1", 2, "3", "2.25")]
    assert load(writer_class, [lines(*rows)], upload_id=first) == (2, 0)
    assert LineVersion.objects.count() == 0  # a created line is its own version
    created_at = PurchaseOrderLine.objects.get(purchase_order__po_number="PO1", line_number=2).created_at

    assert load(writer_class, [lines(rows[0], ("S1", "M2", "PO1", 2, "3", "2.40"))], upload_id=second) == (0, 1)
    (old, new) = versions_of("PO1", 2)
    assert old[:3] == ("created", Decimal("2.25"), first) and old[3] == created_at
    assert new[:3] == ("updated", Decimal("2.4"), second) and new[4] is None
    assert old[4] == new[3]  # the replaced state ends where the new one begins
    assert versions_of("PO1", 1) == []  # unchanged: nothing written

    assert load(writer_class, [lines(rows[0], ("S1", "M2", "PO1", 2, "3", "2.60"))], upload_id=third) == (0, 1)
    assert [(kind, price, upload, until is None) for kind, price, upload, _, until in versions_of("PO1", 2)] == [
        ("created", Decimal("2.25"), first, False),
        ("updated", Decimal("2.4"), second, False),
        ("updated", Decimal("2.6"), third, True),
    ]
    assert LineVersion.objects.count() == 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("writer_class", WRITERS)
def test_line_writer_keeps_the_last_of_a_repeated_line_and_counts_it_once(writer_class):
    batches = [
        lines(
            ("S1", "M1", "PO1", 1, "1", "1.00"),
            ("S1", "M1", "PO1", 2, "1", "5.00"),
            ("S1", "M1", "PO1", 1, "2", "2.00"),
        ),
        lines(("S1", "M1", "PO1", 1, "3", "3.00")),  # again, in a later batch
    ]
    assert load(writer_class, batches) == (2, 0)
    assert stored() == {("PO1", 1): (Decimal("3"), Decimal("3")), ("PO1", 2): (Decimal("1"), Decimal("5"))}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("writer_class", WRITERS)
def test_a_line_writer_left_without_finish_writes_no_line_and_leaves_no_staged_row(writer_class):
    upload_id = uuid.uuid4()
    with (writer_class or open_line_writer)(upload_id, should_stop=lambda: False) as writer:
        resolved, _ = upsert_dimensions(
            lines(("S1", "M1", "PO1", 1, "1", "1.00"), ("S1", "M1", "PO1", 2, "1", "2")), IdCache()
        )
        writer.write(resolved)
        if isinstance(writer, StagingLineWriter):
            assert StagedLine.objects.filter(upload_id=upload_id).count() == 2
        else:
            assert isinstance(writer, TransactionLineWriter)
    assert StagedLine.objects.count() == 0
    assert PurchaseOrderLine.objects.count() == 0
    assert PurchaseOrder.objects.count() == 1  # dimensions commit at once: other uploads share them
