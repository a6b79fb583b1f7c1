"""Writing validated batches: set-based, never a query per row.

Suppliers, materials and purchase orders are upserted per batch in short transactions,
keys sorted so that two uploads sharing them cannot deadlock; they may outlive a cancelled
upload. Lines go to a staging table first and reach the lines table only in `merge_lines`,
one transaction at the end: until it commits, the lines are exactly as they were."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from django.db import connection, transaction
from django.utils import timezone

from .models import Material, PurchaseOrder, PurchaseOrderLine, StagedLine, Supplier

CHUNK = 1000  # rows per INSERT statement (SQLite allows 32,766 parameters)
MERGE_CHUNK = 20_000  # staged rows per merge statement; cancel is checked between them


class Cancelled(Exception):
    """The upload was cancelled while its lines were being written."""


@dataclass
class DimensionCounts:
    suppliers: int = 0
    materials: int = 0
    purchase_orders: int = 0


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _insert_missing(model, columns: list[str], rows: list[tuple], key: str) -> dict[str, int]:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING: {key: id} of the rows really created
    (a row another upload created a moment earlier is not among them)."""
    created: dict[str, int] = {}
    table = _table(model)
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    conflict = f"ON CONFLICT ({connection.ops.quote_name(key)}) DO NOTHING RETURNING {connection.ops.quote_name(key)}, id"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # One array per column: a handful of parameters however many rows.
            types = [_PG_TYPES[model._meta.get_field(c).get_internal_type()] for c in columns]
            arrays = [list(column) for column in zip(*rows)]
            unnest = ", ".join(f"%s::{t}[]" for t in types)
            cursor.execute(f"INSERT INTO {table} ({names}) SELECT * FROM unnest({unnest}) {conflict}", arrays)
            created.update(cursor.fetchall())
            return created
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            placeholders = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(chunk))
            cursor.execute(f"INSERT INTO {table} ({names}) VALUES {placeholders} {conflict}", [v for row in chunk for v in row])
            created.update(cursor.fetchall())
    return created


_PG_TYPES = {"CharField": "text", "DateTimeField": "timestamptz", "DateField": "date", "ForeignKey": "bigint", "BigAutoField": "bigint"}


