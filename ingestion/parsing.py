"""Turning the text of messy cells into values, a whole column at a time.

Every parser takes a pandas Series of strings ('' for a blank cell) and returns the parsed
values plus a mask of cells that were not blank but could not be parsed. Numbers stay exact
decimal strings (never floats) all the way into the database."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# Patterns spelled for RE2, so that pandas runs them in Arrow: pandas falls back to Python's
# `re`, one cell at a time and ten times slower, for \s, for \d on non-ASCII text and for a
# `$` that could match before a newline. White space is therefore the explicit set that
# Python's str.isspace() accepts, digits are [0-9] (other scripts' digits are no amount of
# money here) and the end of text is \Z.
_WS_NOT_SPACE = "\t\n\x0b\x0c\r\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_WS = f"[ {_WS_NOT_SPACE}]"
_SPACES = f"{_WS}+"
_MESSY_SPACE = f"{_WS}{_WS}|[{_WS_NOT_SPACE}]"  # a run of white space, or one that is not a plain space
_CURRENCY_AFFIX = r"(?:[A-Za-z]{3}|[$€£¥₹])"
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_THOUSANDS = r"[+-]?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]*)?"
_DECIMAL_COMMA = r"[+-]?[0-9]+,[0-9]{1,2}"
_PLAIN_INT = r"[0-9]{1,9}"
_INT = r"\+?([0-9]{1,9})(?:\.0*)?"
_INT_DIGITS = r"^\+?([0-9]{1,9})"
_MIDNIGHT = r"[ T]00:00(?::00(?:\.0+)?)?\Z"
_ISO_CURRENCY = r"[A-Z]{3}"
# Every pattern handed to a pandas string method (a unit test holds them to the Arrow path).
ARROW_PATTERNS = (_SPACES, _MESSY_SPACE, _NUMBER, _PLAIN_INT, _INT, _INT_DIGITS, _MIDNIGHT, _ISO_CURRENCY)


def clean_text(values: pd.Series) -> pd.Series:
    """Trim and fold runs of white space: '  ACME   Ltd ' -> 'ACME Ltd'. The replacement
    runs only on the cells that need it: most cells of an export are already clean, and a
    regex replace costs ten times the test for it."""
    values = values.str.strip()
    messy = values.str.contains(_MESSY_SPACE, regex=True)
    if messy.any():
        values = values.where(~messy, values[messy].str.replace(_SPACES, " ", regex=True))
    return values


def normalize_key(values: pd.Series) -> pd.Series:
    """The identity form of a name: case and spacing do not make a new supplier."""
    return clean_text(values).str.casefold()


def parse_decimal(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """'$1,234.56', 'USD 12.50', '12.50 EUR', '(12.00)', ' 7 ' -> exact decimal strings.

    Returns (decimal strings with None for blanks and failures, mask of failures)."""
    text = values.str.strip()
    plain = text.str.fullmatch(_NUMBER)
    messy = ~plain & (text != "")
    if not messy.any():  # the common case: a clean export pays for one regex
        return text.where(plain, None), messy
    cleaned, ok = _each_distinct(text[messy], _clean_money)
    text = text.where(plain, None).astype(object)
    text.loc[cleaned.index] = cleaned.where(ok, None)
    return text, messy & ~ok.reindex(messy.index, fill_value=False)


_LEADING_AFFIX = re.compile(rf"^[+-]?{_WS}*{_CURRENCY_AFFIX}?{_WS}*")
_TRAILING_AFFIX = re.compile(rf"{_WS}*{_CURRENCY_AFFIX}\Z")
_THOUSANDS_RE = re.compile(_THOUSANDS)
_DECIMAL_COMMA_RE = re.compile(_DECIMAL_COMMA)
_NUMBER_RE = re.compile(_NUMBER)


def _clean_money(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The cells that are not plain numbers, one distinct value at a time: there are few of
    them, and a dozen vectorized passes over a few hundred cells cost more than a loop."""
    pairs = [_clean_amount(value) for value in text.tolist()]
    return (
        pd.Series([value for value, _ in pairs], index=text.index, dtype=object),
        pd.Series([ok for _, ok in pairs], index=text.index, dtype=bool),
    )


def _clean_amount(text: str) -> tuple[str, bool]:
    """'$1,234.56' -> ('1234.56', True); '(12.00)' -> ('-12.00', True); 'abc' -> (..., False)."""
    negative = text.startswith("(") and text.endswith(")")
    if negative:
        text = text[1:-1].strip()
    # A sign may stand before or after a currency symbol: '-$5', '$-5'.
    sign = text[0] if text[:1] in ("+", "-") else ""
    text = _LEADING_AFFIX.sub("", text, count=1)
    text = _TRAILING_AFFIX.sub("", text, count=1)
    text = (sign + text).replace(" ", "")
    if _THOUSANDS_RE.fullmatch(text):
        text = text.replace(",", "")
    if _DECIMAL_COMMA_RE.fullmatch(text):
        text = text.replace(",", ".")
    ok = _NUMBER_RE.fullmatch(text) is not None
    if negative:
        text = "-" + text.lstrip("+")
    return text.replace("--", ""), ok


