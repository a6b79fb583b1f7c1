import pandas as pd
import pytest

from ingestion import parsing


def series(*values):
    return pd.Series(list(values), dtype=object)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("$1,234.56", "1234.56"),
        ("USD 12.50", "12.50"),
        ("12.50 EUR", "12.50"),
        ("(12.00)", "-12.00"),
        ("($1,000.00)", "-1000.00"),
        ("  7 ", "7"),
        ("-$5", "-5"),
        ("£3.5", "3.5"),
        ("12,5", "12.5"),
        ("1e-05", "1e-05"),
        ("+4", "+4"),
    ],
)
def test_parse_decimal_accepts_money_as_people_write_it(raw, expected):
    values, bad = parsing.parse_decimal(series(raw))
    assert values.iloc[0] == expected
    assert not bad.iloc[0]


@pytest.mark.parametrize("raw", ["abc", "N/A", "1.2.3", "$", "12 34x"])
def test_parse_decimal_flags_text(raw):
    values, bad = parsing.parse_decimal(series(raw))
    assert pd.isna(values.iloc[0])
    assert bad.iloc[0]


def test_parse_decimal_blank_is_missing_not_bad():
    values, bad = parsing.parse_decimal(series("", "   "))
    assert values.isna().all()
    assert not bad.any()


def test_parse_decimal_keeps_exact_digits():
    values, _ = parsing.parse_decimal(series("0.1", "1234567890123.123456"))
    assert list(values) == ["0.1", "1234567890123.123456"]


@pytest.mark.parametrize(
    ("raw", "day_first", "expected"),
    [
        ("2014-09-11", False, "2014-09-11"),
        ("2014-09-11 00:00:00", False, "2014-09-11"),
        ("9/11/2014", False, "2014-09-11"),
        ("11/09/2014", True, "2014-09-11"),
        ("2-Jun-06", False, "2006-06-02"),
        ("29-Aug-14", True, "2014-08-29"),
        ("41000", False, "2012-04-01"),
        ("41000.0", False, "2012-04-01"),
        ("5 Mar 2020", False, "2020-03-05"),
    ],
)
def test_parse_date_formats(raw, day_first, expected):
    values, bad = parsing.parse_date(series(raw), day_first=day_first)
    assert values.iloc[0] == expected
    assert not bad.iloc[0]


def test_parse_date_day_order_is_the_uploads_choice():
    us, _ = parsing.parse_date(series("03/04/2020"), day_first=False)
    uk, _ = parsing.parse_date(series("03/04/2020"), day_first=True)
    assert (us.iloc[0], uk.iloc[0]) == ("2020-03-04", "2020-04-03")


@pytest.mark.parametrize("raw", ["N/A - From RDC", "Pre-PQ Process", "Date Not Captured", "13/45/2020"])
def test_parse_date_flags_sentinels(raw):
    values, bad = parsing.parse_date(series(raw), day_first=False)
    assert values.iloc[0] is None
    assert bad.iloc[0]


def test_parse_date_blank_is_not_bad():
    values, bad = parsing.parse_date(series(""), day_first=False)
    assert values.iloc[0] is None and not bad.iloc[0]


def test_parse_int():
    values, bad = parsing.parse_int(series("10", "10.0", "x", "", "3.5"))
    assert values.iloc[0] == "10" and values.iloc[1] == "10"
    assert list(bad) == [False, False, True, False, True]


def test_parse_currency_defaults_and_symbols():
    values, bad = parsing.parse_currency(series("usd", "", "$", "EURO", " gbp "), default="EUR")
    assert list(values) == ["USD", "EUR", "USD", "EUR", "GBP"]
    assert list(bad) == [False, False, False, True, False]


def test_divide_is_exact_decimal():
    result = parsing.divide(series("10", "1"), series("3", "0"))
    assert result.iloc[0] == "3.333333"
    assert result.iloc[1] is None


def test_normalize_key_folds_case_and_space():
    assert list(parsing.normalize_key(series("  ACME   Ltd ", "acme ltd"))) == ["acme ltd", "acme ltd"]


def test_every_pattern_handed_to_pandas_runs_on_arrow_not_pythons_re():
    # pandas falls back to Python's re, cell by cell, for \s, \d on non-ASCII text and `$`.
    arrow_text = pd.array(["plain", "non-ASCII é"], dtype="str")
    assert [p for p in parsing.ARROW_PATTERNS if arrow_text._needs_python_regex(p)] == []