def _ids(model, key: str, keys: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    table = _table(model)
    column = connection.ops.quote_name(key)
    with connection.cursor() as cursor:
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            cursor.execute(f"SELECT {column}, id FROM {table} WHERE {column} IN ({', '.join(['%s'] * len(chunk))})", chunk)
            found.update(cursor.fetchall())
    return found


class IdCache:
    """Key -> id of the suppliers, materials and purchase orders one upload has met, so each
    is looked up once per upload rather than once per batch. Rows are never deleted while
    lines point at them (PROTECT), so a cached id stays valid. Each map is emptied when it
    passes MAX_ENTRIES, so memory stays flat however large the file: a forgotten key costs
    one more indexed lookup, in the batch's single query."""

    MAX_ENTRIES = 20_000

    def __init__(self) -> None:
        self.maps: dict[str, dict[str, int]] = {"supplier": {}, "material": {}, "purchase_order": {}}

    def resolve(self, kind: str, model, key: str, frame: pd.DataFrame, key_column: str, columns: list[str], values,
                source: list[str]) -> tuple[dict[str, int], int]:
        """Ids for every key in `frame[key_column]`, inserting the missing rows (built by
        `values(new_rows)` from the `source` columns, as tuples for `columns`). Returns
        ({key: id} for this frame's keys, how many rows were created). Work is per distinct
        key in the batch, never per key the upload has seen so far."""
        known = self.maps[kind]
        if len(known) > self.MAX_ENTRIES:
            known.clear()
        wanted = frame.loc[~frame[key_column].duplicated(), source]
        keys = wanted[key_column].tolist()
        unseen_keys = [k for k in keys if k not in known]
        created = 0
        if unseen_keys:
            known.update(_ids(model, key, sorted(unseen_keys)))
            new = wanted[[k not in known for k in keys]].sort_values(key_column)
            if len(new):
                # Sorted keys: two uploads inserting the same rows take their locks in one order.
                inserted = _insert_missing(model, columns, values(new), key)
                created = len(inserted)
                known.update(inserted)
                if created < len(new):  # another upload created some of them in the meantime
                    known.update(_ids(model, key, [k for k in new[key_column] if k not in inserted]))
        return {k: known[k] for k in keys}, created


def upsert_dimensions(lines: pd.DataFrame, cache: IdCache | None = None) -> tuple[pd.DataFrame, DimensionCounts]:
    """Give each line its supplier, material and purchase order ids, creating the missing
    ones. Returns the lines with supplier_id, material_id and purchase_order_id columns."""
    cache = cache or IdCache()
    counts = DimensionCounts()
    if lines.empty:
        return lines.assign(supplier_id=[], material_id=[], purchase_order_id=[]), counts
    now = timezone.now()

    ids, counts.suppliers = cache.resolve(
        "supplier", Supplier, "key", lines, "supplier_key", ["key", "code", "name", "created_at"],
        lambda new: list(zip(new["supplier_key"], new["supplier_code"], new["supplier_name"], [now] * len(new))),
        ["supplier_key", "supplier_code", "supplier_name"],
    )
    lines = lines.assign(supplier_id=lines["supplier_key"].map(ids))

    ids, counts.materials = cache.resolve(
        "material", Material, "key", lines, "material_key",
        ["key", "code", "description", "category", "unit_of_measure", "created_at"],
        lambda new: list(zip(new["material_key"], new["material_code"], new["material_description"], new["category"],
                             new["unit_of_measure"], [now] * len(new))),
        ["material_key", "material_code", "material_description", "category", "unit_of_measure"],
    )
    lines = lines.assign(material_id=lines["material_key"].map(ids))

    # A purchase order takes its supplier, date and currency from its first line.
    ids, counts.purchase_orders = cache.resolve(
        "purchase_order", PurchaseOrder, "po_number", lines, "po_number",
        ["po_number", "supplier_id", "order_date", "currency", "created_at"],
        lambda new: list(zip(new["po_number"], new["supplier_id"].astype(int).tolist(),
                             [d if isinstance(d, str) else None for d in new["order_date"]], new["currency"], [now] * len(new))),
        ["po_number", "supplier_id", "order_date", "currency"],
    )
    lines = lines.assign(purchase_order_id=lines["po_number"].map(ids))
    return lines, counts


STAGED_COLUMNS = ["upload_id", "purchase_order_id", "line_number", "material_id", "quantity", "unit_price", "total_price", "currency", "source_row"]


def _upload_param(upload_id) -> str:
    # Django stores UUIDs as native uuid on PostgreSQL and as 32 hex digits on SQLite.
    return str(upload_id) if connection.vendor == "postgresql" else upload_id.hex


def stage_lines(upload_id, lines: pd.DataFrame) -> None:
    if lines.empty:
        return
    frame = pd.DataFrame(
        {
            "upload_id": _upload_param(upload_id),
            "purchase_order_id": lines["purchase_order_id"].astype("int64"),
            "line_number": lines["line_number"].astype("int64"),
            "material_id": lines["material_id"].astype("int64"),
            "quantity": lines["quantity"],
            "unit_price": lines["unit_price"],
            "total_price": lines["total_price"],
            "currency": lines["currency"],
            "source_row": lines["source_row"].astype("int64"),
        }
    )
    table = _table(StagedLine)
    names = ", ".join(STAGED_COLUMNS)
    if connection.vendor == "postgresql":
        # COPY: the fastest way into PostgreSQL. Values are numbers, ids and currency
        # codes, so tab-separated text needs no escaping.
        buffer = io.StringIO()
        frame.to_csv(buffer, sep="\t", header=False, index=False, na_rep="\\N")
        connection.ensure_connection()
        # psycopg's copy() bypasses Django's cursor wrapper: map its errors (a cancel's
        # QueryCanceled, a lost connection) to Django's like every other statement's.
        with connection.cursor() as cursor, connection.wrap_database_errors:
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                copy.write(buffer.getvalue())
        return
    rows = list(frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None))
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table} ({names}) VALUES ({', '.join(['%s'] * len(STAGED_COLUMNS))})", rows)


