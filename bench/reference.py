"""The set-based reference `make bench` measures every file against: what PostgreSQL alone
does with the same file, in SQL, with no application in between.

In schema `bench_ref`, tables made `LIKE` the project's supplier, material, purchase-order
and line tables (their columns, types, unique keys and indexes), with the same foreign
keys (deferrable, checked at the commit, as Django declares them). Per file, timed from the
first byte to the commit, in one transaction:

1. `COPY` the file into an unlogged staging table of text columns (the row order kept);
2. `INSERT ... SELECT DISTINCT ON (key) ... ON CONFLICT DO NOTHING` into suppliers, then
   materials (each by its code, else its normalized name, as the project keys them), then
   purchase orders (the first line's supplier, date and currency);
3. `INSERT ... SELECT` of the lines joined to their ids, amounts cast to numeric (thousands
   separators dropped), dates cast (`9/11/2014` read month first), line numbers from the
   column or by order of appearance within the PO, `ON CONFLICT (purchase_order_id,
   line_number) DO UPDATE ... WHERE ... IS DISTINCT FROM ...` as the project writes them.

It checks nothing a row could get wrong and reports no row issues: an upper bound for a
pipeline that must."""

from __future__ import annotations

import time
from pathlib import Path

SCHEMA = "bench_ref"
TABLES = {  # ours -> the project's
    "supplier": "ingestion_supplier",
    "material": "ingestion_material",
    "purchase_order": "ingestion_purchaseorder",
    "line": "ingestion_purchaseorderline",
}


def prepare(conn) -> None:
    """(Re)create the reference tables, empty, beside the project's."""
    conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    conn.execute(f"CREATE SCHEMA {SCHEMA}")
    for ours, theirs in TABLES.items():
        conn.execute(f"CREATE TABLE {SCHEMA}.{ours} (LIKE public.{theirs} INCLUDING ALL)")
    deferred = "DEFERRABLE INITIALLY DEFERRED"
    conn.execute(
        f"ALTER TABLE {SCHEMA}.purchase_order ADD FOREIGN KEY (supplier_id) REFERENCES {SCHEMA}.supplier (id) {deferred}"
    )
    conn.execute(
        f"ALTER TABLE {SCHEMA}.line ADD FOREIGN KEY (purchase_order_id) REFERENCES {SCHEMA}.purchase_order (id) {deferred}"
    )
    conn.execute(
        f"ALTER TABLE {SCHEMA}.line ADD FOREIGN KEY (material_id) REFERENCES {SCHEMA}.material (id) {deferred}"
    )
    conn.commit()


def _norm(expression: str) -> str:
    return f"lower(regexp_replace(btrim({expression}), '\\s+', ' ', 'g'))"


