"""`bench/run.py --history`: what keeping line history costs (issue 9).

A file of the `clean` shape (300k rows by default, `--sizes`) and a copy of it in which one
row in ten has a new unit price (+1.00, its total +quantity) are loaded in turn, on an
empty database, by a worker with history on (INGEST_LINE_HISTORY=1) and one with it off,
`--runs` times, alternating. For each: the first load's rows/s, the reload's rows/s (the
reload writes 10% of the lines: updated lines and, for each, the state it replaced and the
new one as versions), and the versions written (none by a first load: a line written once
is its own version). The cost is 1 - (median with history / median without), for each load.

The review path, with history on, beside them: on an empty database again, the first load,
then the changed copy under `review`: the time until it stops awaiting review (the whole
file read, validated and diffed, nothing written), the time `apply_review` takes to decide
every change (take all), and the time from Load to completed."""

from __future__ import annotations

import statistics
import time
from pathlib import Path


def changed_copy(path: Path, *, every: int = 10) -> tuple[Path, int]:
    """The file with the unit price of every `every`-th row raised by 1.00 (and its total
    by the quantity, so the row stays consistent). Returns the copy and the rows changed."""
    import pandas as pd

    from bench.shapes import SHAPES

    target = path.with_name(path.stem + f"_changed{every}.csv")
    headers = {field: header for header, field in SHAPES["clean"].columns if field}
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    rows = frame.index[::every]
    price = pd.to_numeric(frame.loc[rows, headers["unit_price"]])
    frame.loc[rows, headers["unit_price"]] = (price + 1).map("{:.2f}".format)
    if "total_price" in headers:
        quantity = pd.to_numeric(frame.loc[rows, headers["quantity"]])
        total = pd.to_numeric(frame.loc[rows, headers["total_price"]])
        frame.loc[rows, headers["total_price"]] = (total + quantity).map("{:.2f}".format)
    if not target.exists():
        frame.to_csv(target, index=False)
    return target, len(rows)


def timed_load(user, path: Path, *, timeout: float, on_existing: str = "update") -> dict:
    from bench.run import discard_file, wait_for_figures, wait_until
    from ingestion import services
    from ingestion.models import LineVersion

    versions_before = LineVersion.objects.count()
    upload = services.create_upload_from_path(owner=user, path=path, on_existing=on_existing)
    upload = wait_until(upload, lambda u: u.is_finished, timeout=timeout, poll=0.05)
    seconds = (upload.finished_at - upload.created_at).total_seconds()
    # The analytics refresh the load queued runs on the same worker after it: the next load
    # must not wait behind it (it did, and the reloads measured the refresh too).
    wait_for_figures(upload, timeout=timeout)
    if upload.status != "awaiting_review":
        discard_file(upload)
    return {
        "status": upload.status,
        "seconds": seconds,
        "rows_per_s": upload.processed_rows / seconds,
        "created_lines": upload.created_lines,
        "updated_lines": upload.updated_lines,
        "versions_written": LineVersion.objects.count() - versions_before,
        "upload": upload,
    }


def timed_review(user, path: Path, changed_path: Path, *, timeout: float) -> dict:
    """First load, then the changed copy under `review`: to the review, apply all, Load."""
    from bench.run import discard_file, empty_tables, wait_until
    from ingestion import services

    empty_tables()
    timed_load(user, path, timeout=timeout)
    time.sleep(1)
    stopped = timed_load(user, changed_path, timeout=timeout, on_existing="review")
    upload = stopped.pop("upload")
    assert upload.status == "awaiting_review", upload.error_message
    started = time.perf_counter()
    counts = services.apply_review(upload=upload, by=user, decision="all")
    apply_seconds = time.perf_counter() - started
    started = time.perf_counter()
    services.load_reviewed(upload=upload, by=user)
    upload = wait_until(upload, lambda u: u.is_finished, timeout=timeout, poll=0.05)
    load_seconds = time.perf_counter() - started
    discard_file(upload)
    return {
        "status": upload.status,
        "to_review_seconds": stopped["seconds"],
        "to_review_rows_per_s": stopped["rows_per_s"],
        "changed": counts["changed"],
        "apply_seconds": apply_seconds,
        "load_after_review_seconds": load_seconds,
        "updated_lines": upload.updated_lines,
    }


