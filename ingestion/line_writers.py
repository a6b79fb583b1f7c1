"""Writing an upload's lines so that they become visible all at once or not at all.

`open_line_writer` picks the writer for the database:

- PostgreSQL (`TransactionLineWriter`): each batch's lines go straight into the lines
  table, inside ONE transaction on a connection of the writer's own that stays open from
  the first batch to the last; progress and dimensions commit on the main connection
  meanwhile, so every page sees them.
- SQLite (`StagingLineWriter`), which allows one writer at a time (an open write
  transaction would lock out the progress updates): lines are staged in a table of their
  own and merged in one transaction at the end.

Both write with the same upsert (`upsert_lines_sql`): a line is identified by its purchase
order and line number, a changed value updates it, an unchanged line is not touched. Until
the writer commits, the lines are exactly as they were."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from queue import Empty, Full, Queue

import pandas as pd
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.utils import timezone

from . import batch_json, line_history, po_changes, repeats, review
from .line_history import VALUE_COLUMNS
from .models import PurchaseOrderLine, StagedLine
from .outcomes import Cancelled

MERGE_CHUNK = 20_000  # staged rows per merge statement (SQLite); cancel is checked between them

SavingCallback = Callable[[int, int], None]

log = logging.getLogger(__name__)

LINE_COLUMNS = (
    "purchase_order_id",
    "line_number",
    "material_id",
    "quantity",
    "unit_price",
    "total_price",
    "currency",
    "upload_id",
    "created_at",
    "updated_at",
)


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def upsert_lines_sql(select: str, condition: str = "") -> str:
    """INSERT the rows `select` produces (LINE_COLUMNS, in order) into the lines table; a
    line already there takes the new values only if one of them differs (and `condition`,
    the upload's policy, allows it: `review.update_condition`), so an unchanged line is
    neither written nor returned by a RETURNING clause."""
    lines = _table(PurchaseOrderLine)
    changed = " OR ".join(f"{lines}.{c} IS DISTINCT FROM excluded.{c}" for c in VALUE_COLUMNS)
    return (
        f"INSERT INTO {lines} ({', '.join(LINE_COLUMNS)}) {select} "
        "ON CONFLICT (purchase_order_id, line_number) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in (*VALUE_COLUMNS, "upload_id", "updated_at"))
        + f" WHERE ({changed}){condition}"
    )


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


def open_line_writer(
    upload_id, *, should_stop: Callable[[], bool], policy: str = "update", dry_run: bool = False
) -> LineWriter:
    """The writer for this database; use it as a context manager: leaving the block without
    `finish` rolls every line back. `policy` is the upload's `on_existing`; a `dry_run`
    writes no line and counts what would be written."""
    if dry_run:
        return DryRunWriter(upload_id, should_stop=should_stop)
    if connection.vendor == "postgresql":
        return TransactionLineWriter(upload_id, should_stop=should_stop, policy=policy)
    return StagingLineWriter(upload_id, should_stop=should_stop, policy=policy)


def batch_statement(*, upload_id: str, policy: str, now: datetime, user_id) -> tuple[str, list]:
    """The line writer's statement for one batch, and the parameters that follow the batch's
    own (`batch_parameters`). xmax = 0 marks a freshly inserted row. A row updated here that
    this upload created in an earlier batch (a file repeating a line) keeps this upload's
    created_at: it was counted as created already. Unchanged rows are not touched and return
    nothing, so they write no version either."""
    condition, condition_params = review.update_condition(
        upload_id, policy=policy, lines=_table(PurchaseOrderLine), now=now
    )
    upsert = upsert_lines_sql(
        "SELECT (a->>0)::bigint, (a->>1)::bigint, (a->>2)::bigint, (a->>3)::numeric, (a->>4)::numeric, "
        "(a->>5)::numeric, a->>6, %s::uuid, %s, %s FROM json_array_elements(%s::json) a",
        condition,
    )
    counts = "SELECT COUNT(*) FILTER (WHERE inserted), COUNT(*) FILTER (WHERE NOT inserted AND NOT ours) FROM written"
    if not line_history.history_enabled():
        return f"WITH written AS ({upsert} RETURNING (xmax = 0) AS inserted, created_at = %s AS ours) {counts}", [
            *condition_params,
            now,
        ]
    versions, _ = line_history.versions_after_upsert("written")
    return (
        f"WITH written AS ({upsert} RETURNING {line_history.RETURNING}, created_at = %s AS ours), {versions} {counts}",
        [*condition_params, now, now, now, now, upload_id, user_id],
    )


def batch_parameters(*, upload_id: str, now: datetime, lines_json: str) -> list:
    """A batch's own parameters of `batch_statement` (its lines as `batch_json.lines_json`)."""
    return [upload_id, now, now, lines_json]


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

    def __init__(self, upload_id, *, should_stop: Callable[[], bool], policy: str = "update") -> None:
        self.upload_id = str(upload_id)
        self.should_stop = should_stop
        self.policy = policy
        self.now: datetime = timezone.now()
        self.created = self.updated = 0
        self.user_id = line_history.owner_id(upload_id)
        self._orders: list[pd.DataFrame] = []  # each batch's orders, for `po_changes` at the commit
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
        sql, tail = batch_statement(upload_id=self.upload_id, policy=self.policy, now=self.now, user_id=self.user_id)
        try:
            while not self._closing.is_set():
                try:
                    job = self._jobs.get(timeout=0.1)
                except Empty:
                    continue
                if job is _COMMIT:
                    with self._busy, db.cursor() as cursor:
                        self._write_orders(cursor)
                    self._committing = True  # the point of no return: a cancel now comes too late
                    db.commit()
                    self._committed = True
                    return
                with self._busy, db.cursor() as cursor:
                    cursor.execute(sql, [*job, *tail])
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

    def _write_orders(self, cursor) -> None:
        """The orders' dates and currencies (`po_changes`), last, just before the commit: the
        order rows stay locked for this one statement only, and the lines' versions were
        written against the dates as they were."""
        if not self._orders:
            return
        orders = po_changes.collected(self._orders)
        self._orders = []
        cursor.execute(
            po_changes.apply_sql(policy=self.policy),
            {
                "orders": orders.to_json(orient="values", force_ascii=False),
                "upload": self.upload_id,
                "now": self.now,
                "user": self.user_id,
            },
        )

    # The pipeline's side ------------------------------------------------------------------

    def write(self, lines: pd.DataFrame) -> None:
        """Hand a batch's lines to the writer; waits only while PENDING batches are queued."""
        self._raise_if_failed()
        if lines.empty:
            return
        # One statement may not touch a row twice: within a batch, a repeated line's last
        # occurrence wins (across batches the later statement simply overwrites).
        lines = repeats.last_of_each(lines)
        self._orders.append(po_changes.batch_orders(lines))
        self._put(batch_parameters(upload_id=self.upload_id, now=self.now, lines_json=batch_json.lines_json(lines)))

    def diff(self, upload, lines: pd.DataFrame) -> tuple[int, int]:
        """Record the batch's changes to existing lines (`review`), on the caller's connection:
        it sees the lines as committed, before this writer's open transaction."""
        return review.diff_batch(upload, lines)

    def diff_rest(self, upload) -> tuple[int, int]:
        """Every batch was diffed as it came."""
        return 0, 0

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


STAGED_COLUMNS = [
    "upload_id",
    "purchase_order_id",
    "line_number",
    "material_id",
    "quantity",
    "unit_price",
    "total_price",
    "currency",
    "order_date",
    "source_row",
]


class StagingLineWriter:
    """SQLite: lines are staged batch by batch (committed, so progress stays visible) and
    merged into the lines table in one transaction by `finish`, with the orders' dates and
    currencies (`po_changes.apply_orm`)."""

    def __init__(self, upload_id, *, should_stop: Callable[[], bool], policy: str = "update") -> None:
        self.upload_id = upload_id
        self.should_stop = should_stop
        self.policy = policy
        self._upload = upload_id.hex  # how Django stores a UUID on SQLite
        self._orders: list[pd.DataFrame] = []  # each batch's orders, for `po_changes` in the merge

    def write(self, lines: pd.DataFrame) -> None:
        if lines.empty:
            return
        self._orders.append(po_changes.batch_orders(repeats.last_of_each(lines)))
        frame = pd.DataFrame(
            {
                "upload_id": self._upload,
                "purchase_order_id": lines["purchase_order_id"].astype("int64"),
                "line_number": lines["line_number"].astype("int64"),
                "material_id": lines["material_id"].astype("int64"),
                "quantity": lines["quantity"],
                "unit_price": lines["unit_price"],
                "total_price": lines["total_price"],
                "currency": lines["currency"],
                "order_date": pd.to_datetime(lines["order_date"], errors="coerce").dt.strftime("%Y-%m-%d"),
                "source_row": lines["source_row"].astype("int64"),
            }
        )
        rows = list(frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None))
        placeholders = ", ".join(["%s"] * len(STAGED_COLUMNS))
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {_table(StagedLine)} ({', '.join(STAGED_COLUMNS)}) VALUES ({placeholders})", rows
            )

    def diff(self, upload, lines: pd.DataFrame) -> tuple[int, int]:
        """The staged lines are diffed at once, by `diff_rest`."""
        return 0, 0

    def diff_rest(self, upload) -> tuple[int, int]:
        """Record the staged lines' changes to existing lines (`review`), before the merge."""
        self._drop_repeats()
        return review.diff_staged(upload)

    def finish(self, *, on_saving: SavingCallback | None = None) -> tuple[int, int]:
        """Merge the staged lines in ONE transaction, in chunks so a cancel is seen between
        them. Returns (created, updated); raises Cancelled (nothing written) on a cancel."""
        self._drop_repeats()
        if on_saving:
            on_saving(0, 1)
        staged = _table(StagedLine)
        lines = _table(PurchaseOrderLine)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT MIN(id), MAX(id) FROM {staged} WHERE upload_id = %s", [self._upload])
            low, high = cursor.fetchone()
        if low is None:
            return 0, 0
        now = timezone.now()
        condition, condition_params = review.update_condition(self._upload, policy=self.policy, lines=lines, now=now)
        upsert = upsert_lines_sql(
            "SELECT purchase_order_id, line_number, material_id, quantity, unit_price, total_price, currency, "
            f"upload_id, %s, %s FROM {staged} WHERE upload_id = %s AND id >= %s AND id < %s",
            condition,
        )
        count_new = (
            f"SELECT COUNT(*) FROM {staged} s WHERE s.upload_id = %s AND s.id >= %s AND s.id < %s AND NOT EXISTS "
            f"(SELECT 1 FROM {lines} l WHERE l.purchase_order_id = s.purchase_order_id AND l.line_number = s.line_number)"
        )
        created = updated = 0
        history = line_history.history_enabled()
        user_id = line_history.owner_id(self.upload_id)
        with transaction.atomic(), connection.cursor() as cursor:
            for start in range(low, high + 1, MERGE_CHUNK):
                if self.should_stop():
                    raise Cancelled()
                end = start + MERGE_CHUNK
                cursor.execute(count_new, [self._upload, start, end])
                new = cursor.fetchone()[0]
                chunk = (
                    f"SELECT purchase_order_id, line_number, {', '.join(VALUE_COLUMNS)} FROM {staged} "
                    "WHERE upload_id = %s AND id >= %s AND id < %s"
                )
                chunk_params = [self._upload, start, end]
                if history:
                    recorded = line_history.before_staged_chunk(cursor, staged_where=chunk, params=chunk_params)
                # SQLite counts a row as changed whether the upsert inserted or updated it,
                # and not at all when the WHERE left it as it was.
                cursor.execute(upsert, [now, now, self._upload, start, end, *condition_params])
                created += new
                updated += max(0, cursor.rowcount - new)
                if history:
                    line_history.record_staged_chunk(
                        cursor,
                        staged_where=chunk,
                        params=chunk_params,
                        upload=self._upload,
                        user_id=user_id,
                        now=now,
                        recorded=recorded,
                    )
                if on_saving:
                    on_saving(min(end, high + 1) - low, high - low + 1)
            if self._orders:  # the orders' dates and currencies, last, as on PostgreSQL
                po_changes.apply_orm(
                    orders=po_changes.collected(self._orders),
                    policy=self.policy,
                    upload_id=self.upload_id,
                    now=now,
                    user_id=user_id,
                )
            if self.should_stop():
                raise Cancelled()
        return created, updated

    def _drop_repeats(self) -> None:
        """When a file repeats a (PO, line number), its last occurrence wins."""
        table = _table(StagedLine)
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE upload_id = %s AND id NOT IN ("
                f"SELECT MAX(id) FROM {table} WHERE upload_id = %s GROUP BY purchase_order_id, line_number)",
                [self._upload] * 2,
            )

    def close(self) -> None:
        """Staged rows are scratch space: gone however the load ended (a dead run's are
        cleared when its upload is taken over)."""
        StagedLine.objects.filter(upload_id=self.upload_id).delete()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class DryRunWriter:
    """`ingest --dry-run`: no line is written; each batch is diffed against the lines
    (`review`, which records the proposed changes the caller reads and then rolls back) and
    `finish` returns (new, changed) as a load would have created and updated them. On SQLite
    the lines are staged (in the caller's transaction) and diffed at once, as for a review."""

    def __init__(self, upload_id, *, should_stop: Callable[[], bool]) -> None:
        self.postgres = connection.vendor == "postgresql"
        self.staging = None if self.postgres else StagingLineWriter(upload_id, should_stop=should_stop)
        self.lines = self.met = self.changed = 0
        self._orders: list[pd.DataFrame] = []

    def orders(self) -> pd.DataFrame:
        """Each order the file brings with its date and currency (`po_changes.batch_orders`),
        for the dry run's report of the orders that would change."""
        return po_changes.collected(self._orders)

    def write(self, lines: pd.DataFrame) -> None:
        if not lines.empty:
            self._orders.append(po_changes.batch_orders(repeats.last_of_each(lines)))
        if self.staging is not None:
            self.staging.write(lines)
        else:
            self.lines += len(lines.drop_duplicates(["purchase_order_id", "line_number"]))

    def diff(self, upload, lines: pd.DataFrame) -> tuple[int, int]:
        if self.staging is not None:
            return 0, 0
        met, changed = review.diff_batch(upload, lines)
        self.met += met
        self.changed += changed
        return met, changed

    def diff_rest(self, upload) -> tuple[int, int]:
        if self.staging is None:
            return 0, 0
        self.met, self.changed = self.staging.diff_rest(upload)
        self.lines = StagedLine.objects.filter(upload_id=self.staging.upload_id).count()
        return self.met, self.changed

    def finish(self, *, on_saving: SavingCallback | None = None) -> tuple[int, int]:
        return max(0, self.lines - self.met), self.changed

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.staging is not None:
            self.staging.close()


LineWriter = TransactionLineWriter | StagingLineWriter | DryRunWriter
