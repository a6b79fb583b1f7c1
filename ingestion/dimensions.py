"""Suppliers, materials and purchase orders: found or created for a batch of lines, set-based.

They are upserted per batch in short transactions that commit at once, so other uploads
share them; each remembers the upload that created it, and a cancelled, failed or reverted
upload removes those that nothing else uses (`remove_unused`). Keys are sorted so that two uploads
creating the same rows take their locks in one order and cannot deadlock. `IdCache`
remembers the ids one upload has met, so a key is looked up once per upload, not once per
batch; what it has not met costs one statement per kind and batch (on PostgreSQL), however
many keys."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.utils import timezone

from .models import Material, PurchaseOrder, PurchaseOrderLine, Supplier

log = logging.getLogger(__name__)

CHUNK = 1000  # rows per statement on SQLite (it allows 32,766 parameters)

_PG_TYPES = {
    "CharField": "text",
    "DateTimeField": "timestamptz",
    "DateField": "date",
    "ForeignKey": "bigint",
}


@dataclass
class DimensionCounts:
    suppliers: int = 0
    materials: int = 0
    purchase_orders: int = 0


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _upsert(
    model, columns: list[str], rows: pd.DataFrame, key: str, now, upload_id=None, *, stored: str = ""
) -> tuple[dict[str, int], int, dict[str, object]]:
    """Create the rows whose key is missing (ON CONFLICT DO NOTHING) and return ({key: id}
    of every row, how many were created, {key: its row's `stored` column} when `stored` is
    named). `rows` holds `columns` (plus created_at = `now` and created_by_upload =
    `upload_id`), sorted by key. A key another upload created while this ran may be missing
    from the answer; `_lookup` finds it."""
    table = _table(model)
    insert_columns = [*columns, "created_at", "created_by_upload_id"]
    names = ", ".join(connection.ops.quote_name(c) for c in insert_columns)
    quoted_key = connection.ops.quote_name(key)
    found: dict[str, int] = {}
    values: dict[str, object] = {}
    if connection.vendor != "postgresql":
        existing = _lookup(model, key, rows[key].tolist(), stored)
        owner = upload_id.hex if upload_id is not None else None  # how Django stores a UUID on SQLite
        missing = [(*row, now, owner) for row in _tuples(rows) if row[columns.index(key)] not in existing]
        inserted = _insert_missing_sqlite(table, names, quoted_key, missing)
        found = {k: row[0] for k, row in existing.items()} | inserted
        if stored:  # what it holds: an existing row's own value, a created row's given one
            given = dict(zip(rows[key].tolist(), rows[stored].tolist(), strict=True))
            values = {k: existing[k][1] if k in existing else given[k] for k in found}
        return found, len(inserted), values
    # One statement with the rows as ONE JSON parameter (psycopg dumps a list parameter
    # element by element in Python: 17 us a value, most of a batch's time on a file of many
    # materials). The outer SELECT reads the statement's snapshot, which holds the rows that
    # existed before it but not the ones its INSERT creates: those come from RETURNING.
    types = [_PG_TYPES[model._meta.get_field(c).get_internal_type()] for c in columns]
    fields = ", ".join(f"(a->>{i})::{t}" for i, t in enumerate(types))
    also = f", {connection.ops.quote_name(stored)}" if stored else ""
    sql = (
        f"WITH v ({names}) AS (SELECT {fields}, %s::timestamptz, %s::uuid FROM json_array_elements(%s::json) a), "
        f"ins AS (INSERT INTO {table} ({names}) SELECT * FROM v ORDER BY {quoted_key} "
        f"ON CONFLICT ({quoted_key}) DO NOTHING RETURNING {quoted_key}, id{also}) "
        f"SELECT {quoted_key}, id, TRUE{also} FROM ins UNION ALL "
        f"SELECT t.{quoted_key}, t.id, FALSE{also.replace(', ', ', t.')} FROM {table} t JOIN v ON t.{quoted_key} = v.{quoted_key}"
    )
    created = 0
    with connection.cursor() as cursor:
        owner = str(upload_id) if upload_id is not None else None
        cursor.execute(sql, [now, owner, rows.to_json(orient="values", force_ascii=False)])
        for k, pk, new, *rest in cursor.fetchall():
            found[k] = pk
            created += new
            if rest:
                values[k] = rest[0]
    return found, created, values


def _tuples(rows: pd.DataFrame) -> list[tuple]:
    return list(rows.astype(object).where(rows.notna(), None).itertuples(index=False, name=None))


def _insert_missing_sqlite(table: str, names: str, key: str, rows: list[tuple]) -> dict[str, int]:
    created: dict[str, int] = {}
    width = len(rows[0]) if rows else 0
    with connection.cursor() as cursor:
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            placeholders = ", ".join(["(" + ", ".join(["%s"] * width) + ")"] * len(chunk))
            cursor.execute(
                f"INSERT INTO {table} ({names}) VALUES {placeholders} ON CONFLICT ({key}) DO NOTHING RETURNING {key}, id",
                [v for row in chunk for v in row],
            )
            created.update(cursor.fetchall())
    return created


def _lookup(model, key: str, keys: list[str], also: str = "") -> dict[str, tuple]:
    """{key: (id,) or (id, its `also` column)} of the rows that exist."""
    found: dict[str, tuple] = {}
    table = _table(model)
    column = connection.ops.quote_name(key)
    selected = f"{column}, id" + (f", {connection.ops.quote_name(also)}" if also else "")
    with connection.cursor() as cursor:
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            cursor.execute(
                f"SELECT {selected} FROM {table} WHERE {column} IN ({', '.join(['%s'] * len(chunk))})", chunk
            )
            found.update((k, tuple(rest)) for k, *rest in cursor.fetchall())
    return found


class IdCache:
    """Key -> id of the suppliers, materials and purchase orders one upload has met, so each
    is looked up once per upload rather than once per batch. Rows are never deleted while
    lines point at them (PROTECT), and `remove_unused` skips a row another load's open
    transaction references, so a cached id stays valid. Each map is emptied when it
    passes MAX_ENTRIES, so memory stays flat however large the file: a forgotten key costs
    one more indexed lookup, in the batch's single statement."""

    MAX_ENTRIES = 50_000  # per kind: about 7 MB for keys of a dozen characters

    def __init__(self, upload_id=None) -> None:
        self.upload_id = upload_id  # recorded on the rows it creates (`created_by_upload`)
        self.maps: dict[str, dict[str, int]] = {"supplier": {}, "material": {}, "purchase_order": {}}
        # {id: (stored, given)} of the rows met whose `compare` column is not what the batch
        # that first met them gives (a purchase order's supplier: po_changes.SupplierCheck).
        self.differs: dict[str, dict[int, tuple]] = {"supplier": {}, "material": {}, "purchase_order": {}}

    def resolve(
        self,
        kind: str,
        model,
        key: str,
        frame: pd.DataFrame,
        key_column: str,
        columns: dict[str, str],
        now,
        *,
        compare: str = "",
    ) -> tuple[np.ndarray, int]:
        """Ids for every row's key in `frame[key_column]`, inserting the missing rows, made of
        `columns` ({table column: frame column}) and created_at = `now`. Returns (an id per
        row of `frame`, how many rows were created). Work is per distinct key in the batch,
        never per key the upload has seen so far. `compare` (a table column among `columns`):
        where a row met for the first time holds another value than the batch's first row
        of its key gives, `differs[kind]` records it, from the same statement."""
        known = self.maps[kind]
        if len(known) > self.MAX_ENTRIES:
            known.clear()
        codes, distinct = pd.factorize(frame[key_column])
        keys = distinct.tolist()
        unseen = [i for i, k in enumerate(keys) if k not in known]
        created = 0
        if unseen:
            # The first row of each unseen key (factorize numbers keys by first appearance).
            # Only the columns needed are taken, and only those rows: the INSERT sorts them by
            # key, so that two uploads inserting the same rows take their locks in one order.
            take = np.unique(codes, return_index=True)[1][unseen]
            new = pd.DataFrame({column: frame[source].array.take(take) for column, source in columns.items()})
            found, created, stored = _upsert(model, list(columns), new, key, now, self.upload_id, stored=compare)
            known.update(found)
            late = [keys[i] for i in unseen if keys[i] not in found]
            if late:  # created by another upload after this statement began
                rows = _lookup(model, key, late, compare)
                known.update((k, row[0]) for k, row in rows.items())
                stored.update((k, row[1]) for k, row in rows.items() if compare)
            if compare:
                given = dict(zip(new[key].tolist(), new[compare].tolist(), strict=True))
                self.differs[kind].update(
                    (known[k], (value, given[k])) for k, value in stored.items() if value != given[k]
                )
        return np.array([known[k] for k in keys], dtype=np.int64)[codes], created


def upsert_dimensions(lines: pd.DataFrame, cache: IdCache | None = None) -> tuple[pd.DataFrame, DimensionCounts]:
    """Give each line its supplier, material and purchase order ids, creating the missing
    ones. Returns the lines with supplier_id, material_id and purchase_order_id columns."""
    cache = cache or IdCache()
    if lines.empty:
        return lines.assign(supplier_id=[], material_id=[], purchase_order_id=[]), DimensionCounts()
    # One short transaction per batch: suppliers, then materials, then purchase orders, each
    # kind's keys sorted, so every upload locks in one order. Its commit skips the WAL
    # flush: a crash can lose only the latest commits, in order, and the upload's status
    # row, committed later with the flush, makes these durable before anyone reads
    # "completed". The lookups go through the unique keys: on a young database the
    # planner's statistics say the tables are tiny and would pick sequential scans of
    # tables the load itself keeps growing.
    # Inside a caller's transaction (the pipeline counts the created rows in the same one),
    # no savepoint: these settings then last until that transaction ends.
    with transaction.atomic(savepoint=False):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF; SET LOCAL enable_seqscan TO OFF")
        return _upsert_all(lines, cache)


def _upsert_all(lines: pd.DataFrame, cache: IdCache) -> tuple[pd.DataFrame, DimensionCounts]:
    counts = DimensionCounts()
    now = timezone.now()
    ids, counts.suppliers = cache.resolve(
        "supplier",
        Supplier,
        "key",
        lines,
        "supplier_key",
        {"key": "supplier_key", "code": "supplier_code", "name": "supplier_name"},
        now,
    )
    lines = lines.assign(supplier_id=ids)
    ids, counts.materials = cache.resolve(
        "material",
        Material,
        "key",
        lines,
        "material_key",
        {
            "key": "material_key",
            "code": "material_code",
            "description": "material_description",
            "category": "category",
            "unit_of_measure": "unit_of_measure",
        },
        now,
    )
    lines = lines.assign(material_id=ids)
    # A purchase order takes its supplier, date and currency from its first line.
    ids, counts.purchase_orders = cache.resolve(
        "purchase_order",
        PurchaseOrder,
        "po_number",
        lines,
        "po_number",
        {"po_number": "po_number", "supplier_id": "supplier_id", "order_date": "order_date", "currency": "currency"},
        now,
        compare="supplier_id",
    )
    lines = lines.assign(purchase_order_id=ids)
    return lines, counts


def remove_unused(*, upload_id) -> tuple[int, int, int]:
    """Delete the suppliers, materials and purchase orders `upload_id` created that nothing
    uses: no line (committed, or being written by another load: those rows are locked, and
    skipped), no purchase order for a supplier. Set-based, one transaction; returns how many
    of each remain (still in use), for the upload's counts. Run after the upload's lines
    rolled back (cancel, failure) or were removed (revert)."""
    orders, materials, suppliers = _table(PurchaseOrder), _table(Material), _table(Supplier)
    lines = _table(PurchaseOrderLine)
    owner = upload_id.hex if connection.vendor == "sqlite" else str(upload_id)
    postgres = connection.vendor == "postgresql"
    with transaction.atomic(), connection.cursor() as cursor:
        for table, used in (
            (orders, f"SELECT 1 FROM {lines} l WHERE l.purchase_order_id = t.id"),
            (materials, f"SELECT 1 FROM {lines} l WHERE l.material_id = t.id"),
            (suppliers, f"SELECT 1 FROM {orders} o WHERE o.supplier_id = t.id"),
        ):
            if postgres:
                # Lock them first, skipping those another load's open transaction has just
                # referenced (its foreign-key checks hold a KEY SHARE lock: in use); once
                # locked nobody can point at them, and the next statement's snapshot sees
                # every line committed until then.
                cursor.execute(
                    f"SELECT id FROM {table} WHERE created_by_upload_id = %s ORDER BY id FOR UPDATE SKIP LOCKED",
                    [owner],
                )
                ids = [row[0] for row in cursor.fetchall()]
                if ids:
                    cursor.execute(f"DELETE FROM {table} t WHERE t.id = ANY(%s) AND NOT EXISTS ({used})", [ids])
            else:
                cursor.execute(
                    f"DELETE FROM {table} WHERE created_by_upload_id = %s AND NOT EXISTS "
                    f"({used.replace('t.id', f'{table}.id')})",
                    [owner],
                )
        left = []
        for table in (suppliers, materials, orders):
            cursor.execute(f"SELECT COUNT(*) FROM {table} WHERE created_by_upload_id = %s", [owner])
            left.append(cursor.fetchone()[0])
    return left[0], left[1], left[2]


def release_created(upload) -> None:
    """After an upload ended without its lines (cancelled, failed) or lost them (reverted):
    remove what it created that nothing uses, and count on the upload what remains."""
    from .models import Upload

    left = remove_unused(upload_id=upload.pk)
    upload.created_suppliers, upload.created_materials, upload.created_purchase_orders = left
    Upload.objects.filter(pk=upload.pk).update(
        created_suppliers=left[0], created_materials=left[1], created_purchase_orders=left[2]
    )


def release_after_end(upload) -> None:
    """`release_created` for every path that ends an upload failed or cancelled (its run, the
    sweeper, a cancel, a give-up): no partial data. A failure here must not stop the end
    being recorded: what stays is counted on the card, and logged with the upload id."""
    try:
        with transaction.atomic():  # a savepoint when the caller's transaction ends the upload
            release_created(upload)
    except Exception:  # noqa: BLE001 - they stay, counted on the card
        log.exception("Upload %s: could not remove the rows it created", upload.pk)
        connection.close_if_unusable_or_obsolete()


def created_note(upload) -> str:
    """What an upload that wrote no lines says of the suppliers, materials and purchase orders."""
    if upload.created_suppliers or upload.created_materials or upload.created_purchase_orders:
        return (
            " The suppliers, materials and purchase orders it created were removed, except "
            f"{upload.created_suppliers} suppliers, {upload.created_materials} materials and "
            f"{upload.created_purchase_orders} purchase orders other uploads use."
        )
    return " The suppliers, materials and purchase orders it created were removed."
