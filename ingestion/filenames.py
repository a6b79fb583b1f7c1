"""File names as users send them, made safe to store and to show.

A name is the user's, in any script and of any length; a file system takes at most 255
bytes per name (and UTF-8 spends up to four per character), and the upload row keeps 255
characters. Both are cut here, by bytes for the disk and by characters for the row, always
keeping the extension, so a long name is stored instead of failing the request."""

from __future__ import annotations

import os
import unicodedata

# Well under the file system's 255 bytes: the storage may append "_" and 7 characters to
# make a name unique.
MAX_STORED_BYTES = 200
MAX_DISPLAY_CHARS = 255


def clean_name(name: str) -> str:
    """The last path component, without control characters (a NUL ends a path for the OS)."""
    name = os.path.basename(name.replace("\\", "/"))
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    return unicodedata.normalize("NFC", name).strip() or "upload.csv"


def _cut(stem: str, fits) -> str:
    stem = stem[:MAX_DISPLAY_CHARS]
    while stem and not fits(stem):
        stem = stem[:-1]
    return stem.rstrip(" .") or "upload"


def display_name(name: str) -> str:
    """The name to show, at most MAX_DISPLAY_CHARS characters, extension kept."""
    stem, ext = os.path.splitext(clean_name(name))
    ext = ext[:16]
    return _cut(stem, lambda s: len(s) + len(ext) <= MAX_DISPLAY_CHARS) + ext


def stored_name(name: str) -> str:
    """The name to store under, at most MAX_STORED_BYTES bytes of UTF-8, extension kept."""
    stem, ext = os.path.splitext(clean_name(name))
    ext = ext[:16]
    return _cut(stem, lambda s: len((s + ext).encode("utf-8")) <= MAX_STORED_BYTES) + ext
