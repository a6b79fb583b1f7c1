"""The quality score of an upload: counted within the load, from the batches it already
reads (here), and finished once its lines are committed by the analytics' receiver of
`signals.lines_changed` (analytics/scoring.py), which adds the price outliers, a rule over
every upload's lines, with one set-based query, and stores the score.

Each rule is a share of what it measures (rows, cells, purchase orders, materials), as data
quality tools count them; a dimension is the mean of its rules that measured something; the
score is the weighted mean of the dimensions that measured something (weights:
QUALITY_WEIGHTS), from 0 to 100, graded A at 95, B at 85, C at 70, D below. Each rule's cost
in points is its exact share of what the score lost, so the three rules that cost the most
are named with the score."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from django.conf import settings
from django.utils import timezone

from .parsing import text_as_arrow
from .validation import no_issues

DIMENSIONS = ("validity", "completeness", "consistency", "uniqueness", "plausibility")
GRADES = ((95, "A"), (85, "B"), (70, "C"))
MISMATCH_MESSAGE = "Total price differs from quantity x unit price."
DATE_MESSAGE = "Date not recognised; stored empty."
OUTLIER_MESSAGE_START = "Unit price is far from this material's usual price"
FUTURE_MESSAGE = "Order date is in the future."


def too_old_message() -> str:
    return f"Order date is before {settings.QUALITY_MIN_YEAR}."


@dataclass(frozen=True)
class Rule:
    key: str
    dimension: str
    label: str
    column: str = ""  # the canonical field its row issues are about ("" when none are)
    message: str = ""  # the row issues' message (or its start) that show it, if any


RULES = (
    Rule("rejected", "validity", "Rows rejected", message=""),
    Rule("order_date", "completeness", "Order date missing", "order_date", DATE_MESSAGE),
    Rule("currency", "completeness", "Currency missing", "currency"),
    Rule("unit_of_measure", "completeness", "Unit of measure missing", "unit_of_measure"),
    Rule("category", "completeness", "Category missing", "category"),
    Rule("supplier_name", "completeness", "Supplier name missing", "supplier_name"),
    Rule("material_description", "completeness", "Material description missing", "material_description"),
    Rule("total_mismatch", "consistency", "Total ≠ quantity × unit price", "total_price", MISMATCH_MESSAGE),
    Rule("po_suppliers", "consistency", "Purchase orders with more than one supplier", "po_number"),
    Rule("po_currencies", "consistency", "Purchase orders with more than one currency", "po_number"),
    Rule("material_units", "consistency", "Materials with more than one unit of measure", "material_code"),
    Rule("duplicate_lines", "uniqueness", "PO lines that appear twice", "line_number"),
    Rule("order_date_range", "plausibility", "Order dates in the future or too old", "order_date", "Order date is"),
    Rule(
        "price_outliers",
        "plausibility",
        "Unit prices far from their material's usual price",
        "unit_price",
        OUTLIER_MESSAGE_START,
    ),
)
RULES_BY_KEY = {rule.key: rule for rule in RULES}
COMPLETENESS_FIELDS = ("order_date", "currency", "unit_of_measure", "category", "supplier_name", "material_description")


def weights() -> dict[str, float]:
    return {d: float(settings.QUALITY_WEIGHTS.get(d, 0)) for d in DIMENSIONS}


def grade(score: float) -> str:
    for threshold, letter in GRADES:
        if score >= threshold:
            return letter
    return "D"


class QualityCounter:
    """What one load measured, rule by rule: {rule: [measured, failed]}.

    Each batch is counted where the load already holds it, with Arrow and NumPy kernels
    (no Python loop over rows): `add_batch` on the validated lines, `add_keys` once the
    batch has its supplier, material and purchase order ids. The cross-batch rules keep
    only integer arrays (ids and small codes, 8 bytes a pair), deduplicated per batch and
    counted once in `close`: a million-line file keeps a few MB, not Python sets."""

    def __init__(self, *, columns: dict[str, str]) -> None:
        self.columns = columns
        self.counts: dict[str, list[int]] = {rule.key: [0, 0] for rule in RULES}
        # The counting's cost within the load: CPU time of the thread that counts. Its wall
        # time would also hold the turns the reading and writing threads take at the GIL
        # meanwhile, work the load does whether it counts or not.
        self.seconds = 0.0
        self._today = timezone.localdate().isoformat()
        self._oldest = date(settings.QUALITY_MIN_YEAR, 1, 1).isoformat()
        self._codes: dict[str, dict[str, int]] = {"currency": {}, "unit_of_measure": {}}
        # (key id, value id) pairs seen, per one-value-per-key rule; PO line keys.
        self._pairs: dict[str, _Pairs] = {key: _Pairs() for key in ("po_suppliers", "po_currencies", "material_units")}
        self._lines = _Keys()

    def add(self, key: str, measured: int, failed: int) -> None:
        self.counts[key][0] += int(measured)
        self.counts[key][1] += int(failed)

    def add_batch(self, *, raw: pd.DataFrame, lines: pd.DataFrame, issues: pd.DataFrame, rejected: int) -> pd.DataFrame:
        """Count one validated batch (`lines`: accepted rows, numbered). Returns the row
        issues (warnings) this adds: order dates out of range."""
        started = time.thread_time()
        try:
            return self._add_batch(raw=raw, lines=lines, issues=issues, rejected=rejected)
        finally:
            self.seconds += time.thread_time() - started

    def add_keys(self, lines: pd.DataFrame) -> None:
        """Count the cross-batch rules of one batch whose lines carry their supplier_id,
        material_id and purchase_order_id (ids stand for the keys one to one: a supplier and
        a material by their key, a purchase order by its number)."""
        started = time.thread_time()
        try:
            self._add_keys(lines)
        finally:
            self.seconds += time.thread_time() - started

    def _add_batch(
        self, *, raw: pd.DataFrame, lines: pd.DataFrame, issues: pd.DataFrame, rejected: int
    ) -> pd.DataFrame:
        accepted = len(lines)
        self.add("rejected", accepted + rejected, rejected)
        if not accepted:
            return no_issues()
        for name in ("unit_of_measure", "category", "supplier_name", "material_description"):
            if name in self.columns:
                self.add(name, accepted, _count(pc.equal(text_as_arrow(lines[name]), "")))
            else:  # not in the file (nor a constant): missing on every line
                self.add(name, accepted, accepted)
        dates = text_as_arrow(lines["order_date"])  # 'YYYY-MM-DD' or null: compared as text
        dated = accepted - dates.null_count
        self.add("order_date", accepted, accepted - dated)
        rows = None if lines.index.equals(raw.index) else raw.index.get_indexer(lines.index)
        header = self.columns.get("currency")
        self.add("currency", accepted, accepted - (_given(raw, header, rows) if header else 0))

        # Total = quantity x unit price, where the file gives both.
        unit_header = self.columns.get("unit_price")
        if unit_header and "total_price" in self.columns:
            unit_given = _given_mask(raw, unit_header, rows)
            both = int((unit_given & lines["total_price"].notna().to_numpy()).sum())
            failed = 0
            if len(issues):
                mismatches = issues["row"][(issues["message"] == MISMATCH_MESSAGE).to_numpy()]
                if len(mismatches):
                    failed = int(mismatches.isin(lines.index).sum())
            self.add("total_mismatch", both, failed)

        future = pc.fill_null(pc.greater(dates, self._today), False)
        too_old = pc.fill_null(pc.less(dates, self._oldest), False)
        n_future, n_old = _count(future), _count(too_old)
        self.add("order_date_range", dated, n_future + n_old)
        if not (n_future or n_old):
            return no_issues()
        header = self.columns.get("order_date", "")
        found = []
        for mask, count, message in ((future, n_future, FUTURE_MESSAGE), (too_old, n_old, too_old_message())):
            if count:
                hit = lines.index[np.asarray(mask)]
                found.append(
                    pd.DataFrame(
                        {
                            "row": hit.astype("int64"),
                            "column": header,
                            "value": raw.loc[hit, header].astype(str).to_numpy() if header in raw else "",
                            "message": message,
                            "severity": "warning",
                        }
                    )
                )
        return pd.concat(found, ignore_index=True)

    def _add_keys(self, lines: pd.DataFrame) -> None:
        if lines.empty:
            return
        po = lines["purchase_order_id"].to_numpy(dtype=np.int64)
        self._pairs["po_suppliers"].add(po, lines["supplier_id"].to_numpy(dtype=np.int64))
        self._pairs["po_currencies"].add(po, self._code("currency", lines["currency"]))
        coded = np.asarray(pc.not_equal(text_as_arrow(lines["material_code"]), ""), dtype=bool)
        if coded.any():
            materials = lines["material_id"].to_numpy(dtype=np.int64)[coded]
            units = self._code("unit_of_measure", lines["unit_of_measure"])[coded]
            self._pairs["material_units"].add(materials, units)
        if "line_number" in self.columns:
            self._lines.add(po, lines["line_number"].to_numpy(dtype=np.int64))

    def _code(self, name: str, values: pd.Series) -> np.ndarray:
        """Small integer codes of a text column's values, the same across batches."""
        encoded = pc.dictionary_encode(text_as_arrow(values))
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        codes = self._codes[name]
        table = np.array([codes.setdefault(v, len(codes)) for v in encoded.dictionary.to_pylist()], dtype=np.int64)
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        return table[indices] if len(table) else np.zeros(len(indices), dtype=np.int64)

    def close(self) -> dict[str, list[int]]:
        """The counts, the cross-batch rules included (every rule but the price outliers,
        which need the lines in the database)."""
        started = time.thread_time()
        for key, pairs in self._pairs.items():
            self.counts[key] = list(pairs.keys_with_many_values())
        if "line_number" in self.columns:
            rows, distinct = self._lines.rows_and_distinct()
            self.counts["duplicate_lines"] = [rows, rows - distinct]
        self.seconds += time.thread_time() - started
        return self.counts


