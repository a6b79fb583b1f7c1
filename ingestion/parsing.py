"""Turning the text of messy cells into values, a whole column at a time.

Every parser takes a pandas Series of strings ('' for a blank cell) and returns the parsed
values plus a mask of cells that were not blank but could not be parsed. Numbers stay exact
decimal strings (never floats) all the way into the database."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

import numpy as np
import pandas as pd

_SPACES = re.compile(r"\s+")
_CURRENCY_AFFIX = r"(?:[A-Za-z]{3}|[$€£¥₹])"
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d{1,2}$")


def clean_text(values: pd.Series) -> pd.Series:
    """Trim and fold runs of white space: '  ACME   Ltd ' -> 'ACME Ltd'."""
    return values.str.replace(_SPACES, " ", regex=True).str.strip()


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
    cleaned, ok = _clean_money(text[messy])
    text = text.where(plain, None).astype(object)
    text.loc[cleaned.index] = cleaned.where(ok, None)
    return text, messy & ~ok.reindex(messy.index, fill_value=False)


def _clean_money(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    negative = text.str.startswith("(") & text.str.endswith(")")
    text = text.where(~negative, text.str.slice(1, -1).str.strip())
    # A sign may stand before or after a currency symbol: '-$5', '$-5'.
    sign = text.str.extract(r"^([+-]?)", expand=False).fillna("")
    text = text.str.replace(rf"^[+-]?\s*{_CURRENCY_AFFIX}?\s*", "", regex=True)
    text = text.str.replace(rf"\s*{_CURRENCY_AFFIX}$", "", regex=True)
    text = (sign + text).str.replace(" ", "", regex=False)
    thousands = text.str.match(_THOUSANDS)
    text = text.where(~thousands, text.str.replace(",", "", regex=False))
    decimal_comma = text.str.match(_DECIMAL_COMMA)
    text = text.where(~decimal_comma, text.str.replace(",", ".", regex=False))
    ok = text.str.fullmatch(_NUMBER)
    text = text.where(~negative, "-" + text.str.lstrip("+"))
    text = text.str.replace("--", "", regex=False)
    return text, ok


def parse_int(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Whole numbers such as line numbers ('10', '10.0')."""
    text = values.str.strip()
    blank = text == ""
    match = text.str.fullmatch(r"\+?(\d{1,9})(?:\.0*)?")
    digits = text.str.extract(r"^\+?(\d{1,9})", expand=False)
    ok = match & ~blank
    return digits.where(ok, None), ~ok & ~blank


# Formats tried in order on the cells still unparsed; day/month order is per upload.
_ISO_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y/%m/%d")
_MONTH_FIRST = ("%m/%d/%Y", "%m/%d/%y", "%m-%d-%Y", "%m.%d.%Y")
_DAY_FIRST = ("%d/%m/%Y", "%d/%m/%y", "%d-%m-%Y", "%d.%m.%Y")
_NAMED_MONTH = ("%d-%b-%y", "%d-%b-%Y", "%d %b %Y", "%d %B %Y", "%b %d, %Y", "%B %d, %Y", "%d-%B-%Y", "%d-%b-%y %H:%M:%S")
_EXCEL_EPOCH = pd.Timestamp("1899-12-30")


def parse_date(values: pd.Series, *, day_first: bool) -> tuple[pd.Series, pd.Series]:
    """ISO, 9/11/2014 (month or day first, as the upload says), 2-Jun-06, Excel serial
    numbers. Returns ('YYYY-MM-DD' strings or None, mask of failures)."""
    text = values.str.strip()
    # Times after a date ('2014-09-11 00:00:00') are common in exports; drop a midnight.
    text = text.str.replace(r"[ T]00:00(?::00(?:\.0+)?)?$", "", regex=True)
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
    ok = text.str.fullmatch(r"[A-Z]{3}")
    bad = ~ok & ~blank
    return text.where(ok, default), bad


def decimal_places(values: pd.Series) -> pd.Series:
    """How many digits a decimal string shows after its point (for rounding tolerances)."""
    fraction = values.fillna("").str.extract(r"\.(\d*)", expand=False).fillna("")
    return fraction.str.len()


def divide(numerators: pd.Series, denominators: pd.Series, *, places: int = 6) -> pd.Series:
    """Exact Decimal division for the few rows that need it (a unit price from a total)."""
    quantum = Decimal(1).scaleb(-places)
    out = []
    for numerator, denominator in zip(numerators, denominators):
        try:
            out.append(str((Decimal(numerator) / Decimal(denominator)).quantize(quantum)))
        except (InvalidOperation, ZeroDivisionError, TypeError):
            out.append(None)
    return pd.Series(out, index=numerators.index, dtype=object)


def to_float(values: pd.Series) -> np.ndarray:
    """Floats for comparisons only (signs, tolerances), never for stored values."""
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
