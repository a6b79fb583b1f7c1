"""Line history: the versions the line writers record beside the lines they write.

Every state of a line is a `LineVersion`: the writers insert one for each line they create
or change, and close the version it replaces (`valid_to`), set-based and inside the lines'
own statement (PostgreSQL: data-modifying CTEs on the upsert's RETURNING) or transaction
(SQLite: three statements per merge chunk). An unchanged line is not returned by the
upsert, so it writes no version. `INGEST_LINE_HISTORY=0` turns the recording off (for
measuring what it costs, `bench/run.py --no-history`)."""

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


def versions_after_upsert(written: str) -> tuple[str, int]:
    """PostgreSQL: two data-modifying CTEs to follow the CTE `written`, an upsert returning
    `id, purchase_order_id, line_number, material_id, quantity, unit_price, total_price,
    currency, inserted`: the versions its updated lines replace are closed, and a version is
    opened for every line it returned. Both see the statement's starting snapshot, so the
    close never touches the versions opened beside it. The close looks the updated lines up
    as an array (an index scan per line): as a join, the planner, which cannot know how few
    rows the upsert returns, merged the whole version index with them, at every batch (measured
    on 300k versions and 5,000 changed lines: 474 ms as a join, 108 ms as an array). Returns the SQL (to put after
    `WITH written AS (...), `) and how many parameters it takes: valid_to, valid_from,
    upload id, user id, in that order."""
    versions = _table(LineVersion)
    orders = _table(PurchaseOrder)
    sql = (
        f"closed AS (UPDATE {versions} v SET valid_to = %s "
        f"WHERE v.line_id = ANY(ARRAY(SELECT id FROM {written} WHERE NOT inserted)) AND v.valid_to IS NULL), "
        f"opened AS (INSERT INTO {versions} ({', '.join(VERSION_COLUMNS)}) "
        f"SELECT w.id, w.purchase_order_id, w.line_number, {', '.join('w.' + c for c in VALUE_COLUMNS)}, "
        "po.order_date, CASE WHEN w.inserted THEN 'created' ELSE 'updated' END, %s, NULL, %s::uuid, %s "
        f"FROM {written} w JOIN {orders} po ON po.id = w.purchase_order_id)"
    )
    return sql, 4


# Returned by the PostgreSQL upsert so that `versions_after_upsert` has what it needs.
RETURNING = f"id, purchase_order_id, line_number, {', '.join(VALUE_COLUMNS)}, (xmax = 0) AS inserted"


def record_staged_chunk(cursor, *, staged_where: str, params: list, upload: str, user_id, now) -> None:
    """SQLite, after the merge upsert of one chunk of staged lines (`staged_where` selects
    them, alias `s`, with `params`): the lines it wrote are those now carrying this upload
    and this merge's `updated_at` (staged lines are one per line, so each is met once). Their
    open versions are closed and a version is opened for each, in the merge's transaction."""
    versions = _table(LineVersion)
    lines = _table(PurchaseOrderLine)
    orders = _table(PurchaseOrder)

    def written(extra_join: str = "") -> str:
        return (
            f"FROM ({staged_where}) s JOIN {lines} l ON l.purchase_order_id = s.purchase_order_id "
            f"AND l.line_number = s.line_number {extra_join} WHERE l.upload_id = %s AND l.updated_at = %s"
        )

    cursor.execute(
        f"UPDATE {versions} SET valid_to = %s WHERE valid_to IS NULL AND line_id IN "
        f"(SELECT l.id {written()} AND l.created_at <> %s)",
        [now, *params, upload, now, now],
    )
    cursor.execute(
        f"INSERT INTO {versions} ({', '.join(VERSION_COLUMNS)}) "
        f"SELECT l.id, l.purchase_order_id, l.line_number, {', '.join('l.' + c for c in VALUE_COLUMNS)}, "
        "po.order_date, CASE WHEN l.created_at = %s THEN 'created' ELSE 'updated' END, %s, NULL, %s, %s "
        + written(f"JOIN {orders} po ON po.id = l.purchase_order_id"),
        [now, now, upload, user_id, *params, upload, now],
    )
