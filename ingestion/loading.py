"""Writing validated batches: set-based, never a query per row.

Suppliers, materials and purchase orders are upserted per batch in short transactions,
keys sorted so that two uploads sharing them cannot deadlock; they may outlive a cancelled
upload. An upload's lines become visible all at once or not at all, through a line writer
(`open_line_writer`):

- on PostgreSQL each batch's lines go straight into the lines table, inside ONE transaction
  on a connection of the writer's own that stays open from the first batch to the last;
  progress and dimensions commit on the main connection meanwhile, so every page sees them.
- on SQLite, which allows one writer at a time (an open write transaction would lock out
  the progress updates), lines are staged in a table of their own and merged in one
  transaction at the end.

Either way, until the writer commits, the lines are exactly as they were."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from queue import Empty, Full, Queue

import numpy as np
import pandas as pd
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.utils import timezone

from .models import Material, PurchaseOrder, PurchaseOrderLine, StagedLine, Supplier
from .outcomes import Cancelled

CHUNK = 1000  # rows per INSERT statement (SQLite allows 32,766 parameters)
MERGE_CHUNK = 20_000  # staged rows per merge statement; cancel is checked between them


log = logging.getLogger(__name__)


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
    conflict = (
        f"ON CONFLICT ({connection.ops.quote_name(key)}) DO NOTHING RETURNING {connection.ops.quote_name(key)}, id"
    )
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
            cursor.execute(
                f"INSERT INTO {table} ({names}) VALUES {placeholders} {conflict}", [v for row in chunk for v in row]
            )
            created.update(cursor.fetchall())
    return created


_PG_TYPES = {
    "CharField": "text",
    "DateTimeField": "timestamptz",
    "DateField": "date",
    "ForeignKey": "bigint",
    "BigAutoField": "bigint",
}


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
    one more indexed lookup, in the batch's single query."""

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
        values,
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
        unseen_keys = [k for k in keys if k not in known]
        created = 0
        if unseen_keys:
            known.update(_ids(model, key, sorted(unseen_keys)))
            missing = [i for i, k in enumerate(keys) if k not in known]
            if missing:
                # The first row of each missing key, keys sorted: two uploads inserting the
                # same rows take their locks in one order.
                first_rows = np.unique(codes, return_index=True)[1]
                new = frame.iloc[first_rows[missing]][source].sort_values(key_column)
                inserted = _insert_missing(model, columns, values(new), key)
                created = len(inserted)
                known.update(inserted)
                if created < len(new):  # another upload created some of them in the meantime
                    known.update(_ids(model, key, [k for k in new[key_column] if k not in inserted]))
        return np.array([known[k] for k in keys], dtype=np.int64)[codes], created


def upsert_dimensions(lines: pd.DataFrame, cache: IdCache | None = None) -> tuple[pd.DataFrame, DimensionCounts]:
    """Give each line its supplier, material and purchase order ids, creating the missing
    ones. Returns the lines with supplier_id, material_id and purchase_order_id columns."""
    cache = cache or IdCache()
    counts = DimensionCounts()
    if lines.empty:
        return lines.assign(supplier_id=[], material_id=[], purchase_order_id=[]), counts
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


STAGED_COLUMNS = [
    "upload_id",
    "purchase_order_id",
    "line_number",
    "material_id",
    "quantity",
    "unit_price",
    "total_price",
    "currency",
    "source_row",
]


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
        with (
            connection.cursor() as cursor,
            connection.wrap_database_errors,
            cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy,
        ):
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


def merge_lines(
    upload_id, *, should_stop: Callable[[], bool], on_chunk: Callable[[int, int], None] | None = None
) -> tuple[int, int]:
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
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Skip the WAL flush at this commit: the upload's status update, committed
            # right after with the usual flush, makes both durable, and nobody reads
            # "completed" before it.
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        for start in range(low, high + 1, MERGE_CHUNK):
            if should_stop():
                raise Cancelled()
            end = start + MERGE_CHUNK
            params: list = [now, now, upload, start, end]
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


# --- line writers ---------------------------------------------------------------------------

SavingCallback = Callable[[int, int], None]

# Writers open in this process, by upload id: a cancel interrupts their running statement.
_open_writers: dict[str, TransactionLineWriter] = {}
_open_writers_lock = threading.Lock()


