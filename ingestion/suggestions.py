"""Suggesting a field for every column of a file, from its header and its first rows.

Header synonyms give certain suggestions; the values give the rest: ISO dates suggest a
date, three-letter codes a currency, and a column whose values times the quantity match
another column is the unit price for that total. Where two columns name the unit price
(a shipment file's `Unit Price` and `Pack Price`), the one consistent with the total wins,
with the reason said. Only certain suggestions load a file without asking its owner."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .columns import _SYNONYM_LISTS, CANONICAL_FIELDS, REQUIRED_GROUPS, SYNONYMS, _compact, normalize_header
from .parsing import decimal_places, parse_decimal, to_float

CERTAIN, LIKELY, GUESS = "certain", "likely", "guess"
SAMPLE_ROWS = 200
PREVIEW_ROWS = 20
SAMPLE_VALUES = 3
# A price column "matches" a total on at least this share of the rows that have all three.
PRICE_MATCH_SHARE = 0.8

# The fields as a buyer says them.
FIELD_LABELS = {
    "supplier_code": "supplier code",
    "supplier_name": "supplier name",
    "material_code": "material code",
    "material_description": "material description",
    "category": "category",
    "unit_of_measure": "unit of measure",
    "po_number": "PO number",
    "line_number": "PO line number",
    "order_date": "order date",
    "quantity": "quantity",
    "unit_price": "unit price",
    "total_price": "line total",
    "currency": "currency",
}
REQUIRED_FIELDS = frozenset(f for group in REQUIRED_GROUPS for f in group)
# Fields a payments file may take as one value for every row (spend lines).
CONSTANT_FIELDS = ("quantity", "po_number", "currency")

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2})?)?$")
_DATE_WORDS = ("date",)
# Names of two words or more, found inside a longer header ('Unit of Measure (per pack)'):
# a guess. Not line numbers: 'line item' is inside too many headers that are not.
_GUESSABLE = {
    normalize_header(name): f
    for f, names in _SYNONYM_LISTS.items()
    if f != "line_number"
    for name in names
    if len(normalize_header(name).split()) >= 2
}
# Currencies a buyer meets most; a column of other three-letter codes is not suggested.
KNOWN_CURRENCIES = frozenset(
    [
        "USD",
        "EUR",
        "GBP",
        "JPY",
        "CNY",
        "CHF",
        "CAD",
        "AUD",
        "NZD",
        "SEK",
        "NOK",
        "DKK",
        "PLN",
        "CZK",
        "HUF",
        "RON",
        "BGN",
        "TRY",
        "RUB",
        "INR",
        "PKR",
        "BDT",
        "IDR",
        "MYR",
        "SGD",
        "THB",
        "VND",
        "PHP",
        "KRW",
        "HKD",
        "TWD",
        "ZAR",
        "NGN",
        "KES",
        "GHS",
        "EGP",
        "MAD",
        "AED",
        "SAR",
        "QAR",
        "ILS",
        "BRL",
        "MXN",
        "ARS",
        "CLP",
        "COP",
        "PEN",
        "XOF",
        "XAF",
        "ETB",
        "TZS",
        "UGX",
        "MZN",
        "ZMW",
    ]
)
_ORDER_WORDS = ("po", "order", "purchase")


@dataclass
class Suggestion:
    field: str | None
    confidence: str
    reason: str

    def as_dict(self) -> dict:
        return {"field": self.field, "confidence": self.confidence, "reason": self.reason}


@dataclass
class MappingPlan:
    """What Intake makes of a file's columns: a suggestion per header, what loads without
    asking (`field_to_header`), and what stops it (`missing`, `ambiguous`, `problems`)."""

    headers: list[str]
    suggestions: dict[str, Suggestion]
    field_to_header: dict[str, str]
    missing: list[str] = field(default_factory=list)  # required groups: "quantity", "unit_price or total_price"
    ambiguous: dict[str, list[str]] = field(default_factory=dict)
    unused: dict[str, str] = field(default_factory=dict)  # header -> why it is not loaded
    problems: list[str] = field(default_factory=list)  # a given mapping that does not fit the file

    @property
    def ready(self) -> bool:
        return not self.missing and not self.ambiguous and not self.problems

    def message(self) -> str:
        """Why the file waits for its owner, in a buyer's words."""
        parts = list(self.problems)
        for group in self.missing:
            parts.append("the file has no " + " or ".join(FIELD_LABELS[f] for f in group.split(" or ")) + " column")
        for name, headers in self.ambiguous.items():
            parts.append(
                f"{len(headers)} columns could be the {FIELD_LABELS[name]} ("
                + ", ".join(repr(h) for h in headers)
                + ")"
            )
        text = "; ".join(parts)
        return (text[:1].upper() + text[1:] + ". Choose the columns below.") if text else ""


