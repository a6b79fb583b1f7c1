"""Starting and stopping Intake's own processes (daphne, a worker) for `make run`, the
tests and the benchmark, so all three do it the same way."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def hostname() -> str:
    return socket.gethostname()


def stop_process(process: subprocess.Popen | None, *, timeout: float = 20) -> None:
    """SIGTERM (a warm shutdown for Celery), then SIGKILL for the whole group if it hangs."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class Daphne:
    """daphne serving config.asgi on a free loopback port; `restart()` is a deploy: every
    open websocket drops."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, *, timeout: float = 30) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(self.port), "config.asgi:application"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited at start; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"daphne did not listen in {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        stop_process(self.process, timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()


class Worker:
    """One Celery worker process (prefork) on config's app: `make run`, the tests and the
    benchmark all start theirs through this. `start()` waits until this very worker answers
    a ping (by its node name), so the first task sent after it is taken; `stop()` is a warm
    shutdown, SIGKILL for the whole group if it hangs.

    The caller chooses the environment (database, Redis, settings), the log file (None:
    this process's own output), the pool size and the log level."""

    def __init__(
        self,
        *,
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
        concurrency: int = 2,
        loglevel: str = "info",
        events: bool = True,
        name: str | None = None,
        queues: list[str] | None = None,
    ) -> None:
        self.env = env
        self.queues = queues  # None: every queue in settings.CELERY_TASK_QUEUES
        self.log_path = log_path
        self.concurrency = concurrency
        self.loglevel = loglevel
        self.events = events
        # A name of its own, so that ping asks this worker and not another on the broker.
        self.name = name or f"intake-{os.getpid()}-{id(self)}@{hostname()}"
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "the worker was not started"
        return self.process.pid

    def command(self) -> list[str]:
        return [
            str(BIN / "celery"),
            "-A",
            "config",
            "worker",
            *(["-E"] if self.events else []),
            "-l",
            self.loglevel,
            "-c",
            str(self.concurrency),
            # One worker per broker here: nothing to learn from others at start-up.
            "--without-gossip",
            "--without-mingle",
            "-n",
            self.name,
            *(["-Q", ",".join(self.queues)] if self.queues else []),
        ]

    def start(self, *, wait: bool = True, timeout: float = 60) -> None:
        """Start the worker; with `wait`, return once it answers (needs Django settings that
        point at the worker's broker, as the tests and the benchmark have)."""
        log = self.log_path.open("ab") if self.log_path else None
        try:
            self.process = subprocess.Popen(
                self.command(),
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT if log else None,
                # Its own process group: a Ctrl-C reaches the parent alone, which stops the
                # worker with one SIGTERM (a warm shutdown), and a hang can kill the group.
                start_new_session=True,
            )
        finally:
            if log:
                log.close()  # the child holds its own copy
        if wait:
            self.wait_ready(timeout=timeout)

    def wait_ready(self, *, timeout: float = 60) -> None:
        from config.celery import app

        where = f"; see {self.log_path}" if self.log_path else ""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"The Celery worker exited at start{where}")
            if app.control.ping(destination=[self.name], timeout=0.5):
                return
        raise RuntimeError(f"The Celery worker did not answer in {timeout:.0f} s{where}")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, *, timeout: float = 20) -> None:
        stop_process(self.process, timeout=timeout)