def interrupt_line_writes(upload_id) -> None:
    """Stop the statement an upload's line writer is running (called from another thread
    on cancel: a statement may be waiting on lines another upload holds)."""
    with _open_writers_lock:
        writer = _open_writers.get(str(upload_id))
    if writer is not None:
        writer.interrupt()


def open_line_writer(upload_id, *, should_stop: Callable[[], bool]) -> LineWriter:
    """The writer for this database; use it as a context manager: leaving the block without
    `finish` rolls every line back."""
    if connection.vendor == "postgresql":
        return TransactionLineWriter(upload_id, should_stop=should_stop)
    return StagingLineWriter(upload_id, should_stop=should_stop)


class TransactionLineWriter:
    """PostgreSQL: lines are upserted batch by batch inside one transaction held open on a
    connection of the writer's own, and committed by `finish`.

    The writes run in a thread of their own, one batch behind the pipeline: while
    PostgreSQL inserts a batch's lines and checks their foreign keys (SET CONSTRAINTS ALL
    IMMEDIATE, so the checks go with each batch instead of piling up at the commit), the
    pipeline is already reading, validating and resolving the next. Nothing is copied
    twice. If the worker dies PostgreSQL rolls the transaction back, and if its machine
    vanishes `idle_in_transaction_session_timeout` frees the lines it held."""

    IDLE_TIMEOUT = "120s"
    PENDING = 2  # batches handed over but not yet written: bounds memory, keeps the writer busy

    def __init__(self, upload_id, *, should_stop: Callable[[], bool]) -> None:
        self.upload_id = str(upload_id)
        self.should_stop = should_stop
        self.now: datetime = timezone.now()
        self.created = self.updated = 0
        self._jobs: Queue = Queue(maxsize=self.PENDING)
        self._error: BaseException | None = None
        self._raw = None
        self._busy = threading.Lock()  # held while a statement runs
        self._ready = threading.Event()
        self._closing = threading.Event()
        self._committing = self._committed = False
        self._thread = threading.Thread(target=self._run, name=f"line-writer-{self.upload_id}", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        with _open_writers_lock:
            _open_writers[self.upload_id] = self

    # The writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        db = connections.create_connection(DEFAULT_DB_ALIAS)
        try:
            db.ensure_connection()
            db.set_autocommit(False)
            with db.cursor() as cursor:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                # The upload's status row, committed after this with the usual flush, makes
                # both durable; nobody reads "completed" before it.
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
                cursor.execute(f"SET LOCAL idle_in_transaction_session_timeout = '{self.IDLE_TIMEOUT}'")
                # The foreign-key checks are planned once, at the first batch. On a young
                # database the referenced tables are tiny then, the planner picks a
                # sequential scan, and every later check scans a table that the load itself
                # keeps growing (a 100k-row first load took 23 s instead of 3). This
                # transaction reads tables only through their keys: forbid the scan.
                cursor.execute("SET LOCAL enable_seqscan TO OFF")
            self._raw = db.connection
        except BaseException as exc:  # noqa: BLE001 - handed to the pipeline
            self._error = exc
            self._ready.set()
            db.close()
            return
        self._ready.set()
        sql = self._statement()
        try:
            while not self._closing.is_set():
                try:
                    job = self._jobs.get(timeout=0.1)
                except Empty:
                    continue
                if job is _COMMIT:
                    self._committing = True  # the point of no return: a cancel now comes too late
                    db.commit()
                    self._committed = True
                    return
                with self._busy, db.cursor() as cursor:
                    cursor.execute(sql, job)
                    new, changed_rows = cursor.fetchone()
                self.created += new
                self.updated += changed_rows
        except BaseException as exc:  # noqa: BLE001 - handed to the pipeline
            self._error = exc
        finally:
            if not self._committed:
                try:
                    db.rollback()
                except Exception:  # noqa: BLE001 - closing the connection rolls back as well
                    pass
            db.close()

    def _statement(self) -> str:
        lines = _table(PurchaseOrderLine)
        changed = " OR ".join(f"{lines}.{c} IS DISTINCT FROM excluded.{c}" for c in _VALUE_COLUMNS)
        # xmax = 0 marks a freshly inserted row. A row updated here that this upload created in
        # an earlier batch (a file repeating a line) keeps this upload's created_at: it was
        # counted as created already. Unchanged rows are not touched and return nothing.
        return (
            f"WITH written AS (INSERT INTO {lines} (purchase_order_id, line_number, material_id, quantity, unit_price, "
            "total_price, currency, upload_id, created_at, updated_at) "
            "SELECT p, l, m, q, u, t, c, %s, %s, %s FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], "
            "%s::numeric[], %s::numeric[], %s::numeric[], %s::text[]) AS v(p, l, m, q, u, t, c) "
            "ON CONFLICT (purchase_order_id, line_number) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in (*_VALUE_COLUMNS, "upload_id", "updated_at"))
            + f" WHERE {changed} RETURNING (xmax = 0) AS inserted, created_at = %s AS ours) "
            "SELECT COUNT(*) FILTER (WHERE inserted), COUNT(*) FILTER (WHERE NOT inserted AND NOT ours) FROM written"
        )

    # The pipeline's side ------------------------------------------------------------------

    def write(self, lines: pd.DataFrame) -> None:
        """Hand a batch's lines to the writer; waits only while PENDING batches are queued."""
        self._raise_if_failed()
        if lines.empty:
            return
        # One statement may not touch a row twice: within a batch, a repeated line's last
        # occurrence wins (across batches the later statement simply overwrites).
        lines = lines.drop_duplicates(["purchase_order_id", "line_number"], keep="last")
        params = [
            self.upload_id,
            self.now,
            self.now,
            lines["purchase_order_id"].astype("int64").tolist(),
            lines["line_number"].astype("int64").tolist(),
            lines["material_id"].astype("int64").tolist(),
            _nullable(lines["quantity"]),
            _nullable(lines["unit_price"]),
            _nullable(lines["total_price"]),
            lines["currency"].tolist(),
            self.now,
        ]
        self._put(params)

    def finish(self, *, on_saving: SavingCallback | None = None) -> tuple[int, int]:
        """Wait for the last batches, then commit every line at once. Returns (created, updated)."""
        self._put(_COMMIT)
        while self._thread.is_alive():
            self._thread.join(timeout=0.1)
            if self.should_stop() and not self._committing:
                raise Cancelled()
        self._raise_if_failed()
        if not self._committed:
            raise Cancelled()
        return self.created, self.updated

    def _put(self, job) -> None:
        while True:
            self._raise_if_failed()
            if self.should_stop():
                raise Cancelled()
            if not self._thread.is_alive():
                raise RuntimeError("the line writer stopped unexpectedly")
            try:
                self._jobs.put(job, timeout=0.1)
                return
            except Full:
                continue

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def interrupt(self) -> None:
        """Stop the running statement (from any thread); the transaction then rolls back."""
        if self._raw is None or not self._busy.locked() or self._committing:
            return
        try:
            self._raw.cancel_safe(timeout=2)
        except Exception:  # noqa: BLE001 - the checks between batches still stop the run
            log.debug("could not interrupt the line writer", exc_info=True)

    def close(self) -> None:
        """Roll back whatever was not committed and drop the connection."""
        with _open_writers_lock:
            _open_writers.pop(self.upload_id, None)
        if self._thread.is_alive():
            self._closing.set()
            self.interrupt()
            self._thread.join(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_COMMIT = object()


class StagingLineWriter:
    """SQLite: lines are staged batch by batch (committed, so progress stays visible) and
    merged into the lines table in one transaction by `finish`."""

    def __init__(self, upload_id, *, should_stop: Callable[[], bool]) -> None:
        self.upload_id = upload_id
        self.should_stop = should_stop

    def write(self, lines: pd.DataFrame) -> None:
        stage_lines(self.upload_id, lines)

    def finish(self, *, on_saving: SavingCallback | None = None) -> tuple[int, int]:
        drop_duplicate_staged(self.upload_id)
        if on_saving:
            on_saving(0, 1)
        return merge_lines(self.upload_id, should_stop=self.should_stop, on_chunk=on_saving)

    def close(self) -> None:
        """Staged rows are scratch space: gone however the load ended (a dead run's are
        cleared when its upload is taken over)."""
        StagedLine.objects.filter(upload_id=self.upload_id).delete()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


LineWriter = TransactionLineWriter | StagingLineWriter


def _nullable(values: pd.Series) -> list:
    """Decimal strings, None for a blank: psycopg sends them as text, PostgreSQL casts."""
    return values.astype(object).where(values.notna(), None).tolist()
