"""`make run`: migrate, make sure a demo user and a Redis exist, then run two Celery workers
(one for small files only, one for large files first), Celery beat (the sweeper) and daphne
on 127.0.0.1:8000 until Ctrl-C, and stop them all cleanly."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from processes import Worker, hostname  # noqa: E402
from redis_server import DEFAULT_URL, ensure_redis  # noqa: E402

BIN = Path(sys.executable).parent
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = os.environ.get("PORT", "8000")


def manage(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, check=True)


def ensure_demo_user() -> None:
    password_file = ROOT / ".run" / "demo-password"
    password_file.parent.mkdir(parents=True, exist_ok=True)
    password = password_file.read_text().strip() if password_file.exists() else secrets.token_urlsafe(9)
    code = (
        "from django.contrib.auth import get_user_model\n"
        "User = get_user_model()\n"
        "u, created = User.objects.get_or_create(username='demo')\n"
        f"if created or not u.has_usable_password():\n    u.set_password({password!r}); u.save()\n"
        "print('created' if created else 'exists')\n"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
    )
    if "created" in result.stdout or not password_file.exists():
        password_file.write_text(password)
    print(
        f"\n  Sign in at http://{HOST}:{PORT}/accounts/login/  as  demo / {password_file.read_text().strip()}\n",
        flush=True,
    )


def main() -> int:
    os.environ.setdefault("DJANGO_DEBUG", "1")
    asked = os.environ.get("REDIS_URL") or DEFAULT_URL
    os.environ["REDIS_URL"] = ensure_redis()
    manage("migrate", "--noinput")
    ensure_demo_user()
    if os.environ["REDIS_URL"] != asked:
        # A private Redis: `manage.py ingest` in another shell must queue to it too.
        print(f"  For `manage.py ingest` in another shell:  export REDIS_URL={os.environ['REDIS_URL']}\n", flush=True)
    queue = os.environ.get("INGEST_QUEUE", "intake")
    large_queue = os.environ.get("INGEST_LARGE_QUEUE", "intake_large")
    analytics_queue = os.environ.get("ANALYTICS_QUEUE", "intake_analytics")
    # Two worker slots for files: one serves small files only, so they never wait behind a
    # large one; the other takes large files first and small ones when none waits. A third
    # serves the analytics (price checks, summary refreshes) so they never hold a file's slot.
    workers = [
        Worker(concurrency=1, name=f"small-{os.getpid()}@{hostname()}", queues=[queue]),
        Worker(concurrency=1, name=f"large-{os.getpid()}@{hostname()}", queues=[large_queue, queue]),
        Worker(concurrency=1, name=f"analytics-{os.getpid()}@{hostname()}", queues=[analytics_queue]),
    ]
    for worker in workers:
        worker.start(wait=False)  # its log shows when it is ready; daphne need not wait for it
    # The periodic sweeper and housekeeping (settings.CELERY_BEAT_SCHEDULE): exactly one beat.
    beat = subprocess.Popen(
        [str(BIN / "celery"), "-A", "config", "beat", "-l", "info", "-s", str(ROOT / ".run" / "celerybeat-schedule")],
        cwd=ROOT,
    )
    server = subprocess.Popen([str(BIN / "daphne"), "-b", HOST, "-p", PORT, "config.asgi:application"], cwd=ROOT)
    worker_processes = [worker.process for worker in workers if worker.process is not None]
    children = [*worker_processes, beat, server]

    stopping = []

    def stop(*_):
        if stopping:  # once: a second SIGTERM would only repeat the worker's warm shutdown
            return
        stopping.append(True)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)  # a warm shutdown for the worker

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while all(child.poll() is None for child in children):
            try:
                children[0].wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
    finally:
        stop()
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                if child in worker_processes:
                    os.killpg(child.pid, signal.SIGKILL)  # the worker and its pool processes
                else:
                    child.kill()
    print("Intake stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
