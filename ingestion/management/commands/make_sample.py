"""`python manage.py make_sample --rows N --out FILE.csv|FILE.xlsx [--seed S] [--messy]`"""

from __future__ import annotations

import json as jsonlib
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ingestion.sample import write_sample


class Command(BaseCommand):
    help = (
        "Write a deterministic, realistic file of purchase-order lines (CSV or .xlsx), streaming. "
        "--messy adds currency symbols, mixed dates, blanks, stray spaces and about 1% invalid rows; "
        "the counts the pipeline should report are printed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, required=True, help="number of data rows (header not counted)")
        parser.add_argument("--out", required=True, help="output file, .csv or .xlsx")
        parser.add_argument("--seed", type=int, default=0, help="same seed, same file (default 0)")
        parser.add_argument("--messy", action="store_true", help="real-world mess and ~1%% invalid rows")
        parser.add_argument("--json", dest="as_json", action="store_true", help="print the expected counts as JSON")

    def handle(self, *args, rows: int, out: str, seed: int, messy: bool, as_json: bool = False, **options):
        if rows < 0:
            raise CommandError("--rows must be zero or more.")
        path = Path(out)
        if path.suffix.lower() not in (".csv", ".xlsx"):
            raise CommandError(f"{out}: the output must end in .csv or .xlsx.")
        if not path.parent.exists():
            raise CommandError(f"{path.parent}: no such directory.")
        started = time.monotonic()
        stats = write_sample(path, rows=rows, seed=seed, messy=messy)
        elapsed = time.monotonic() - started
        if as_json:
            self.stdout.write(_json({"file": str(path), "seed": seed, "messy": messy, **stats.as_dict()}))
            return
        self.stdout.write(
            f"Wrote {path} ({path.stat().st_size / 1_048_576:.1f} MB, {rows:,} rows, seed {seed}"
            f"{', messy' if messy else ''}) in {elapsed:.1f} s."
        )
        self.stdout.write(
            f"Expected: {stats.valid_rows:,} valid rows, {stats.invalid_rows:,} invalid, {stats.warnings:,} warnings; "
            f"{stats.suppliers:,} suppliers, {stats.materials:,} materials, {stats.purchase_orders:,} purchase orders, "
            f"{stats.lines:,} lines."
        )
        if stats.invalid_by_kind:
            self.stdout.write("Invalid rows: " + ", ".join(f"{k} {v}" for k, v in stats.invalid_by_kind.items()))
        if stats.warnings_by_kind:
            self.stdout.write("Warnings: " + ", ".join(f"{k} {v}" for k, v in stats.warnings_by_kind.items()))


def _json(value) -> str:
    return jsonlib.dumps(value, sort_keys=True)
