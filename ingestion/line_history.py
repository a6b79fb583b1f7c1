"""Line history: the versions the line writers record beside the lines they write.

A line written once and never changed since has no version: its one state is its row in
the lines table (values, `upload`, `created_at`), which `implicit_version` reads as its open
`created` version. The first change to a line records that state as a closed version and
the new state as an open one; from then on every state of the line is a `LineVersion`, the
open one equal to the line. So a first load writes lines only (a version per created line
was a quarter of the line writer's statement), and a reload writes one version per changed
line, or two the first time that line changes. An unchanged line writes nothing.

The writers record versions set-based, inside the lines' own statement (PostgreSQL:
data-modifying CTEs on the upsert's RETURNING, with the replaced values read from the
statement's own snapshot of the lines) or transaction (SQLite: statements around each merge
chunk). A revert first records the implicit versions of the lines it takes back
(`record_implicit`), then works on versions alone. `INGEST_LINE_HISTORY=0` turns the
recording off (for measuring what it costs, `bench/run.py --no-history`)."""

from __future__ import annotations

from django.conf import settings
from django.db import connection

from .models import LineVersion, PurchaseOrder, PurchaseOrderLine, Upload

# What a later load may change on an existing line (a change counts it as updated): the
# one list the line writers, the review's diff, the versions and the revert all use.
VALUE_COLUMNS = ("material_id", "quantity", "unit_price", "total_price", "currency")
VERSION_COLUMNS = (
    "line_id",
    "purchase_order_id",
    "line_number",
    *VALUE_COLUMNS,
    "order_date",
    "kind",
    "valid_from",
    "valid_to",
    "upload_id",
    "user_id",
)


def history_enabled() -> bool:
    return bool(getattr(settings, "INGEST_LINE_HISTORY", True))


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def owner_id(upload_id) -> int | None:
    """Who a version written for this upload is by: its owner."""
    return Upload.objects.filter(pk=upload_id).values_list("owner_id", flat=True).first()


def implicit_version(line: PurchaseOrderLine) -> LineVersion:
    """The open version (unsaved) of a line that has none: its row as the upload that last
    wrote it left it. `created` unless the line was changed while history was off."""
    upload = line.upload
    return LineVersion(
        line_id=line.pk,
        purchase_order_id=line.purchase_order_id,
        line_number=line.line_number,
        **{column: getattr(line, column) for column in VALUE_COLUMNS},
        order_date=line.purchase_order.order_date,
        kind=LineVersion.Kind.CREATED if line.created_at == line.updated_at else LineVersion.Kind.UPDATED,
        valid_from=line.updated_at,
        valid_to=None,
        upload=upload,
        user=upload.owner if upload else None,
    )


def _implicit_select(alias: str, *, valid_to: str) -> str:
    """SELECT list (VERSION_COLUMNS) of the implicit version of the line `alias`, joined to
    its order `po` and its upload `u` (LEFT JOIN: an upload may be gone)."""
    return (
        f"SELECT {alias}.id, {alias}.purchase_order_id, {alias}.line_number, "
        f"{', '.join(f'{alias}.{c}' for c in VALUE_COLUMNS)}, po.order_date, "
        f"CASE WHEN {alias}.created_at = {alias}.updated_at THEN 'created' ELSE 'updated' END, "
        f"{alias}.updated_at, {valid_to}, {alias}.upload_id, u.owner_id"
    )


def _implicit_joins(alias: str) -> str:
    return (
        f"JOIN {_table(PurchaseOrder)} po ON po.id = {alias}.purchase_order_id "
        f"LEFT JOIN {_table(Upload)} u ON u.id = {alias}.upload_id"
    )


def record_implicit(cursor, *, lines_where: str, params: list) -> int:
    """Record as open versions the implicit versions of the lines `lines_where` selects
    (a condition on the lines table, alias `l`) that have none. Returns how many."""
    versions = _table(LineVersion)
    cursor.execute(
        f"INSERT INTO {versions} ({', '.join(VERSION_COLUMNS)}) {_implicit_select('l', valid_to='NULL')} "
        f"FROM {_table(PurchaseOrderLine)} l {_implicit_joins('l')} "
        f"WHERE ({lines_where}) AND NOT EXISTS (SELECT 1 FROM {versions} v WHERE v.line_id = l.id)",
        params,
    )
    return cursor.rowcount


