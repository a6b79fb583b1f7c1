"""What a user reads when a load fails: short, and free of what only the server should know.

A database error's text can quote SQL, constraint and table names or values of other
users' rows; an exception can carry a server path. The details go to the log, tagged with
the upload id; the user gets a bounded sentence that names that id, so support can find them."""

from __future__ import annotations

import logging
import re
import sys
import tempfile
from pathlib import Path

from django.conf import settings

log = logging.getLogger("ingestion.errors")

MAX_CHARS = 500


def _server_roots() -> list[str]:
    roots = {str(settings.MEDIA_ROOT), str(settings.BASE_DIR), tempfile.gettempdir(), sys.prefix}
    return sorted((root.rstrip("/") for root in roots if root and root != "/"), key=len, reverse=True)


def without_server_paths(text: str) -> str:
    """Every path under a server directory becomes its last component (the file's own name)."""
    for root in _server_roots():
        text = re.sub(re.escape(root) + r"(/[^\s'\"]*)?", lambda m: Path(m.group(0)).name, text)
    return text


def bounded(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1].rstrip() + "…"


def user_message(*, upload_id, text: str, exc: BaseException | None = None) -> str:
    """The message to store on the upload. With `exc`, `text` replaces the error's own text,
    which goes to the log with its traceback."""
    if exc is not None:
        log.error("Upload %s: %s", upload_id, text, exc_info=(type(exc), exc, exc.__traceback__))
        text = f"{text} The details are in the server log under upload {upload_id}."
    return bounded(without_server_paths(text))