def merge_statements(roles: list[str | None]) -> list[str]:
    """The set-based merge of the staging table `s` (columns c0.., row order `ord`)."""

    def col(field: str) -> str:
        return f"c{roles.index(field)}" if field in roles else "NULL::text"

    def text(field: str) -> str:
        return f"coalesce(btrim({col(field)}), '')"

    supplier_key = (
        f"coalesce(nullif({text('supplier_code')}, ''), '~' || {_norm(text('supplier_name'))})"
        if "supplier_code" in roles
        else f"'~' || {_norm(text('supplier_name'))}"
    )
    by_name = f"'~' || {_norm(text('material_description'))} || '|' || {_norm(text('unit_of_measure'))}"
    material_key = f"coalesce(nullif({text('material_code')}, ''), {by_name})" if "material_code" in roles else by_name
    date = col("order_date")
    order_date = f"CASE WHEN {date} LIKE '%/%' THEN to_date({date}, 'MM/DD/YYYY') ELSE nullif({date}, '')::date END"

    def money(field: str) -> str:
        return f"nullif(replace({col(field)}, ',', ''), '')::numeric"

    line_number = (
        f"{col('line_number')}::int"
        if "line_number" in roles
        else f"row_number() OVER (PARTITION BY {text('po_number')} ORDER BY ord)"
    )
    currency = f"coalesce(nullif({text('currency')}, ''), 'USD')"
    staged = f"{SCHEMA}.staging"
    value_columns = ("material_id", "quantity", "unit_price", "total_price", "currency")
    changed = " OR ".join(f"l.{c} IS DISTINCT FROM excluded.{c}" for c in value_columns)
    return [
        f"INSERT INTO {SCHEMA}.supplier AS t (key, code, name, created_at) "
        f"SELECT DISTINCT ON (key) key, code, name, now() FROM ("
        f"SELECT {supplier_key} AS key, {text('supplier_code')} AS code, {text('supplier_name')} AS name "
        f"FROM {staged}) x ORDER BY key ON CONFLICT (key) DO NOTHING",
        f"INSERT INTO {SCHEMA}.material (key, code, description, category, unit_of_measure, created_at) "
        f"SELECT DISTINCT ON (key) key, code, description, '', uom, now() FROM ("
        f"SELECT {material_key} AS key, {text('material_code')} AS code, "
        f"{text('material_description')} AS description, {text('unit_of_measure')} AS uom "
        f"FROM {staged}) x ORDER BY key ON CONFLICT (key) DO NOTHING",
        f"INSERT INTO {SCHEMA}.purchase_order (po_number, supplier_id, order_date, currency, created_at) "
        f"SELECT DISTINCT ON (x.po) x.po, sup.id, x.order_date, x.currency, now() FROM ("
        f"SELECT {text('po_number')} AS po, {supplier_key} AS skey, {order_date} AS order_date, "
        f"{currency} AS currency, ord FROM {staged}) x JOIN {SCHEMA}.supplier sup ON sup.key = x.skey "
        f"ORDER BY x.po, x.ord ON CONFLICT (po_number) DO NOTHING",
        f"INSERT INTO {SCHEMA}.line AS l (purchase_order_id, line_number, material_id, quantity, unit_price, "
        f"total_price, currency, upload_id, created_at, updated_at) "
        f"SELECT po.id, x.line_number, m.id, x.quantity, x.unit_price, x.total_price, x.currency, NULL, now(), now() "
        f"FROM (SELECT {text('po_number')} AS po, {material_key} AS mkey, {line_number} AS line_number, "
        f"{money('quantity')} AS quantity, {money('unit_price')} AS unit_price, {money('total_price')} AS total_price, "
        f"{currency} AS currency FROM {staged}) x "
        f"JOIN {SCHEMA}.purchase_order po ON po.po_number = x.po JOIN {SCHEMA}.material m ON m.key = x.mkey "
        f"ON CONFLICT (purchase_order_id, line_number) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in (*value_columns, "updated_at"))
        + f" WHERE {changed}",
    ]


def measure(database_url: str, path: Path, *, roles: list[str | None], rows: int) -> dict:
    """COPY + set-based merge of a CSV file into empty reference tables. Rows/s, and the
    counts it made (which must equal the generator's)."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        prepare(conn)
        columns = ", ".join(f"c{i} text" for i in range(len(roles)))
        conn.execute(f"CREATE UNLOGGED TABLE {SCHEMA}.staging (ord bigint GENERATED ALWAYS AS IDENTITY, {columns})")
        conn.commit()
        # Everything of the previous load is gone; checkpoint so its writes do not land here.
        conn.execute("CHECKPOINT")
        conn.commit()
        names = ", ".join(f"c{i}" for i in range(len(roles)))
        started = time.perf_counter()
        with conn.cursor() as cursor:
            with (
                path.open("rb") as handle,
                cursor.copy(f"COPY {SCHEMA}.staging ({names}) FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
            ):
                while data := handle.read(1 << 20):
                    copy.write(data)
            copied = time.perf_counter()
            cursor.execute(f"ANALYZE {SCHEMA}.staging")
            for statement in merge_statements(roles):
                cursor.execute(statement)
        conn.commit()
        elapsed = time.perf_counter() - started
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {SCHEMA}.{table}").fetchone()[0]
            for table in ("supplier", "material", "purchase_order", "line")
        }
        conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
        conn.commit()
    return {
        "reference_seconds": elapsed,
        "reference_copy_seconds": copied - started,
        "reference_rows_per_s": rows / elapsed,
        "reference_counts": counts,
    }