def versions_after_upsert(written: str) -> tuple[str, int]:
    """PostgreSQL: two data-modifying CTEs to follow the CTE `written`, an upsert returning
    `RETURNING`. For every line it updated: the open version is closed, or, for a line that
    had none, its implicit version is recorded closed (read from the lines as the statement
    found them: every CTE of a statement sees its starting snapshot); then the new state is
    recorded as an open version. Lines it inserted write nothing. Both inserts are one
    statement, the replaced states first, so a line's versions stay numbered in the order of
    its states (the revert relies on it). The close looks the updated lines up as an array (an
    index scan per line): as a join, the planner, which cannot know how few rows the upsert
    returns, merged the whole version index with them, at every batch (measured on 300k
    versions and 5,000 changed lines: 474 ms as a join, 108 ms as an array). Returns the SQL
    (to put after `WITH written AS (...), `) and how many parameters it takes: valid_to twice,
    then valid_from, upload id, user id."""
    versions = _table(LineVersion)
    orders = _table(PurchaseOrder)
    changed = f"ARRAY(SELECT id FROM {written} WHERE NOT inserted)"
    sql = (
        f"closed AS (UPDATE {versions} v SET valid_to = %s "
        f"WHERE v.line_id = ANY({changed}) AND v.valid_to IS NULL RETURNING v.line_id), "
        f"opened AS (INSERT INTO {versions} ({', '.join(VERSION_COLUMNS)}) "
        f"{_implicit_select('o', valid_to='%s')} FROM {_table(PurchaseOrderLine)} o {_implicit_joins('o')} "
        f"WHERE o.id = ANY(ARRAY(SELECT id FROM {written} WHERE NOT inserted EXCEPT SELECT line_id FROM closed)) "
        f"UNION ALL SELECT w.id, w.purchase_order_id, w.line_number, {', '.join('w.' + c for c in VALUE_COLUMNS)}, "
        "po.order_date, 'updated', %s, NULL, %s::uuid, %s "
        f"FROM {written} w JOIN {orders} po ON po.id = w.purchase_order_id WHERE NOT w.inserted)"
    )
    return sql, 5


# Returned by the PostgreSQL upsert so that `versions_after_upsert` has what it needs.
RETURNING = f"id, purchase_order_id, line_number, {', '.join(VALUE_COLUMNS)}, (xmax = 0) AS inserted"


def before_staged_chunk(cursor, *, staged_where: str, params: list) -> tuple[int, int]:
    """The staging writer (SQLite), before the merge upsert of one chunk of staged lines (`staged_where` selects
    their purchase_order_id, line_number and VALUE_COLUMNS, with `params`): the lines it may
    update (a value differs; the upload's policy decides in the merge) that have no version
    get their implicit one, open, so that `record_staged_chunk` finds a version to close.
    Returns the range of version ids this wrote, for `record_staged_chunk` to drop those of
    lines the merge left as they were."""
    versions = _table(LineVersion)
    differs = "IS NOT" if connection.vendor == "sqlite" else "IS DISTINCT FROM"  # SQLite before 3.39 lacks the latter
    with_max = f"SELECT COALESCE(MAX(id), 0) FROM {versions}"
    cursor.execute(with_max)
    low = cursor.fetchone()[0]
    record_implicit(
        cursor,
        lines_where=f"EXISTS (SELECT 1 FROM ({staged_where}) s "
        "WHERE s.purchase_order_id = l.purchase_order_id AND s.line_number = l.line_number AND ("
        + " OR ".join(f"s.{c} {differs} l.{c}" for c in VALUE_COLUMNS)
        + "))",
        params=params,
    )
    cursor.execute(with_max)
    return low, cursor.fetchone()[0]


def record_staged_chunk(
    cursor, *, staged_where: str, params: list, upload: str, user_id, now, recorded: tuple[int, int]
) -> None:
    """The staging writer (SQLite), after the merge upsert of one chunk of staged lines (`staged_where` selects
    them, alias `s`, with `params`): the lines it updated are those now carrying this upload
    and this merge's `updated_at` but an earlier `created_at` (staged lines are one per line,
    so each is met once). Their open versions are closed and a version is opened for each, in
    the merge's transaction; the implicit versions `before_staged_chunk` recorded (ids in
    `recorded`) for lines the merge did not change are dropped again."""
    versions = _table(LineVersion)
    lines = _table(PurchaseOrderLine)
    orders = _table(PurchaseOrder)
    updated = (
        f"FROM ({staged_where}) s JOIN {lines} l ON l.purchase_order_id = s.purchase_order_id "
        "AND l.line_number = s.line_number {join} WHERE l.upload_id = %s AND l.updated_at = %s AND l.created_at <> %s"
    )
    cursor.execute(
        f"UPDATE {versions} SET valid_to = %s WHERE valid_to IS NULL AND line_id IN "
        f"(SELECT l.id {updated.format(join='')})",
        [now, *params, upload, now, now],
    )
    low, high = recorded
    cursor.execute(f"DELETE FROM {versions} WHERE id > %s AND id <= %s AND valid_to IS NULL", [low, high])
    cursor.execute(
        f"INSERT INTO {versions} ({', '.join(VERSION_COLUMNS)}) "
        f"SELECT l.id, l.purchase_order_id, l.line_number, {', '.join('l.' + c for c in VALUE_COLUMNS)}, "
        "po.order_date, 'updated', %s, NULL, %s, %s "
        + updated.format(join=f"JOIN {orders} po ON po.id = l.purchase_order_id"),
        [now, upload, user_id, *params, upload, now, now],
    )