def _count(mask: pa.Array | pa.ChunkedArray) -> int:
    return int(pc.sum(mask).as_py() or 0)


def _given_mask(raw: pd.DataFrame, header: str, rows: np.ndarray | None) -> np.ndarray:
    """Which lines have something in the file's `header` (blank or whitespace = not given).
    A constant the owner chose for every row (not a column of the file) is given."""
    if header not in raw:
        return np.ones(len(raw) if rows is None else len(rows), dtype=bool)
    values = text_as_arrow(raw[header])
    if rows is not None:
        values = pc.take(values, pa.array(rows))
    return np.asarray(pc.fill_null(pc.not_equal(pc.utf8_trim_whitespace(values), ""), False), dtype=bool)


def _given(raw: pd.DataFrame, header: str, rows: np.ndarray | None) -> int:
    return int(_given_mask(raw, header, rows).sum())


_SHIFT = 24  # value ids below 2**24 and key ids below 2**39 pack into one int64


class _Pairs:
    """Distinct (key, value) pairs of a one-value-per-key rule, packed in one int64 each
    (key ids below 2**39, value ids below 2**24; pairs out of that range kept apart)."""

    def __init__(self) -> None:
        self.packed: list[np.ndarray] = []
        self.pending = 0
        self.wide: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        if not len(keys):
            return
        if keys.min() >= 0 and values.min() >= 0 and keys.max() < 1 << 39 and values.max() < 1 << _SHIFT:
            self.packed.append(_distinct((keys << _SHIFT) | values))
            self.pending += len(self.packed[-1])
            if self.pending > 2_000_000:
                self.packed = [_distinct(np.concatenate(self.packed))]
                self.pending = len(self.packed[0])
        else:
            self.wide.append((keys, values))

    def keys_with_many_values(self) -> tuple[int, int]:
        """(distinct keys, keys seen with more than one value)."""
        pairs = _distinct(np.concatenate(self.packed)) if self.packed else np.zeros(0, dtype=np.int64)
        keys, values = pairs >> _SHIFT, pairs & ((1 << _SHIFT) - 1)
        if self.wide:
            keys = np.concatenate([keys, *(k for k, _ in self.wide)])
            values = np.concatenate([values, *(v for _, v in self.wide)])
            order = np.lexsort((values, keys))
            keys, values = keys[order], values[order]
            first = np.ones(len(keys), dtype=bool)
            first[1:] = (keys[1:] != keys[:-1]) | (values[1:] != values[:-1])
            keys = keys[first]
        if not len(keys):
            return 0, 0
        # Sorted by key: a key seen with two values is there twice in a row.
        repeated = keys[1:] == keys[:-1]
        runs = np.diff(np.concatenate(([0], repeated.astype(np.int8), [0])))
        return len(keys) - int(repeated.sum()), int((runs == 1).sum())


