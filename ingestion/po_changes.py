"""A purchase order's own fields change too: its order date and currency are values like a
line's, and its supplier is part of its identity.

- A reload that brings an order date where the order had none fills it, whatever the
  policy (nothing is replaced). A different date or currency is a change under the upload's
  policy: `update` takes it, `keep` keeps the existing one, `review` takes it where its
  owner took a line of that order (the review lists the order date beside the line's other
  fields). Every change is a `PurchaseOrderChange` (old and new side by side), written in
  the lines' own transaction just before it commits (`apply_sql` on PostgreSQL; on SQLite,
  for small local files, `apply_orm` in the merge's transaction), so a cancelled load
  changes no order and the order rows are locked only for that last statement.
- A PO number arriving with another supplier than its order's (`SupplierCheck`) is a
  conflict, never a silent merge: under every policy each of those rows gets a warning
  naming both suppliers, the review page lists them and its summary counts them. The rows
  load (into the existing order, under the policy like any line): the order keeps its
  supplier, the lines' history keeps every value they replace, and a revert takes them back.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from django.db import connection

from .models import ProposedChange, PurchaseOrder, PurchaseOrderChange, Supplier, Upload
from .validation import WARNING, no_issues

SUPPLIER_CONFLICT = "belongs to supplier"  # in the message of every supplier-conflict row issue
CHANGE_COLUMNS = "purchase_order_id, old_order_date, new_order_date, old_currency, new_currency, kind, changed_at, upload_id, user_id"


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


class SupplierCheck:
    """A PO number that arrives with another supplier than its order's. A purchase order takes
    its supplier from its first line (`dimensions`), so the file's supplier of an order is
    that of the order's first row in the file; where it is not the order's own, every row of
    that order in the file is a conflict. The orders are compared where their ids are found
    (`IdCache.resolve(compare="supplier_id")`, in the same statement): `conflicts` is that
    cache's {order id: (its supplier, the file's)}."""

    def __init__(self, conflicts: dict[int, tuple]) -> None:
        self.conflicts = conflicts

    def split(self, lines: pd.DataFrame, *, supplier_header: str = "") -> tuple[pd.DataFrame, pd.DataFrame]:
        """The batch's lines (all of them: they load) and a row issue (a warning naming both
        suppliers) for each line of a conflicting order."""
        if lines.empty or not self.conflicts:
            return lines, no_issues()
        other = lines[lines["purchase_order_id"].isin(self.conflicts)]
        if other.empty:
            return lines, no_issues()
        pairs = [self.conflicts[int(p)] for p in other["purchase_order_id"]]
        names = dict(Supplier.objects.filter(pk__in={s for pair in pairs for s in pair}).values_list("pk", "name"))
        issues = pd.DataFrame(
            {
                "row": other["source_row"].to_numpy(),
                "column": supplier_header,
                "value": [names.get(theirs, "") for _, theirs in pairs],
                "message": [
                    f"PO {po} {SUPPLIER_CONFLICT} {names.get(ours, '')!r}; this file gives it {names.get(theirs, '')!r}. "
                    f"A PO number with another supplier is a conflict: the row was loaded into the order of "
                    f"{names.get(ours, '')!r}, its history keeps what it replaced (check the PO number or the "
                    "supplier; revert the upload to take it back)."
                    for po, (ours, theirs) in zip(other["po_number"], pairs, strict=True)
                ],
                "severity": WARNING,
            }
        )
        return lines, issues


def batch_orders(lines: pd.DataFrame) -> pd.DataFrame:
    """A batch's orders with the values it brings: the first line of each order's. The date
    and currency are kept as categories (a load holds every batch's orders until its commit:
    a million-row file's 100,000 orders took 13 MB as Python strings); `collected` gives
    them back as text."""
    firsts = lines[~lines["purchase_order_id"].duplicated(keep="first").to_numpy()]
    return pd.DataFrame(
        {
            "p": firsts["purchase_order_id"].astype("int64").to_numpy(),
            "d": pd.Categorical(firsts["order_date"].to_numpy(dtype=object)),
            "c": pd.Categorical(firsts["currency"].to_numpy(dtype=object)),
        }
    )


def collected(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Every batch's orders (`batch_orders`), each once with the values of its first line in
    the file: p, d (order date, 'YYYY-MM-DD' text as `parsing.parse_date` gives it, or None)
    and c (currency)."""
    if not frames:
        return pd.DataFrame({"p": pd.Series(dtype="int64"), "d": pd.Series(dtype=object), "c": pd.Series(dtype=object)})
    orders = pd.concat(frames, ignore_index=True).drop_duplicates("p", keep="first")
    return pd.DataFrame(
        {
            "p": orders["p"].to_numpy(dtype="int64"),
            **{name: pd.Series(_text(orders[name]), dtype=object) for name in ("d", "c")},
        }
    )


def _text(values: pd.Series) -> np.ndarray:
    """Categories (or what concat made of categories that differ) as text, None where missing."""
    text = values.to_numpy(dtype=object, copy=True)
    text[pd.isna(text)] = None
    return text


def apply_sql(*, policy: str) -> str:
    """PostgreSQL: the statement that writes the orders' new dates and currencies (one JSON
    array of [order id, date, currency]) and records each change. Its parameters, by name:
    orders (the JSON), upload, now, user."""
    orders = _table(PurchaseOrder)
    changes = _table(PurchaseOrderChange)
    proposed = _table(ProposedChange)
    own = "po.created_by_upload_id = %(upload)s::uuid"
    taken: str = {
        Upload.OnExisting.UPDATE: "TRUE",
        Upload.OnExisting.KEEP: own,
        Upload.OnExisting.REVIEW: f"({own} OR EXISTS (SELECT 1 FROM {proposed} pc WHERE pc.upload_id = %(upload)s::uuid "
        "AND pc.purchase_order_id = po.id AND pc.decision = 'take'))",
    }[Upload.OnExisting(policy)]
    sql = (
        "WITH v AS (SELECT (a->>0)::bigint p, (a->>1)::date d, a->>2 c FROM json_array_elements(%(orders)s::json) a), "
        "c AS (SELECT po.id, po.order_date old_d, po.currency old_c, "
        f"CASE WHEN v.d IS NULL THEN po.order_date WHEN po.order_date IS NULL OR {taken} THEN v.d "
        "ELSE po.order_date END new_d, "
        f"CASE WHEN v.c IS NOT NULL AND v.c <> '' AND {taken} THEN v.c ELSE po.currency END new_c "
        f"FROM {orders} po JOIN v ON po.id = v.p), "
        "d AS (SELECT * FROM c WHERE new_d IS DISTINCT FROM old_d OR new_c IS DISTINCT FROM old_c), "
        f"changed AS (UPDATE {orders} po SET order_date = d.new_d, currency = d.new_c FROM d WHERE po.id = d.id "
        "RETURNING po.id) "
        f"INSERT INTO {changes} ({CHANGE_COLUMNS}) SELECT d.id, d.old_d, d.new_d, d.old_c, d.new_c, "
        "CASE WHEN d.old_d IS NULL AND d.new_c = d.old_c THEN 'filled' ELSE 'updated' END, "
        "%(now)s, %(upload)s::uuid, %(user)s FROM d JOIN changed ON changed.id = d.id"
    )
    return sql


def plan(*, orders: pd.DataFrame, policy: str, upload_id) -> list[tuple[PurchaseOrder, PurchaseOrderChange]]:
    """What `apply_sql` would write, worked out in Python: each order whose date or currency
    changes (its new values set, not saved) and the change that records it (not saved).
    `orders` is `batch_orders`' frame (p, d, c)."""
    incoming = {int(p): (d, c) for p, d, c in orders.itertuples(index=False, name=None)}
    policy = Upload.OnExisting(policy)
    ids = list(incoming)
    planned: list[tuple[PurchaseOrder, PurchaseOrderChange]] = []
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        taken_by_review: set[int] = set()
        if policy == Upload.OnExisting.REVIEW:
            taken_by_review = set(
                ProposedChange.objects.filter(
                    upload_id=upload_id, purchase_order_id__in=chunk, decision=ProposedChange.Decision.TAKE
                ).values_list("purchase_order_id", flat=True)
            )
        for order in PurchaseOrder.objects.filter(pk__in=chunk).only(
            "pk", "po_number", "order_date", "currency", "created_by_upload"
        ):
            date, currency = incoming[order.pk]
            date = dt.date.fromisoformat(date) if isinstance(date, str) and date else None
            currency = currency if isinstance(currency, str) else ""
            taken = (
                policy == Upload.OnExisting.UPDATE
                or order.created_by_upload_id == upload_id
                or order.pk in taken_by_review
            )
            old_date, old_currency = order.order_date, order.currency
            new_date = old_date if date is None else date if old_date is None or taken else old_date
            new_currency = currency if currency and taken else old_currency
            if new_date == old_date and new_currency == old_currency:
                continue
            order.order_date, order.currency = new_date, new_currency
            kind = (
                PurchaseOrderChange.Kind.FILLED
                if old_date is None and new_currency == old_currency
                else PurchaseOrderChange.Kind.UPDATED
            )
            change = PurchaseOrderChange(
                purchase_order_id=order.pk,
                old_order_date=old_date,
                new_order_date=new_date,
                old_currency=old_currency,
                new_currency=new_currency,
                kind=kind,
                upload_id=upload_id,
            )
            planned.append((order, change))
    return planned


def apply_orm(*, orders: pd.DataFrame, policy: str, upload_id, now, user_id) -> int:
    """SQLite: what `apply_sql` does, through the ORM, inside the caller's transaction.
    Returns how many orders changed."""
    planned = plan(orders=orders, policy=policy, upload_id=upload_id)
    for _, change in planned:
        change.changed_at, change.user_id = now, user_id
    PurchaseOrder.objects.bulk_update([order for order, _ in planned], ["order_date", "currency"], batch_size=500)
    PurchaseOrderChange.objects.bulk_create([change for _, change in planned], batch_size=500)
    return len(planned)


def revert(cursor, *, upload, user_id, now) -> int:
    """Inside a revert's transaction: every order this upload changed gets back the values its
    first change replaced, unless a later upload (not reverted itself) changed it since.
    Recorded as `reverted` changes. Returns how many orders."""
    orders = _table(PurchaseOrder)
    changes = _table(PurchaseOrderChange)
    uploads = _table(Upload)
    mine = (
        f"(SELECT purchase_order_id, MIN(id) first_id, MAX(id) last_id FROM {changes} "
        "WHERE upload_id = %s AND kind <> 'reverted' GROUP BY purchase_order_id) t"
    )
    back = (
        f"(SELECT t.purchase_order_id po_id, f.old_order_date d, f.old_currency c FROM {mine} "
        f"JOIN {changes} f ON f.id = t.first_id WHERE NOT EXISTS (SELECT 1 FROM {changes} later "
        "WHERE later.purchase_order_id = t.purchase_order_id AND later.id > t.last_id AND later.kind <> 'reverted' "
        f"AND NOT EXISTS (SELECT 1 FROM {uploads} r WHERE r.id = later.upload_id AND r.reverted_at IS NOT NULL))) b"
    )
    cursor.execute(
        f"INSERT INTO {changes} ({CHANGE_COLUMNS}) SELECT po.id, po.order_date, b.d, po.currency, b.c, 'reverted', "
        f"%s, %s, %s FROM {back} JOIN {orders} po ON po.id = b.po_id",
        [now, upload, user_id, upload],
    )
    restored = cursor.rowcount
    cursor.execute(
        f"UPDATE {orders} SET order_date = b.d, currency = b.c FROM {back} WHERE {orders}.id = b.po_id", [upload]
    )
    return restored