def parse_int(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Whole numbers such as line numbers ('10', '10.0')."""
    text = values.str.strip()
    if text.str.fullmatch(_PLAIN_INT).all():  # the common case: one regex
        return text, pd.Series(False, index=text.index)
    blank = text == ""
    match = text.str.fullmatch(_INT)
    digits = text.str.extract(_INT_DIGITS, expand=False)
    ok = match & ~blank
    return digits.where(ok, None), ~ok & ~blank


# Formats tried in order on the cells still unparsed; day/month order is per upload.
_ISO_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y/%m/%d")
_MONTH_FIRST = ("%m/%d/%Y", "%m/%d/%y", "%m-%d-%Y", "%m.%d.%Y")
_DAY_FIRST = ("%d/%m/%Y", "%d/%m/%y", "%d-%m-%Y", "%d.%m.%Y")
_NAMED_MONTH = (
    "%d-%b-%y",
    "%d-%b-%Y",
    "%d %b %Y",
    "%d %B %Y",
    "%b %d, %Y",
    "%B %d, %Y",
    "%d-%B-%Y",
    "%d-%b-%y %H:%M:%S",
)
_EXCEL_EPOCH = pd.Timestamp("1899-12-30")


def parse_date(values: pd.Series, *, day_first: bool) -> tuple[pd.Series, pd.Series]:
    """ISO, 9/11/2014 (month or day first, as the upload says), 2-Jun-06, Excel serial
    numbers. Returns ('YYYY-MM-DD' strings or None, mask of failures)."""
    return _each_distinct(values, lambda distinct: _parse_dates(distinct, day_first=day_first))


def _each_distinct(values: pd.Series, parse) -> tuple[pd.Series, pd.Series]:
    """`parse` run once per distinct value and spread back: a batch's dates and messy
    amounts repeat (the lines of one order share a date), and trying format after format
    on 500 distinct cells instead of 5,000 is most of the work saved."""
    codes, distinct = pd.factorize(values)
    parsed, failed = parse(pd.Series(distinct, dtype=values.dtype))
    return (
        pd.Series(parsed.to_numpy(dtype=object)[codes], index=values.index, dtype=object),
        pd.Series(failed.to_numpy(dtype=bool)[codes], index=values.index),
    )


def _parse_dates(values: pd.Series, *, day_first: bool) -> tuple[pd.Series, pd.Series]:
    text = values.str.strip()
    # Times after a date ('2014-09-11 00:00:00') are common in exports; drop a midnight.
    text = text.str.replace(_MIDNIGHT, "", regex=True)
    result = pd.Series([None] * len(text), index=text.index, dtype=object)
    todo = text != ""
    formats = _ISO_FORMATS + (_DAY_FIRST if day_first else _MONTH_FIRST) + _NAMED_MONTH
    for fmt in formats:
        if not todo.any():
            break
        parsed = pd.to_datetime(text[todo], format=fmt, errors="coerce")
        hit = parsed.notna()
        if hit.any():
            index = hit[hit].index
            result.loc[index] = parsed[hit].dt.strftime("%Y-%m-%d")
            todo.loc[index] = False
    if todo.any():
        serial = pd.to_numeric(text[todo], errors="coerce")
        plausible = serial.between(1, 2958465)  # 1900-01-01 .. 9999-12-31
        if plausible.any():
            days = serial[plausible]
            dates = _EXCEL_EPOCH + pd.to_timedelta(days.astype("float64").round(), unit="D")
            result.loc[days.index] = dates.dt.strftime("%Y-%m-%d")
            todo.loc[days.index] = False
    return result, todo


def parse_currency(values: pd.Series, *, default: str) -> tuple[pd.Series, pd.Series]:
    """ISO 4217 codes; blank means the default. Returns (codes, mask of unrecognised)."""
    text = values.str.strip().str.upper()
    symbols = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR"}
    text = text.replace(symbols)
    blank = text == ""
    ok = text.str.fullmatch(_ISO_CURRENCY)
    bad = ~ok & ~blank
    return text.where(ok, default), bad


def decimal_places(values: pd.Series) -> pd.Series:
    """How many digits a decimal string shows after its point (for rounding tolerances)."""
    text = values.fillna("").astype("str")
    point = text.str.find(".").to_numpy()
    places = np.where(point >= 0, text.str.len().to_numpy() - point - 1, 0)
    return pd.Series(places, index=values.index)


def divide(numerators: pd.Series, denominators: pd.Series, *, places: int = 6) -> pd.Series:
    """Exact Decimal division for the few rows that need it (a unit price from a total)."""
    quantum = Decimal(1).scaleb(-places)
    out: list[str | None] = []
    for numerator, denominator in zip(numerators, denominators):
        try:
            out.append(str((Decimal(numerator) / Decimal(denominator)).quantize(quantum)))
        except (InvalidOperation, ZeroDivisionError, TypeError):
            out.append(None)
    return pd.Series(out, index=numerators.index, dtype=object)


def to_float(values: pd.Series) -> np.ndarray:
    """Floats for comparisons only (signs, tolerances), never for stored values. The values
    are parsed decimal strings or blanks, so Arrow's cast takes them all (6x to_numeric)."""
    try:
        array = pa.array(values.astype("str").array, type=pa.string())
        return pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def text_as_arrow(values: pd.Series) -> pa.Array | pa.ChunkedArray:
    """A text column as Arrow: no copy for Arrow-backed strings; None and NaN are nulls."""
    to_arrow = getattr(values.array, "__arrow_array__", None)
    if to_arrow is not None and pd.api.types.is_string_dtype(values.dtype) and values.dtype != object:
        return to_arrow()
    return pa.array(values.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
