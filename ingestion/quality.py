"""The quality score of an upload: counted within the load, from the batches it already
reads, and finished with one set-based query once its lines are written.

Each rule is a share of what it measures (rows, cells, purchase orders, materials), as data
quality tools count them; a dimension is the mean of its rules that measured something; the
score is the weighted mean of the dimensions that measured something (weights:
QUALITY_WEIGHTS), from 0 to 100, graded A at 95, B at 85, C at 70, D below. Each rule's cost
in points is its exact share of what the score lost, so the three rules that cost the most
are named with the score."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd
from django.conf import settings
from django.utils import timezone

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


@dataclass
class QualityCounter:
    """What one load measured, rule by rule: {rule: [measured, failed]}. Cross-batch rules
    keep small maps keyed by purchase order, material and PO line."""

    columns: dict[str, str]
    counts: dict[str, list[int]] = field(default_factory=lambda: {rule.key: [0, 0] for rule in RULES})
    po_supplier: dict[str, str] = field(default_factory=dict)
    po_currency: dict[str, str] = field(default_factory=dict)
    material_unit: dict[str, str] = field(default_factory=dict)
    bad_pos_supplier: set[str] = field(default_factory=set)
    bad_pos_currency: set[str] = field(default_factory=set)
    bad_materials: set[str] = field(default_factory=set)
    seen_lines: set[int] = field(default_factory=set)
    seconds: float = 0.0  # time spent counting, within the load

    def add(self, key: str, measured: int, failed: int) -> None:
        self.counts[key][0] += int(measured)
        self.counts[key][1] += int(failed)

    def add_batch(self, *, raw: pd.DataFrame, lines: pd.DataFrame, issues: pd.DataFrame, rejected: int) -> pd.DataFrame:
        """Count one validated batch (`lines`: accepted rows, numbered). Returns the row
        issues (warnings) this adds: order dates out of range."""
        started = time.perf_counter()
        try:
            return self._add_batch(raw=raw, lines=lines, issues=issues, rejected=rejected)
        finally:
            self.seconds += time.perf_counter() - started

    def _add_batch(
        self, *, raw: pd.DataFrame, lines: pd.DataFrame, issues: pd.DataFrame, rejected: int
    ) -> pd.DataFrame:
        accepted = len(lines)
        self.add("rejected", accepted + rejected, rejected)
        if not accepted:
            return _no_issues()
        for name in ("unit_of_measure", "category", "supplier_name", "material_description"):
            self.add(name, accepted, int((lines[name] == "").sum()))
        dates = pd.to_datetime(lines["order_date"], errors="coerce")
        self.add("order_date", accepted, int(dates.isna().sum()))
        header = self.columns.get("currency")
        if header:
            given = raw.loc[lines.index, header].fillna("").astype(str).str.strip() != ""
            self.add("currency", accepted, accepted - int(given.sum()))
        else:
            self.add("currency", accepted, accepted)

        # Total = quantity x unit price, where the file gives both.
        unit_header = self.columns.get("unit_price")
        if unit_header and "total_price" in self.columns:
            unit_given = raw.loc[lines.index, unit_header].fillna("").astype(str).str.strip() != ""
            both = int((unit_given & lines["total_price"].notna()).sum())
            if len(issues):
                mismatches = issues[(issues["message"] == MISMATCH_MESSAGE)]
                failed = int(mismatches["row"].isin(lines.index).sum())
            else:
                failed = 0
            self.add("total_mismatch", both, failed)

        self._one_per_key(lines, "po_number", "supplier_key", self.po_supplier, self.bad_pos_supplier)
        self._one_per_key(lines, "po_number", "currency", self.po_currency, self.bad_pos_currency)
        coded = lines[lines["material_code"] != ""]
        self._one_per_key(coded, "material_key", "unit_of_measure", self.material_unit, self.bad_materials)

        if "line_number" in self.columns:
            keys = pd.util.hash_pandas_object(lines[["po_number", "line_number"]].astype(str), index=False).to_numpy()
            repeated = pd.Series(keys).duplicated().to_numpy()
            before = len(self.seen_lines)
            fresh = set(keys[~repeated].tolist())
            self.seen_lines |= fresh
            seen_earlier = len(fresh) - (len(self.seen_lines) - before)
            self.add("duplicate_lines", accepted, int(repeated.sum()) + seen_earlier)

        dated = dates.notna()
        today = pd.Timestamp(timezone.localdate())
        future = dated & (dates > today)
        too_old = dated & (dates < pd.Timestamp(date(settings.QUALITY_MIN_YEAR, 1, 1)))
        self.add("order_date_range", int(dated.sum()), int((future | too_old).sum()))
        header = self.columns.get("order_date", "")
        found = []
        for mask, message in ((future, FUTURE_MESSAGE), (too_old, too_old_message())):
            if mask.any():
                hit = lines.index[mask.to_numpy()]
                found.append(
                    pd.DataFrame(
                        {
                            "row": hit.astype("int64"),
                            "column": header,
                            "value": raw.loc[hit, header].astype(str).to_numpy() if header else "",
                            "message": message,
                            "severity": "warning",
                        }
                    )
                )
        return pd.concat(found, ignore_index=True) if found else _no_issues()

    @staticmethod
    def _one_per_key(lines: pd.DataFrame, key: str, value: str, first: dict[str, str], bad: set[str]) -> None:
        pairs = lines[[key, value]].drop_duplicates()
        for k, v in pairs.itertuples(index=False, name=None):
            seen = first.setdefault(k, v)
            if seen != v:
                bad.add(k)

    def close_maps(self) -> None:
        self.counts["po_suppliers"] = [len(self.po_supplier), len(self.bad_pos_supplier)]
        self.counts["po_currencies"] = [len(self.po_currency), len(self.bad_pos_currency)]
        self.counts["material_units"] = [len(self.material_unit), len(self.bad_materials)]


def _no_issues() -> pd.DataFrame:
    return pd.DataFrame(columns=["row", "column", "value", "message", "severity"])


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


def finish(*, upload, counter: QualityCounter) -> dict:
    """After the lines are written: the cross-batch rules, and the one set-based query (the
    analytics' outlier rule over the materials this upload carried). Outliers become
    warnings on the upload. Returns the report, stored by the caller."""
    from analytics.selectors import upload_outliers

    started = time.perf_counter()
    counter.close_maps()
    outliers = upload_outliers(upload_id=upload.pk) if upload.imported_rows else []
    counter.counts["price_outliers"] = [upload.imported_rows, len(outliers)]
    counter.seconds += time.perf_counter() - started
    return report(counter.counts) | {"outliers": outliers}


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
