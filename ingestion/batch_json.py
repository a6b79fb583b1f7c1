"""A batch of resolved lines as ONE JSON parameter, built by pandas in C: psycopg would dump
a list parameter element by element in Python, holding the GIL the pipeline needs. Amounts
stay decimal strings; PostgreSQL casts them exactly. The line writers and the review's diff
read the same array: [purchase order id, line number, material id, quantity, unit price,
total price, currency] and, `dated`, [order date, source row]."""

from __future__ import annotations

import pandas as pd


def lines_json(lines: pd.DataFrame, *, dated: bool = False) -> str:
    columns = {
        "p": lines["purchase_order_id"].astype("int64"),
        "l": lines["line_number"].astype("int64"),
        "m": lines["material_id"].astype("int64"),
        "q": lines["quantity"],
        "u": lines["unit_price"],
        "t": lines["total_price"],
        "c": lines["currency"],
    }
    if dated:
        columns["d"] = lines["order_date"]  # 'YYYY-MM-DD' text or None (`parsing.parse_date`)
        columns["r"] = lines["source_row"].astype("int64")
    return pd.DataFrame(columns).to_json(orient="values", force_ascii=False)
