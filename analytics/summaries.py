"""Keeping the analytics summaries (analytics.models: SpendMonth, MaterialMonth, LineOutlier,
VarianceGroup) equal to the lines, set-based in PostgreSQL.

`refresh(upload_id=None)` rebuilds everything; with an upload, only the suppliers and
materials its lines touched, now or in any version it wrote (a revert or a reload can move a
line off a material, and a line never changes purchase order, whose supplier never changes);
without line history (INGEST_LINE_HISTORY=0) every refresh is whole.
Each refresh holds one advisory lock, so two never interleave, and runs in one transaction,
so a page reads either the old summaries or the new ones. The default variance period moves
with the latest order date, so its groups are always rebuilt whole.

On SQLite there are no summaries: the pages read the lines (analytics.selectors)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import F, Sum, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from ingestion.line_history import history_enabled
from ingestion.models import LineVersion, Material, PurchaseOrder, PurchaseOrderLine

from .models import (
    CategoryMonth,
    LineOutlier,
    MaterialMonth,
    MaterialTotal,
    SpendMonth,
    SummaryState,
    SupplierMonth,
    VarianceGroup,
)

log = logging.getLogger(__name__)

LOCK_KEY = 0x1A7A11C5  # pg_advisory_xact_lock: one summary refresh at a time
VARIANCE_DAYS = 90  # the default variance period (analytics.selectors.variance_period)
OUTLIER_Z = 3.5
OUTLIER_MIN_PRICES = 5

LINES = PurchaseOrderLine._meta.db_table
POS = PurchaseOrder._meta.db_table
MATERIALS = Material._meta.db_table
VERSIONS = LineVersion._meta.db_table


@dataclass(frozen=True)
class Scope:
    """None: everything; else the supplier and material ids to rebuild."""

    suppliers: list[int] | None = None
    materials: list[int] | None = None


def available() -> bool:
    return connection.vendor == "postgresql"


def scope_of_upload(*, upload_id) -> Scope:
    """The suppliers and materials of every line the upload wrote, in their current state
    and in every version of those lines (the states before and after it)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH touched AS (
                SELECT id AS line_id, purchase_order_id, material_id FROM {LINES} WHERE upload_id = %s
                UNION
                SELECT line_id, purchase_order_id, material_id FROM {VERSIONS} WHERE upload_id = %s
            )
            SELECT
                ARRAY(SELECT DISTINCT po.supplier_id FROM {POS} po
                      WHERE po.id IN (SELECT purchase_order_id FROM touched)),
                ARRAY(SELECT material_id FROM touched WHERE material_id IS NOT NULL
                      UNION
                      SELECT v.material_id FROM {VERSIONS} v
                      WHERE v.line_id IN (SELECT line_id FROM touched) AND v.material_id IS NOT NULL)
            """,
            [upload_id, upload_id],
        )
        suppliers, materials = cursor.fetchone()
    return Scope(suppliers=list(suppliers), materials=list(materials))


def _where(column: str, ids: list[int] | None) -> tuple[str, list]:
    if ids is None:
        return "", []
    return f"WHERE {column} = ANY(%s)", [ids]


def _refresh_spend(cursor, scope: Scope) -> None:
    table = SpendMonth._meta.db_table
    where, params = _where("supplier_id", scope.suppliers)
    cursor.execute(f"DELETE FROM {table} {where}", params)
    where, params = _where("po.supplier_id", scope.suppliers)
    cursor.execute(
        f"""
        INSERT INTO {table} (month, supplier_id, category, currency, spend, quantity, lines, last_day)
        SELECT date_trunc('month', po.order_date)::date, po.supplier_id, m.category, l.currency,
               sum(l.quantity * l.unit_price), sum(l.quantity), count(*), max(po.order_date)
        FROM {LINES} l
        JOIN {POS} po ON po.id = l.purchase_order_id
        JOIN {MATERIALS} m ON m.id = l.material_id
        {where}
        GROUP BY 1, 2, 3, 4
        """,
        params,
    )


def _refresh_rollups(cursor) -> None:
    """The small tables the unfiltered pages read, summed from the summaries (not from the
    lines: a few thousand rows, rebuilt whole)."""
    spend, materials = SpendMonth._meta.db_table, MaterialMonth._meta.db_table
    for table in (SupplierMonth, CategoryMonth, MaterialTotal):
        cursor.execute(f"DELETE FROM {table._meta.db_table}")
    cursor.execute(
        f"""
        INSERT INTO {SupplierMonth._meta.db_table} (month, supplier_id, currency, spend, lines)
        SELECT month, supplier_id, currency, sum(spend), sum(lines) FROM {spend} GROUP BY 1, 2, 3
        """
    )
    cursor.execute(
        f"""
        INSERT INTO {CategoryMonth._meta.db_table} (month, category, currency, spend, lines, last_day)
        SELECT month, category, currency, sum(spend), sum(lines), max(last_day) FROM {spend} GROUP BY 1, 2, 3
        """
    )
    cursor.execute(
        f"""
        INSERT INTO {MaterialTotal._meta.db_table} (material_id, category, currency, lines)
        SELECT material_id, category, currency, sum(lines) FROM {materials} GROUP BY 1, 2, 3
        """
    )


def _refresh_materials(cursor, scope: Scope) -> None:
    table = MaterialMonth._meta.db_table
    where, params = _where("material_id", scope.materials)
    cursor.execute(f"DELETE FROM {table} {where}", params)
    where, params = _where("l.material_id", scope.materials)
    cursor.execute(
        f"""
        INSERT INTO {table} (month, material_id, category, currency, lines)
        SELECT date_trunc('month', po.order_date)::date, l.material_id, m.category, l.currency, count(*)
        FROM {LINES} l
        JOIN {POS} po ON po.id = l.purchase_order_id
        JOIN {MATERIALS} m ON m.id = l.material_id
        {where}
        GROUP BY 1, 2, 3, 4
        """,
        params,
    )


def _refresh_outliers(cursor, scope: Scope) -> None:
    """The same statistics, in the same SQL types, as analytics.selectors._OUTLIER_SQL."""
    table = LineOutlier._meta.db_table
    where, params = _where("material_id", scope.materials)
    cursor.execute(f"DELETE FROM {table} {where}", params)
    where, params = _where("l.material_id", scope.materials)
    cursor.execute(
        f"""
        INSERT INTO {table} (line_id, material_id, category, currency, supplier_id, order_date, median, mad, z_score)
        WITH base AS (
            SELECT l.id, l.material_id, l.currency, l.unit_price, l.purchase_order_id FROM {LINES} l {where}
        ),
        med AS (
            SELECT material_id, currency, percentile_cont(0.5) WITHIN GROUP (ORDER BY unit_price) AS median
            FROM base GROUP BY material_id, currency HAVING count(*) >= %s
        ),
        mad AS (
            SELECT b.material_id, b.currency, m.median,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(b.unit_price - m.median)) AS mad
            FROM base b JOIN med m ON m.material_id = b.material_id AND m.currency = b.currency
            GROUP BY b.material_id, b.currency, m.median
        )
        SELECT b.id, b.material_id, mt.category, b.currency, po.supplier_id, po.order_date, d.median, d.mad,
               0.6745 * (b.unit_price - d.median) / d.mad
        FROM base b
        JOIN mad d ON d.material_id = b.material_id AND d.currency = b.currency
        JOIN {MATERIALS} mt ON mt.id = b.material_id
        JOIN {POS} po ON po.id = b.purchase_order_id
        WHERE d.mad > 0 AND abs(0.6745 * (b.unit_price - d.median) / d.mad) > %s
        """,
        [*params, OUTLIER_MIN_PRICES, OUTLIER_Z],
    )


def _refresh_variance(cursor) -> object:
    """The default period ends at the latest order date of all lines (read from SpendMonth,
    already refreshed in this transaction)."""
    table = VarianceGroup._meta.db_table
    cursor.execute(f"DELETE FROM {table}")
    cursor.execute(f"SELECT max(last_day) FROM {SpendMonth._meta.db_table}")
    last = cursor.fetchone()[0]
    if last is None:
        return None
    first = last - timedelta(days=VARIANCE_DAYS - 1)
    previous_to = first - timedelta(days=1)
    previous_from = previous_to - timedelta(days=VARIANCE_DAYS - 1)
    cursor.execute(
        f"""
        INSERT INTO {table} (supplier_id, material_id, category, currency,
                             quantity, spend, previous_quantity, previous_spend, variance)
        SELECT po.supplier_id, l.material_id, m.category, l.currency,
               sum(l.quantity) FILTER (WHERE po.order_date >= %(first)s),
               sum(l.quantity * l.unit_price) FILTER (WHERE po.order_date >= %(first)s),
               sum(l.quantity) FILTER (WHERE po.order_date <= %(previous_to)s),
               sum(l.quantity * l.unit_price) FILTER (WHERE po.order_date <= %(previous_to)s),
               0
        FROM {LINES} l
        JOIN {POS} po ON po.id = l.purchase_order_id
        JOIN {MATERIALS} m ON m.id = l.material_id
        WHERE po.order_date BETWEEN %(previous_from)s AND %(last)s
        GROUP BY 1, 2, 3, 4
        HAVING sum(l.quantity) FILTER (WHERE po.order_date >= %(first)s) > 0
           AND sum(l.quantity) FILTER (WHERE po.order_date <= %(previous_to)s) > 0
        """,
        {"first": first, "previous_to": previous_to, "previous_from": previous_from, "last": last},
    )
    return last


def variance_amount(*, quantity: Decimal, spend: Decimal, previous_quantity: Decimal, previous_spend: Decimal):
    """spend - quantity x previous average, in Python's Decimal: the one definition the
    pages (analytics.selectors.variance) and the stored groups share."""
    previous_average = previous_spend / previous_quantity
    return previous_average, spend - quantity * previous_average


def _compute_variances() -> None:
    """Each group's variance, in Python (its Decimal context, not PostgreSQL's numeric
    division), written back in one statement."""
    groups = list(VarianceGroup.objects.values_list("id", "quantity", "spend", "previous_quantity", "previous_spend"))
    if not groups:
        return
    amounts = [
        (pk, variance_amount(quantity=q, spend=s, previous_quantity=pq, previous_spend=ps)[1])
        for pk, q, s, pq, ps in groups
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {VarianceGroup._meta.db_table} v SET variance = a.amount "
            "FROM unnest(%s::bigint[], %s::numeric[]) AS a(id, amount) WHERE v.id = a.id",
            [[pk for pk, _ in amounts], [amount for _, amount in amounts]],
        )


def refresh(*, upload_id=None, queued: bool = False, lock_timeout_ms: int = 0) -> dict:
    """Rebuild the summaries (all, or what `upload_id` touched; all while they were never
    built). `queued`: this refresh was counted in SummaryState.pending when it was queued.
    `lock_timeout_ms`: give up (OperationalError) rather than wait longer for a lock."""
    if not available():
        return {"refreshed": False}
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
            if lock_timeout_ms:
                cursor.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout_ms)}ms'")
        state, _ = SummaryState.objects.select_for_update().get_or_create(pk=1)
        # Without line history a reload that moved a line to another material leaves no
        # trace of the old one: then every refresh is whole.
        whole = upload_id is None or state.built_at is None or not history_enabled()
        scope = Scope() if whole else scope_of_upload(upload_id=upload_id)
        with connection.cursor() as cursor:
            _refresh_spend(cursor, scope)
            _refresh_materials(cursor, scope)
            _refresh_rollups(cursor)
            _refresh_outliers(cursor, scope)
            variance_to = _refresh_variance(cursor)
        _compute_variances()
        totals = {
            currency: str(amount)
            for currency, amount in VarianceGroup.objects.order_by()
            .values_list("currency")
            .annotate(amount=Sum("variance"))
            .values_list("currency", "amount")
        }
        now = timezone.now()
        updates: dict = {
            "refreshed_at": now,
            "variance_to": variance_to,
            "variance_count": VarianceGroup.objects.count(),
            "variance_totals": totals,
            "built_at": state.built_at or now,
        }
        if queued:
            updates["pending"] = Greatest(F("pending") - 1, Value(0))
        SummaryState.objects.filter(pk=1).update(**updates)
    return {
        "refreshed": True,
        "whole": whole,
        "suppliers": None if scope.suppliers is None else len(scope.suppliers),
        "materials": None if scope.materials is None else len(scope.materials),
    }


def mark_pending() -> None:
    """A refresh is about to be queued: until it is done the pages read the lines."""
    if not available():
        return
    SummaryState.objects.get_or_create(pk=1)
    SummaryState.objects.filter(pk=1).update(pending=F("pending") + 1)


def forget_pending() -> None:
    """After a whole rebuild by hand: refreshes counted as queued but lost (a broker that
    dropped them) no longer keep the pages on the lines."""
    SummaryState.objects.filter(pk=1).update(pending=0)


def needs_rebuild(*, stale_after_seconds: float) -> bool:
    """Whether the pages are stuck on the lines with nothing on its way to fix it: the
    summaries were given up (a refresh that could not be queued or failed), or refreshes
    counted as queued have not finished one in `stale_after_seconds` (their tasks were lost)."""
    if not available() or not PurchaseOrderLine.objects.exists():
        return False
    state = SummaryState.objects.filter(pk=1).first()
    if state is None or state.built_at is None:
        return True
    last = state.refreshed_at or state.built_at
    return state.pending > 0 and last < timezone.now() - timedelta(seconds=stale_after_seconds)


def give_up() -> None:
    """A pending refresh could not be queued, or failed: it is no longer pending, and the
    summaries are not to be trusted until the next refresh (which then rebuilds them whole)
    or `manage.py refresh_analytics`."""
    SummaryState.objects.filter(pk=1).update(built_at=None, pending=Greatest(F("pending") - 1, Value(0)))
