"""Small purchase-order files made on the spot for tests."""

from __future__ import annotations

import csv
from pathlib import Path

HEADER = [
    "Supplier Code",
    "Supplier Name",
    "Material Number",
    "Item Description",
    "UOM",
    "PO Number",
    "PO Date",
    "Qty",
    "Unit Price",
    "Total Price",
    "Currency",
]


def order_rows(rows: int, *, price_factor: int = 1, suppliers: int = 20, materials: int = 50, prefix: str = "PO"):
    for i in range(rows):
        quantity = i % 7 + 1
        price = (i % 13 + 1) * price_factor
        yield [
            f"S{i % suppliers:04d}",
            f"Supplier {i % suppliers}",
            f"M{i % materials:05d}",
            f"Material {i % materials}",
            "EA",
            f"{prefix}-{i // 10:06d}",
            "2024-03-15",
            str(quantity),
            f"{price}.25",
            f"{quantity * price + quantity * 0.25:.2f}",
            "USD",
        ]


def write_orders(path: Path, rows: int, **options) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(order_rows(rows, **options))
    return path
