"""What the line writer's statement costs PostgreSQL, apart from everything else a load does.

The line writer sets the pace of a load (README, "Where the speed stands"), and the load's
other threads share the machine's CPUs with it, so a load's time says little about one
change to the statement. This loads a file once in process (a bench shape, 300k rows by
default), keeps the parameters of every batch the writer was handed, and then replays those
statements alone, `--runs` times, against the same suppliers, materials and orders with the
lines and versions emptied before each run: one transaction, the writer's settings, timed by
the wall clock and by the backend's own CPU time (/proc, so the database must be local).
Set `INGEST_LINE_HISTORY=0` to replay the statement without versions.

    .venv/bin/python bench/writer_replay.py [--shape erp] [--rows 300000] [--runs 5] [--explain N]

`--explain N` prints EXPLAIN (ANALYZE, BUFFERS) of batch N's statement instead, run after
the batches before it and rolled back: where a statement's time goes, node by node.

Its own database (`REPLAY_DATABASE_URL`, default intake_replay on 127.0.0.1, created and
migrated if missing: its tables are emptied) and Redis db (`REPLAY_REDIS_URL`, default 10)."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/intake_replay"


def backend_cpu_seconds(pid: int) -> float:
    """utime + stime of a local PostgreSQL backend."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def capture(path: Path) -> tuple[str, int | None, list[str]]:
    """Load `path` in process on empty tables; (upload id, its owner's id, the JSON of each
    batch the line writer was handed)."""
    from bench.run import bench_user, empty_tables
    from ingestion import line_writers, runner, services

    handed: list[str] = []
    build = line_writers.batch_json.lines_json

    def keep(lines, **options):
        text = build(lines, **options)
        handed.append(text)
        return text

    empty_tables()
    user = bench_user()
    with mock.patch.object(services, "enqueue_upload"):
        upload = services.create_upload_from_path(owner=user, path=path)
    with mock.patch.object(line_writers.batch_json, "lines_json", keep):
        result = runner.run_upload(upload_id=upload.pk)
    if result["status"] != "completed":
        raise SystemExit(f"the load ended {result['status']}: {result}")
    return str(upload.pk), user.pk, handed


@contextmanager
def writer_session(url: str, upload_id: str, user_id: int | None, batches: list[str]):
    """Lines and versions emptied, then a connection in the writer's transaction with its
    settings; yields (connection, statement, each batch's full parameters)."""
    import psycopg
    from django.utils import timezone

    from ingestion import line_writers
    from ingestion.models import LineVersion, PurchaseOrderLine

    now = timezone.now()
    sql, tail = line_writers.batch_statement(upload_id=upload_id, policy="update", now=now, user_id=user_id)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {PurchaseOrderLine._meta.db_table}, {LineVersion._meta.db_table} CASCADE")
        conn.execute("CHECKPOINT")
    with psycopg.connect(url) as conn:
        for setting in (
            "SET CONSTRAINTS ALL IMMEDIATE",
            "SET LOCAL synchronous_commit TO OFF",
            "SET LOCAL enable_seqscan TO OFF",
        ):
            conn.execute(setting)
        yield (
            conn,
            sql,
            [
                [*line_writers.batch_parameters(upload_id=upload_id, now=now, lines_json=batch), *tail]
                for batch in batches
            ],
        )


def replay(url: str, upload_id: str, user_id: int | None, batches: list[str]) -> tuple[float, float]:
    """The batches through the writer's own statement, in one transaction, on emptied lines
    and versions. Returns (wall seconds, backend CPU seconds)."""
    with writer_session(url, upload_id, user_id, batches) as (conn, sql, params):
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        cpu = backend_cpu_seconds(pid)
        started = time.perf_counter()
        for batch in params:
            conn.execute(sql, batch)
        conn.commit()
        return time.perf_counter() - started, backend_cpu_seconds(pid) - cpu


def explain(url: str, upload_id: str, user_id: int | None, batches: list[str], index: int) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of batch `index`'s statement, after the batches before it,
    on emptied lines and versions, in the writer's transaction, rolled back."""
    with writer_session(url, upload_id, user_id, batches) as (conn, sql, params):
        for batch in params[:index]:
            conn.execute(sql, batch)
        plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params[index]).fetchall()
        conn.rollback()
    return "\n".join(row[0] for row in plan)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="erp")
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--explain",
        type=int,
        metavar="N",
        help="print the plan of batch N (0-based) after the ones before it, then stop",
    )
    args = parser.parse_args(argv)

    url = os.environ.get("REPLAY_DATABASE_URL", DEFAULT_URL)
    sys.path.insert(0, str(ROOT))
    from bench.run import ensure_database, setup_django, shape_file

    ensure_database(url)
    setup_django(
        {
            "DATABASE_URL": url,
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "replay-" + "x" * 50),
            "CELERY_BROKER_URL": "memory://",
            "UPLOAD_MAX_BYTES": str(512 * 1024 * 1024),
            "REDIS_URL": os.environ.get("REPLAY_REDIS_URL", "redis://127.0.0.1:6379/10"),
        }
    )
    from bench.shapes import SHAPES

    path, _, _ = shape_file(SHAPES[args.shape], args.rows, seed=args.seed, rebuild=False)
    upload_id, user_id, batches = capture(path)
    lines = sum(len(json.loads(batch)) for batch in batches)
    print(f"{path.name}: {len(batches)} batches, {lines:,} lines; history {os.environ.get('INGEST_LINE_HISTORY', '1')}")
    if args.explain is not None:
        print(explain(url, upload_id, user_id, batches, args.explain))
        return 0
    cpu_per_line = []
    for run in range(args.runs):
        wall, cpu = replay(url, upload_id, user_id, batches)
        cpu_per_line.append(cpu / lines * 1e6)
        print(f"run {run + 1}: {wall:.2f} s, backend CPU {cpu:.2f} s, {cpu_per_line[-1]:.1f} µs per line")
    print(
        f"backend CPU per line: median {statistics.median(cpu_per_line):.1f} µs "
        f"({min(cpu_per_line):.1f}-{max(cpu_per_line):.1f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