def _candidates_by_synonym(header: str) -> Suggestion | None:
    name = SYNONYMS.get(_compact(normalize_header(header)))
    if name:
        return Suggestion(name, CERTAIN, f"'{header}' is a usual name for the {FIELD_LABELS[name]}")
    return None


def _guess_from_header(header: str) -> Suggestion | None:
    """Weaker hints in the header: a PO or order date, or a known name inside a longer one."""
    words = normalize_header(header).replace("/", " ").split()
    if any(w in _DATE_WORDS for w in words) and any(w in _ORDER_WORDS for w in words):
        return Suggestion("order_date", LIKELY, f"'{header}' names a date of the order")
    text = " " + " ".join(words) + " "
    best = ""
    for synonym in _GUESSABLE:
        if f" {synonym} " in text and len(synonym) > len(best):
            best = synonym
    if best:
        name = _GUESSABLE[best]
        return Suggestion(name, GUESS, f"'{header}' contains '{best}', a name for the {FIELD_LABELS[name]}")
    return None


def _guess_from_values(header: str, values: pd.Series) -> Suggestion | None:
    filled = values[values.str.strip() != ""].str.strip()
    if len(filled) < 3:
        return None
    words = normalize_header(header).split()
    if filled.map(lambda v: bool(_ISO_DATE.match(v))).mean() >= 0.8:
        confidence = LIKELY if "date" in words else GUESS
        return Suggestion("order_date", confidence, f"its values are ISO dates ({filled.iloc[0]})")
    if filled.isin(KNOWN_CURRENCIES).mean() >= 0.9:
        codes = ", ".join(sorted(filled.unique())[:3])
        return Suggestion("currency", LIKELY, f"its values are three-letter currency codes ({codes})")
    return None


def _numbers(values: pd.Series) -> np.ndarray:
    parsed, _bad = parse_decimal(values.fillna("").astype(str))
    return to_float(parsed)


def price_match_share(price: pd.Series, quantity: pd.Series, total: pd.Series) -> float | None:
    """The share of rows (having all three) on which quantity x price equals the total within
    the rounding of the price; None when no row has all three."""
    p, q, t = _numbers(price), _numbers(quantity), _numbers(total)
    has = ~np.isnan(p) & ~np.isnan(q) & ~np.isnan(t)
    if not has.any():
        return None
    parsed, _bad = parse_decimal(price.fillna("").astype(str))
    places = decimal_places(parsed).to_numpy().astype(float)
    places = np.where(np.isnan(places), 0, places)
    tolerance = np.abs(q) * 0.5 * np.power(10.0, -places) + 0.005 + 1e-9
    ok = np.abs(q * p - t) <= tolerance
    return float(ok[has].mean())


def suggest(
    headers: list[str],
    sample: pd.DataFrame | None,
    *,
    explicit: dict[str, str] | None = None,
    constants: dict[str, str] | None = None,
) -> MappingPlan:
    """The plan for a file with these headers and sample rows (the file's headers as columns,
    every cell text). `explicit` ({header: field, or '' to ignore}) wins over suggestions;
    `constants` ({field: value}) stand for columns the file lacks."""
    explicit = explicit or {}
    constants = {k: v for k, v in (constants or {}).items() if str(v).strip()}
    sample = sample if sample is not None else pd.DataFrame(columns=headers)
    by_normal = {normalize_header(h): h for h in headers}
    suggestions: dict[str, Suggestion] = {}
    chosen: dict[str, str] = {}
    problems: list[str] = []
    ignored: set[str] = set()

    for wanted, name in explicit.items():
        actual = wanted if wanted in headers else by_normal.get(normalize_header(wanted))
        if actual is None:
            if name:
                problems.append(
                    f"the mapping names column '{wanted}' (for the {FIELD_LABELS.get(name, name)}), "
                    "which is not in this file"
                )
            continue
        if not name:
            ignored.add(actual)
            suggestions[actual] = Suggestion(None, CERTAIN, "ignored by choice")
            continue
        if name in chosen and chosen[name] != actual:
            problems.append(f"two columns are chosen for the {FIELD_LABELS[name]}: '{chosen[name]}' and '{actual}'")
            continue
        chosen[name] = actual
        suggestions[actual] = Suggestion(name, CERTAIN, "chosen")

    # Every other header: its synonym, else what its name or its values suggest.
    certain: dict[str, list[str]] = {}
    weaker: dict[str, Suggestion] = {}
    for header in headers:
        if header in suggestions:
            continue
        hint = _candidates_by_synonym(header)
        if hint and hint.field not in chosen and hint.field not in constants:
            certain.setdefault(hint.field or "", []).append(header)
            suggestions[header] = hint
            continue
        values = sample[header] if header in sample.columns else pd.Series([], dtype=object)
        hint = _guess_from_header(header) or _guess_from_values(header, values.astype(str))
        if hint and hint.field not in chosen:
            weaker[header] = hint
        suggestions[header] = hint or Suggestion(None, GUESS, "not a known field")

    unused: dict[str, str] = {}
    ambiguous: dict[str, list[str]] = {}
    quantity_header = chosen.get("quantity") or _single(certain.get("quantity"))
    total_header = chosen.get("total_price") or _single(certain.get("total_price"))
    for name, found in certain.items():
        if len(found) == 1:
            chosen[name] = found[0]
            continue
        winner = None
        if name == "unit_price" and quantity_header and total_header:
            winner = _price_by_total(found, sample, quantity_header, total_header, suggestions, unused)
        if winner:
            chosen[name] = winner
        else:
            ambiguous[name] = found
            for header in found:
                suggestions[header] = Suggestion(
                    name, LIKELY, f"one of {len(found)} columns named like the {FIELD_LABELS[name]}"
                )

    # Without a unit price by name, the values may show one: price x quantity = total.
    if "unit_price" not in chosen and "unit_price" not in ambiguous and quantity_header and len(sample):
        _price_from_values(headers, sample, chosen, quantity_header, suggestions)

    for header in headers:
        hint = suggestions[header]
        if header in chosen.values() or header in unused:
            continue
        if header in ignored:
            unused[header] = "ignored by choice"
        elif hint.field is None:
            unused[header] = "not a known field"
        elif hint.field in ambiguous:
            unused[header] = f"one of {len(ambiguous[hint.field])} candidates for the {FIELD_LABELS[hint.field]}"
        elif hint.field in chosen:
            unused[header] = f"a second candidate for the {FIELD_LABELS[hint.field]}"
        else:
            unused[header] = (
                f"looks like the {FIELD_LABELS[hint.field]} ({hint.confidence}: {hint.reason}); choose it to load it"
            )

    missing = [
        " or ".join(group)
        for group in REQUIRED_GROUPS
        if not any(f in chosen or f in constants or f in ambiguous for f in group)
    ]
    return MappingPlan(
        headers=list(headers),
        suggestions=suggestions,
        field_to_header=chosen,
        missing=missing,
        ambiguous=ambiguous,
        unused=unused,
        problems=problems,
    )


