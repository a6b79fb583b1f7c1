"""Percentiles per group. PostgreSQL computes them itself (`percentile_cont`, linear
interpolation between the two nearest values); SQLite has no such aggregate, so there the
group's values are read in order and interpolated the same way in Python."""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal

from django.db import connection
from django.db.models import Aggregate, FloatField, QuerySet


class Percentile(Aggregate):
    """PostgreSQL's `percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)`."""

    function = "PERCENTILE_CONT"
    name = "Percentile"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression, *, fraction: float, **extra) -> None:
        if not 0 <= fraction <= 1:
            raise ValueError("fraction must lie between 0 and 1")
        super().__init__(expression, fraction=repr(float(fraction)), output_field=FloatField(), **extra)


def on_postgresql() -> bool:
    return connection.vendor == "postgresql"


def interpolate(ordered: Sequence[float], fraction: float) -> float:
    """percentile_cont over values already sorted ascending."""
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def group_percentiles(
    lines: QuerySet, *, group: Sequence[str], field: str, fractions: Sequence[float]
) -> dict[tuple, list[float]]:
    """{group values: [percentile for each fraction]} over the lines' `field`."""
    if on_postgresql():
        names = {f"p{i}": Percentile(field, fraction=f) for i, f in enumerate(fractions)}
        rows = lines.order_by().values(*group).annotate(**names)
        return {tuple(row[g] for g in group): [row[f"p{i}"] for i in range(len(fractions))] for row in rows}
    result: dict[tuple, list[float]] = {}
    key: tuple | None = None
    values: list[float] = []

    def close() -> None:
        if key is not None and values:
            result[key] = [interpolate(values, f) for f in fractions]

    for row in lines.order_by(*group, field).values_list(*group, field).iterator(chunk_size=5000):
        row_key = tuple(row[:-1])
        if row_key != key:
            close()
            key, values = row_key, []
        values.append(float(row[-1]))
    close()
    return result


def as_decimal(value: float | Decimal | None, places: str = "0.000001") -> Decimal | None:
    if value is None:
        return None
    return Decimal(str(value)).quantize(Decimal(places))
