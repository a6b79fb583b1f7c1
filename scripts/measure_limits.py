"""Measures what the request and websocket limits cost and save, against a real daphne on
the database and Redis of the environment (DATABASE_URL, REDIS_URL; migrated):

- the snapshot a socket gets on connect when its user has 1,000 unfinished uploads;
- a sync of 100 upload ids, when nothing changed and when all changed;
- an anonymous 300 MB POST to /accounts/login/: the answer, and daphne's memory.

    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python scripts/measure_limits.py
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import django
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.test import Client  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from ingestion.models import Upload  # noqa: E402
from scripts.processes import Daphne  # noqa: E402

MB = 1024 * 1024
REPEAT = 5


def main() -> None:
    user, _ = get_user_model().objects.get_or_create(username="limits-probe")
    Upload.objects.filter(owner=user).delete()
    now = time.time_ns() // 1000
    Upload.objects.bulk_create(
        Upload(owner=user, original_name=f"f{i}.csv", file=f"uploads/f{i}.csv", size=1, seq=now + i)
        for i in range(1000)
    )
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    server = Daphne(dict(os.environ, DJANGO_ALLOWED_HOSTS="127.0.0.1"), Path(tempfile.mkdtemp()) / "daphne.log")
    server.start()
    try:
        url, origin = f"ws://127.0.0.1:{server.port}/ws/uploads/", f"http://127.0.0.1:{server.port}"
        headers = {"Cookie": cookie}
        timings, snapshot = [], ""
        for _ in range(REPEAT):  # the first connect also warms daphne up: the median says more
            started = time.perf_counter()
            with connect(url, origin=origin, additional_headers=headers, max_size=None) as ws:
                snapshot = ws.recv(timeout=30)
                timings.append((time.perf_counter() - started) * 1000)
        cards = snapshot.count('class="upload-card')
        print(
            f"connect + snapshot, 1,000 unfinished uploads: median {statistics.median(timings):.0f} ms of {REPEAT}, "
            f"{len(snapshot.encode()):,} bytes, {cards} cards"
        )
        ids = [str(pk) for pk in Upload.objects.filter(owner=user).values_list("pk", flat=True)[:100]]
        with connect(url, origin=origin, additional_headers=headers, max_size=None) as ws:
            ws.recv(timeout=30)
            for label in ("nothing changed", "all changed"):
                timings, size = [], 0
                for round_ in range(REPEAT):
                    if label == "all changed":
                        Upload.objects.filter(pk__in=ids).update(seq=now + 10_000 + round_)
                    started = time.perf_counter()
                    ws.send(json.dumps({"action": "sync", "upload_ids": ids}))
                    ws.send(json.dumps({"action": "ping"}))  # answered after the sync: marks its end
                    size = 0
                    while "Unknown action" not in (reply := ws.recv(timeout=30)):
                        size += len(reply.encode())
                    timings.append((time.perf_counter() - started) * 1000)
                    time.sleep(1.1)  # stay within the socket's message rate
                print(f"sync of 100 ids, {label}: median {statistics.median(timings):.1f} ms, {size:,} bytes")

        process = psutil.Process(server.process.pid)
        before = process.memory_info().rss
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(
            f"POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {300 * MB}\r\n\r\n".encode()
        )
        started, sent, chunk = time.perf_counter(), 0, b"x" * MB
        sock.setblocking(False)
        answer = b""
        while sent < 300 * MB:
            try:
                answer += sock.recv(4096)
                break
            except BlockingIOError:
                pass
            try:
                sent += sock.send(chunk)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                time.sleep(0.001)
        status = answer.split(b"\r\n")[0].decode()
        print(
            f"anonymous 300 MB POST: {status} after {sent / MB:.0f} MB sent, "
            f"{(time.perf_counter() - started) * 1000:.0f} ms; daphne RSS {before / MB:.0f} -> "
            f"{process.memory_info().rss / MB:.0f} MB"
        )
        sock.close()
    finally:
        server.stop()
        Upload.objects.filter(owner=user).delete()


if __name__ == "__main__":
    main()