def _single(found: list[str] | None) -> str | None:
    return found[0] if found and len(found) == 1 else None


def _price_by_total(
    found: list[str],
    sample: pd.DataFrame,
    quantity: str,
    total: str,
    suggestions: dict[str, Suggestion],
    unused: dict[str, str],
) -> str | None:
    """Of several unit-price columns, the one whose values times the quantity give the total."""
    if not len(sample):
        return None
    shares = {h: price_match_share(sample[h], sample[quantity], sample[total]) or 0.0 for h in found}
    ranked = sorted(found, key=lambda h: shares[h], reverse=True)
    best, second = ranked[0], ranked[1]
    if shares[best] < PRICE_MATCH_SHARE or shares[second] >= PRICE_MATCH_SHARE:
        return None
    suggestions[best] = Suggestion("unit_price", CERTAIN, f"matches {total} on {shares[best]:.0%} of the sample rows")
    for header in ranked[1:]:
        reason = f"a second candidate for the unit price (matches {total} on {shares[header]:.0%} of the sample rows)"
        suggestions[header] = Suggestion("unit_price", GUESS, reason)
        unused[header] = reason
    return best


def _price_from_values(
    headers: list[str],
    sample: pd.DataFrame,
    chosen: dict[str, str],
    quantity: str,
    suggestions: dict[str, Suggestion],
) -> None:
    taken = set(chosen.values())
    numeric = [h for h in headers if h not in taken and h in sample.columns]
    numeric = [h for h in numeric if (~np.isnan(_numbers(sample[h]))).mean() >= 0.8][:30]
    totals = ([chosen["total_price"]] if "total_price" in chosen else []) + numeric
    for price in numeric:
        for total in totals:
            if total == price:
                continue
            share = price_match_share(sample[price], sample[quantity], sample[total])
            if share is not None and share >= PRICE_MATCH_SHARE:
                suggestions[price] = Suggestion(
                    "unit_price", LIKELY, f"times the quantity it matches {total} on {share:.0%} of the sample rows"
                )
                if total not in chosen.values():
                    suggestions[total] = Suggestion(
                        "total_price", LIKELY, f"equals quantity x {price} on {share:.0%} of the sample rows"
                    )
                return


def samples_of(headers: list[str], sample: pd.DataFrame) -> dict[str, list[str]]:
    """Up to three distinct non-blank values of every column, to show beside it."""
    out: dict[str, list[str]] = {}
    for header in headers:
        if header not in sample.columns:
            out[header] = []
            continue
        values = sample[header].astype(str).str.strip()
        out[header] = list(dict.fromkeys(v for v in values.tolist() if v))[:SAMPLE_VALUES]
    return out


def is_field(name: str) -> bool:
    return name in CANONICAL_FIELDS
