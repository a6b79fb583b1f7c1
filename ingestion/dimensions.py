"""Suppliers, materials and purchase orders: found or created for a batch of lines, set-based.

They are upserted per batch in short transactions that commit at once, so other uploads
share them (and they may outlive a cancelled upload); keys are sorted so that two uploads
creating the same rows take their locks in one order and cannot deadlock. `IdCache`
remembers the ids one upload has met, so a key is looked up once per upload, not once per
batch; what it has not met costs one statement per kind and batch (on PostgreSQL), however
many keys."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.utils import timezone

from .models import Material, PurchaseOrder, Supplier

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


def _upsert(model, columns: list[str], rows: list[tuple], key: str) -> tuple[dict[str, int], int]:
    """Create the rows whose key is missing (ON CONFLICT DO NOTHING) and return ({key: id}
    of every row, how many were created). `rows` are sorted by key. A key another upload
    created while this ran may be missing from the answer; `_ids` finds it."""
    table = _table(model)
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    quoted_key = connection.ops.quote_name(key)
    if connection.vendor != "postgresql":
        found = _ids(model, key, [row[columns.index(key)] for row in rows])
        missing = [row for row in rows if row[columns.index(key)] not in found]
        created = _insert_missing_sqlite(table, names, quoted_key, missing)
        found.update(created)
        return found, len(created)
    # One statement, one array per column: a handful of parameters however many rows. The
    # outer SELECT reads the statement's snapshot, which holds the rows that existed
    # before it but not the ones its INSERT creates: those come from RETURNING, flagged.
    types = [_PG_TYPES[model._meta.get_field(c).get_internal_type()] for c in columns]
    arrays = [list(column) for column in zip(*rows)]
    unnest = ", ".join(f"%s::{t}[]" for t in types)
    sql = (
        f"WITH v AS (SELECT * FROM unnest({unnest}) AS v({names})), "
        f"ins AS (INSERT INTO {table} ({names}) SELECT * FROM v ORDER BY {quoted_key} "
        f"ON CONFLICT ({quoted_key}) DO NOTHING RETURNING {quoted_key}, id) "
        f"SELECT {quoted_key}, id, TRUE FROM ins UNION ALL "
        f"SELECT t.{quoted_key}, t.id, FALSE FROM {table} t JOIN v ON t.{quoted_key} = v.{quoted_key}"
    )
    found: dict[str, int] = {}
    created = 0
    with connection.cursor() as cursor:
        cursor.execute(sql, arrays)
        for k, pk, new in cursor.fetchall():
            found[k] = pk
            created += new
    return found, created


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


def _ids(model, key: str, keys: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    table = _table(model)
    column = connection.ops.quote_name(key)
    with connection.cursor() as cursor:
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            cursor.execute(
                f"SELECT {column}, id FROM {table} WHERE {column} IN ({', '.join(['%s'] * len(chunk))})", chunk
            )
            found.update(cursor.fetchall())
    return found


class IdCache:
    """Key -> id of the suppliers, materials and purchase orders one upload has met, so each
    is looked up once per upload rather than once per batch. Rows are never deleted while
    lines point at them (PROTECT), so a cached id stays valid. Each map is emptied when it
    passes MAX_ENTRIES, so memory stays flat however large the file: a forgotten key costs
    one more indexed lookup, in the batch's single statement."""

    MAX_ENTRIES = 20_000

    def __init__(self) -> None:
        self.maps: dict[str, dict[str, int]] = {"supplier": {}, "material": {}, "purchase_order": {}}

    def resolve(
        self,
        kind: str,
        model,
        key: str,
        frame: pd.DataFrame,
        key_column: str,
        columns: list[str],
        values: Callable[[pd.DataFrame], list[tuple]],
        source: list[str],
    ) -> tuple[np.ndarray, int]:
        """Ids for every row's key in `frame[key_column]`, inserting the missing rows (built
        by `values(new_rows)` from the `source` columns, as tuples for `columns`). Returns
        (an id per row of `frame`, how many rows were created). Work is per distinct key in
        the batch, never per key the upload has seen so far."""
        known = self.maps[kind]
        if len(known) > self.MAX_ENTRIES:
            known.clear()
        codes, distinct = pd.factorize(frame[key_column])
        keys = distinct.tolist()
        unseen = [i for i, k in enumerate(keys) if k not in known]
        created = 0
        if unseen:
            # The first row of each unseen key, keys sorted: two uploads inserting the same
            # rows take their locks in one order.
            first_rows = np.unique(codes, return_index=True)[1]
            new = frame.iloc[first_rows[unseen]][source].sort_values(key_column)
            found, created = _upsert(model, columns, values(new), key)
            known.update(found)
            late = [keys[i] for i in unseen if keys[i] not in found]
            if late:  # created by another upload after this statement began
                known.update(_ids(model, key, late))
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
    with transaction.atomic():
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
        ["key", "code", "name", "created_at"],
        lambda new: list(zip(new["supplier_key"], new["supplier_code"], new["supplier_name"], [now] * len(new))),
        ["supplier_key", "supplier_code", "supplier_name"],
    )
    lines = lines.assign(supplier_id=ids)

    ids, counts.materials = cache.resolve(
        "material",
        Material,
        "key",
        lines,
        "material_key",
        ["key", "code", "description", "category", "unit_of_measure", "created_at"],
        lambda new: list(
            zip(
                new["material_key"],
                new["material_code"],
                new["material_description"],
                new["category"],
                new["unit_of_measure"],
                [now] * len(new),
            )
        ),
        ["material_key", "material_code", "material_description", "category", "unit_of_measure"],
    )
    lines = lines.assign(material_id=ids)

    # A purchase order takes its supplier, date and currency from its first line.
    ids, counts.purchase_orders = cache.resolve(
        "purchase_order",
        PurchaseOrder,
        "po_number",
        lines,
        "po_number",
        ["po_number", "supplier_id", "order_date", "currency", "created_at"],
        lambda new: list(
            zip(
                new["po_number"],
                new["supplier_id"].astype(int).tolist(),
                [d if isinstance(d, str) else None for d in new["order_date"]],
                new["currency"],
                [now] * len(new),
            )
        ),
        ["po_number", "supplier_id", "order_date", "currency"],
    )
    lines = lines.assign(purchase_order_id=ids)
    return lines, counts