class _Keys:
    """PO line keys (purchase order id, line number) of every line, as packed int64."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.rows = 0
        self.pending = 0

    def add(self, po: np.ndarray, line: np.ndarray) -> None:
        if len(po) and (po.min() < 0 or line.min() < 0 or po.max() >= 1 << 32 or line.max() >= 1 << 31):
            # Out of the packed range (never for ids and PositiveIntegerField line numbers).
            packed = pd.util.hash_pandas_object(pd.DataFrame({"po": po, "line": line}), index=False).to_numpy()
            packed = packed.view(np.int64)
        else:
            packed = (po << 31) | line
        self.rows += len(packed)
        self.chunks.append(packed)
        self.pending += len(packed)
        if self.pending > 2_000_000:
            self.chunks = [_distinct(np.concatenate(self.chunks))]
            self.pending = len(self.chunks[0])

    def rows_and_distinct(self) -> tuple[int, int]:
        distinct = len(_distinct(np.concatenate(self.chunks))) if self.chunks else 0
        return self.rows, distinct


def _distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted (a sort: NumPy's hashing unique is slower here)."""
    ordered = np.sort(values)
    if len(ordered) < 2:
        return ordered
    keep = np.empty(len(ordered), dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def report(counts: dict[str, list[int]] | dict[str, tuple[int, int]]) -> dict:
    """{score, grade, dimensions: {name: share in %}, rules: [the rules that lost points,
    most first, with measured, failed and points]} from what the rules counted."""
    weight = weights()
    by_dimension: dict[str, list[tuple[Rule, float]]] = {d: [] for d in DIMENSIONS}
    for rule in RULES:
        measured, failed = counts.get(rule.key, (0, 0))
        if measured > 0:
            by_dimension[rule.dimension].append((rule, 1 - failed / measured))
    present = {d: rules for d, rules in by_dimension.items() if rules and weight[d] > 0}
    total_weight = sum(weight[d] for d in present)
    if not total_weight:
        return {"score": None, "grade": None, "dimensions": {}, "rules": []}
    dimensions = {d: sum(share for _, share in rules) / len(rules) for d, rules in present.items()}
    score = sum(weight[d] * dimensions[d] for d in present) / total_weight * 100
    costs: list[dict[str, Any]] = []
    for d, rules in present.items():
        for rule, share in rules:
            points = weight[d] / total_weight * 100 * (1 - share) / len(rules)
            if points > 0:
                measured, failed = counts[rule.key]
                costs.append(
                    {
                        "rule": rule.key,
                        "label": rule.label,
                        "dimension": d,
                        "measured": measured,
                        "failed": failed,
                        "points": round(points, 2),
                        "has_issues": rule_has_issues(rule.key),
                    }
                )
    costs.sort(key=lambda c: (-c["points"], c["rule"]))
    rounded = round(score, 1)
    return {
        "score": rounded,
        "grade": grade(rounded),
        "dimensions": {d: round(share * 100, 1) for d, share in dimensions.items()},
        "rules": costs,
    }


OUTLIER_MESSAGE = f"{OUTLIER_MESSAGE_START} (modified z-score above 3.5)."


def outlier_value(*, unit_price: str, po_number: str, line_number: int, median: str, z_score: float) -> str:
    """The warning's value: one message for every outlier, so the detail page groups them."""
    return f"{unit_price} (PO {po_number} line {line_number}; median {median}; z {z_score:.1f})"


def issues_of_rule(issues, *, rule: str):
    """The row issues that show a rule (a queryset of RowIssue): rows rejected are the
    errors; other rules by their message. A rule no row issue shows keeps none."""
    found = RULES_BY_KEY.get(rule)
    if found is None:
        return issues.none()
    if found.key == "rejected":
        return issues.filter(severity="error")
    if not found.message:
        return issues.none()
    return issues.filter(message__startswith=found.message)


def rule_has_issues(rule: str) -> bool:
    found = RULES_BY_KEY.get(rule)
    return bool(found and (found.key == "rejected" or found.message))