def run(*, user, env: dict, sizes: list[int], runs: int, seed: int, rebuild: bool, timeout: float, logs: Path) -> dict:
    from bench.run import Worker, empty_tables, log, shape_file, warm_up
    from bench.shapes import SHAPES

    results: dict = {"files": []}
    for rows in sizes:
        path, _, expected = shape_file(SHAPES["clean"], rows, seed=seed, rebuild=rebuild)
        changed, changed_rows = changed_copy(path)
        figures: dict[str, list[dict]] = {"on": [], "off": []}
        reviews: list[dict] = []
        for i in range(runs):
            for mode in ("on", "off") if i % 2 == 0 else ("off", "on"):
                worker = Worker(
                    {**env, "INGEST_LINE_HISTORY": "1" if mode == "on" else "0"}, logs / f"history-{mode}.log"
                )
                worker.start()
                try:
                    warm_up(user, timeout=timeout)
                    empty_tables()
                    first = timed_load(user, path, timeout=timeout)
                    time.sleep(1)
                    reload = timed_load(user, changed, timeout=timeout)
                    first.pop("upload"), reload.pop("upload")
                    if mode == "on":
                        review_path = timed_review(user, path, changed, timeout=timeout)
                        reviews.append(review_path)
                        log(
                            f"review, {rows:,} rows, run {i + 1}: to the review {review_path['to_review_seconds']:.1f} s, "
                            f"apply {review_path['apply_seconds']:.2f} s, load {review_path['load_after_review_seconds']:.1f} s"
                        )
                finally:
                    worker.stop()
                figures[mode].append({"first": first, "reload": reload})
                log(
                    f"history {mode}, {rows:,} rows, run {i + 1}: first load {first['rows_per_s']:,.0f} rows/s "
                    f"({first['versions_written']:,} versions), reload with {changed_rows:,} changed "
                    f"{reload['rows_per_s']:,.0f} rows/s ({reload['updated_lines']:,} updated, "
                    f"{reload['versions_written']:,} versions)"
                )

        summary = {
            "rows": rows,
            "changed_rows": changed_rows,
            "expected_lines": expected["lines"],
            "runs": figures,
            "review_runs": reviews,
        }
        for load in ("first", "reload"):
            on, off = (statistics.median(f[load]["rows_per_s"] for f in figures[mode]) for mode in ("on", "off"))
            summary[f"{load}_rows_per_s_history"] = round(on)
            summary[f"{load}_rows_per_s_no_history"] = round(off)
            summary[f"{load}_history_cost_percent"] = round((1 - on / off) * 100, 1)
        for key in ("to_review_seconds", "apply_seconds", "load_after_review_seconds"):
            summary[f"review_{key}"] = round(statistics.median(r[key] for r in reviews), 2)
        summary["reload_seconds_history"] = round(statistics.median(f["reload"]["seconds"] for f in figures["on"]), 2)
        summary["reload_counts_as_expected"] = all(
            f["reload"]["updated_lines"] == changed_rows
            # With history, each changed line's first change: the state it replaced, and its new one.
            and f["reload"]["versions_written"] == (2 * changed_rows if mode == "on" else 0)
            and f["first"]["versions_written"] == 0
            for mode in ("on", "off")
            for f in figures[mode]
        ) and all(r["updated_lines"] == r["changed"] == changed_rows for r in reviews)
        results["files"].append(summary)
    return results


def report(results: dict) -> str:
    lines = [
        "| rows | changed | first load rows/s (history / none / cost) | reload rows/s (history / none / cost) |",
        "|---:|---:|---:|---:|",
    ]
    review = [
        "",
        "| rows | reload under update (s) | under review: to the review (s) | apply all (s) | Load to completed (s) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for f in results["files"]:
        lines.append(
            f"| {f['rows']:,} | {f['changed_rows']:,} | {f['first_rows_per_s_history']:,} / "
            f"{f['first_rows_per_s_no_history']:,} / {f['first_history_cost_percent']}% | "
            f"{f['reload_rows_per_s_history']:,} / {f['reload_rows_per_s_no_history']:,} / "
            f"{f['reload_history_cost_percent']}% |"
        )
        review.append(
            f"| {f['rows']:,} | {f['reload_seconds_history']} | {f['review_to_review_seconds']} | "
            f"{f['review_apply_seconds']} | {f['review_load_after_review_seconds']} |"
        )
    return "\n".join(lines + review)
