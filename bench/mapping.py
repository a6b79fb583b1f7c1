"""`bench/run.py --mapping`: what the mapping step costs on a large file (issue 10).

For the `erp` shape at each of `--sizes` (`--sizes 1000000` for the README figures) and a copy of it whose
headers Intake does not know (every header prefixed, so it must ask), `--runs` times:
  * in-process, no worker: open the file (`open_ms`: the reader's work, which every load
    does, mapped or not), then read its first rows (the sample), suggest a field for every
    column and build the stored plan (`plan_ms_*`: the mapping step's own); the mapping form's
    preview of the first 20 rows under the right choice (`preview_ms`, the fragment's work
    without HTTP, median of 5 in a row);
  * through a real worker: the unknown-headers copy uploaded, time from the upload's
    creation to its `needs_mapping` state (`to_needs_mapping_s`, and from the run's start:
    `run_to_needs_mapping_s`); the known-headers file uploaded, time from its creation to
    the first batch's progress (`to_first_batch_s`), after which it is cancelled.
Medians of the runs are reported; every run is kept in bench/mapping_results.json."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

PREFIX = "Export "


def unknown_copy(path: Path) -> Path:
    """The file with every header prefixed ('Export Vendor Name'): no synonym matches it
    with certainty, so the upload stops for its owner."""
    target = path.with_name(path.stem + "_unknown_headers.csv")
    if target.exists():
        return target
    with path.open("rb") as source, target.open("wb") as out:
        header = source.readline().decode("utf-8").rstrip("\r\n").split(",")
        out.write((",".join(PREFIX + h for h in header) + "\n").encode("utf-8"))
        while chunk := source.read(1 << 22):
            out.write(chunk)
    return target


def plan_in_process(path: Path) -> tuple[float, float, dict]:
    """Milliseconds to open the file (the reader's work, done for every load, mapped or
    not), then to read the sample and make the plan (the mapping step's own work, before
    the worker decides), and the plan."""
    from django.conf import settings

    from ingestion.mapping_step import plan_json, read_sample
    from ingestion.reading import open_table
    from ingestion.suggestions import suggest

    started = time.perf_counter()
    table = open_table(path, name=path.name, batch_rows=settings.INGEST_BATCH_ROWS)
    opened = time.perf_counter()
    sample = read_sample(table)
    plan = suggest(table.headers, sample)
    stored = plan_json(plan, sample, profile=None)
    done = time.perf_counter()
    return (opened - started) * 1000, (done - opened) * 1000, stored


def preview_ms(plan: dict, mapping: dict[str, str], *, times: int = 5) -> tuple[float, int]:
    """The median of `times` previews: a form asks again at every change, in a warm server."""
    from ingestion.previews import preview

    spent = []
    for _ in range(times):
        started = time.perf_counter()
        shown = preview(plan=plan, mapping=mapping, day_first=False, decimal_comma=False, currency="", constants={})
        spent.append((time.perf_counter() - started) * 1000)
    return statistics.median(spent), len(shown.rows)


def run(*, user, env: dict, sizes: list[int], runs: int, seed: int, rebuild: bool, timeout: float, logs: Path) -> dict:
    from bench.run import Worker, discard_file, empty_tables, log, shape_file, wait_until, warm_up
    from bench.shapes import SHAPES
    from ingestion import services
    from ingestion.models import Upload

    shape = SHAPES["erp"]
    results: dict = {"files": []}
    worker = Worker(env, logs / "mapping-worker.log")
    worker.start()
    try:
        warm_up(user, timeout=timeout)
        for rows in sizes:
            path, _, _ = shape_file(shape, rows, seed=seed, rebuild=rebuild)
            unknown = unknown_copy(path)
            right = {PREFIX + header: field or "" for header, field in shape.columns}
            figures: list[dict] = []
            for i in range(runs):
                empty_tables()
                open_ms, known_ms, known_plan = plan_in_process(path)
                _, unknown_ms, unknown_plan = plan_in_process(unknown)
                shown_ms, shown = preview_ms(unknown_plan, right)

                asked = services.create_upload_from_path(owner=user, path=unknown)
                asked = wait_until(asked, lambda u: u.status == Upload.Status.NEEDS_MAPPING, timeout=timeout)
                services.cancel_upload(upload=asked, by=user)  # dropped: nothing written
                discard_file(asked)

                loading = services.create_upload_from_path(owner=user, path=path)
                loading = wait_until(loading, lambda u: u.processed_rows > 0 or u.is_finished, timeout=timeout)
                first_batch = time.time()
                services.cancel_upload(upload=loading, by=user)
                wait_until(loading, lambda u: u.is_finished, timeout=timeout, poll=0.05)
                discard_file(loading)
                figure = {
                    "open_ms": round(open_ms, 1),
                    "plan_ms_known_headers": round(known_ms, 1),
                    "plan_ms_unknown_headers": round(unknown_ms, 1),
                    "known_headers_ready": not known_plan["missing"] and not known_plan["ambiguous"],
                    "unknown_headers_missing": unknown_plan["missing"],
                    "preview_ms": round(shown_ms, 1),
                    "preview_rows": shown,
                    "to_needs_mapping_s": round((asked.finished_at - asked.created_at).total_seconds(), 3),
                    "run_to_needs_mapping_s": round((asked.finished_at - asked.started_at).total_seconds(), 3),
                    "to_first_batch_s": round(first_batch - loading.created_at.timestamp(), 3),
                    "batch_rows": loading.processed_rows,
                }
                figures.append(figure)
                log(
                    f"mapping, {rows:,} rows, run {i + 1}: open {open_ms:.0f} ms, plan {known_ms:.0f} ms (known) / {unknown_ms:.0f} ms "
                    f"(unknown), preview {shown_ms:.0f} ms, upload -> needs_mapping {figure['to_needs_mapping_s']} s, "
                    f"upload -> first batch {figure['to_first_batch_s']} s"
                )
            summary: dict = {"rows": rows, "file_mb": round(path.stat().st_size / 1_048_576, 1), "runs": figures}
            for key in (
                "open_ms",
                "plan_ms_known_headers",
                "plan_ms_unknown_headers",
                "preview_ms",
                "to_needs_mapping_s",
                "run_to_needs_mapping_s",
                "to_first_batch_s",
            ):
                summary[key] = statistics.median(f[key] for f in figures)
            summary["as_expected"] = all(
                f["known_headers_ready"] and f["unknown_headers_missing"] and f["preview_rows"] == 20 for f in figures
            )
            results["files"].append(summary)
    finally:
        worker.stop()
    return results


def report(results: dict) -> str:
    lines = [
        "| rows | open the file | sample + plan, known headers | sample + plan, unknown headers | preview (20 rows) "
        "| upload -> needs_mapping (run start ->) | upload -> first batch |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in results["files"]:
        lines.append(
            f"| {f['rows']:,} | {f['open_ms']:.0f} ms | {f['plan_ms_known_headers']:.0f} ms | {f['plan_ms_unknown_headers']:.0f} ms | "
            f"{f['preview_ms']:.0f} ms | {f['to_needs_mapping_s']:.2f} s ({f['run_to_needs_mapping_s']:.2f} s) | "
            f"{f['to_first_batch_s']:.2f} s |"
        )
    return "\n".join(lines)