def drop_duplicate_staged(upload_id) -> int:
    """When a file repeats a (PO, line number), its last occurrence wins."""
    table = _table(StagedLine)
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} WHERE upload_id = %s AND id NOT IN ("
            f"SELECT MAX(id) FROM {table} WHERE upload_id = %s GROUP BY purchase_order_id, line_number)",
            [_upload_param(upload_id)] * 2,
        )
        return cursor.rowcount


_VALUE_COLUMNS = ("material_id", "quantity", "unit_price", "total_price", "currency")


def merge_lines(upload_id, *, should_stop: Callable[[], bool], on_chunk: Callable[[int, int], None] | None = None) -> tuple[int, int]:
    """Move an upload's staged lines into the lines table in ONE transaction, in chunks so
    a cancel is seen between them. Unchanged lines are not touched. Returns (created,
    updated). Raises Cancelled (and nothing is written) if should_stop() turns true."""
    staged = _table(StagedLine)
    lines = _table(PurchaseOrderLine)
    upload = _upload_param(upload_id)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MIN(id), MAX(id), COUNT(*) FROM {staged} WHERE upload_id = %s", [upload])
        low, high, total = cursor.fetchone()
    if not total:
        return 0, 0
    changed = " OR ".join(f"{lines}.{c} IS DISTINCT FROM excluded.{c}" for c in _VALUE_COLUMNS)
    insert = (
        f"INSERT INTO {lines} (purchase_order_id, line_number, material_id, quantity, unit_price, total_price, currency, upload_id, created_at, updated_at) "
        f"SELECT purchase_order_id, line_number, material_id, quantity, unit_price, total_price, currency, upload_id, %s, %s "
        f"FROM {staged} WHERE upload_id = %s AND id >= %s AND id < %s "
        f"ON CONFLICT (purchase_order_id, line_number) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in (*_VALUE_COLUMNS, "upload_id", "updated_at"))
        + f" WHERE {changed}"
    )
    created = updated = done = 0
    now = timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # Skip the WAL flush at this commit: the upload's status update, committed
                # right after with the usual flush, makes both durable, and nobody reads
                # "completed" before it.
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
            for start in range(low, high + 1, MERGE_CHUNK):
                if should_stop():
                    raise Cancelled()
                end = start + MERGE_CHUNK
                params = [now, now, upload, start, end]
                if connection.vendor == "postgresql":
                    # xmax = 0 marks a freshly inserted row; rows left unchanged return nothing.
                    cursor.execute(
                        f"WITH written AS ({insert} RETURNING (xmax = 0) AS inserted) "
                        "SELECT COUNT(*) FILTER (WHERE inserted), COUNT(*) FILTER (WHERE NOT inserted) FROM written",
                        params,
                    )
                    new, changed_rows = cursor.fetchone()
                else:
                    cursor.execute(
                        f"SELECT COUNT(*) FROM {staged} s WHERE s.upload_id = %s AND s.id >= %s AND s.id < %s AND NOT EXISTS "
                        f"(SELECT 1 FROM {lines} l WHERE l.purchase_order_id = s.purchase_order_id AND l.line_number = s.line_number)",
                        [upload, start, end],
                    )
                    new = cursor.fetchone()[0]
                    cursor.execute(insert, params)
                    changed_rows = max(0, cursor.rowcount - new)
                created += new
                updated += changed_rows
                done += min(end, high + 1) - start
                if on_chunk:
                    on_chunk(done, high - low + 1)
            if should_stop():
                raise Cancelled()
    return created, updated
