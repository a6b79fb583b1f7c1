"""A PO line a file carries twice with other values, in different batches: a conflict, never
a silent "last one wins".

The later row is the one written (its batch's statement overwrites the earlier one's, under
every policy: under `keep` and `review` the line is this upload's own by then, or its
proposed change takes the later values), so the row issue goes on the earlier row and names
the row taken, exactly as for a line repeated inside one batch (`pipeline._repeated_lines`);
the review page lists both kinds as conflicts.

What the upload has met is kept in numpy arrays, not Python objects (about 28 bytes a line:
the (order id, line number) key, a hash of the values, the row and its unit price), in sorted
chunks searched per batch, merged when they grow many."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .parsing import text_as_arrow
from .validation import WARNING, no_issues

KEYS = ["purchase_order_id", "line_number"]
VALUES = ["material_id", "quantity", "unit_price", "total_price", "currency"]
MAX_CHUNKS = 16


def has_repeats(lines: pd.DataFrame) -> bool:
    """Whether a batch carries a PO line twice: one sort of packed integer keys, a tenth of
    pandas' duplicated() over the two columns (most batches have no repeat at all)."""
    if len(lines) < 2:
        return False
    po = lines["purchase_order_id"].to_numpy(dtype=np.int64)
    line = lines["line_number"].to_numpy(dtype=np.int64)
    if po.min() < 0 or line.min() < 0 or po.max() >= 1 << 32 or line.max() >= 1 << 31:
        return bool(lines.duplicated(KEYS).any())
    keys = np.sort((po << 31) | line)
    return bool((keys[1:] == keys[:-1]).any())


def last_of_each(lines: pd.DataFrame) -> pd.DataFrame:
    """The batch with each PO line once, its last occurrence (the one a statement writes)."""
    return lines.drop_duplicates(KEYS, keep="last") if has_repeats(lines) else lines


class _Chunk:
    """Lines met, sorted by key: key, hash of the values, source row (int32) and unit price."""

    def __init__(self, keys: np.ndarray, hashes: np.ndarray, rows: np.ndarray, prices: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        self.keys, self.hashes, self.prices = keys[order], hashes[order], prices[order]
        self.rows = rows[order].astype(np.int32)


_RELEASED = np.empty(0)


def _merge(chunks: list[_Chunk]) -> _Chunk:
    """One chunk of them all, built a field at a time and releasing each field of the old
    chunks as soon as it is copied: the merge of a million lines' chunks holds about 16 MB
    beside them instead of twice their size (measured: the repeats were 96 MB of a 1M-row
    load's peak RSS before)."""
    merged = _Chunk.__new__(_Chunk)
    keys = np.concatenate([c.keys for c in chunks])
    for c in chunks:
        c.keys = _RELEASED  # its memory goes now, not when the old chunks are dropped
    order = np.argsort(keys, kind="stable")
    merged.keys = keys[order]
    del keys
    for name in ("hashes", "rows", "prices"):
        values = np.concatenate([getattr(c, name) for c in chunks])
        for c in chunks:
            setattr(c, name, _RELEASED)
        setattr(merged, name, values[order])
        del values
    return merged


class RepeatedAcrossBatches:
    def __init__(self) -> None:
        self.chunks: list[_Chunk] = []
        self.currencies: dict[str, int] = {}  # a small code per currency, the same across batches

    def check(self, last: pd.DataFrame) -> pd.DataFrame:
        """Row issues (warnings) for the lines of this batch an earlier batch carried with
        other values; remembers this batch's lines for the next. `last`: the batch with each
        PO line once (`last_of_each`)."""
        if last.empty:
            return no_issues()
        orders = last["purchase_order_id"].to_numpy(dtype=np.int64)
        if orders.max() >= 1 << 31:  # the key below would not be exact
            return no_issues()
        keys = (orders.astype(np.uint64) << np.uint64(32)) | last["line_number"].to_numpy(dtype=np.uint64)
        hashes, prices = self._hashes(last)
        rows = last["source_row"].to_numpy(dtype=np.int64)
        found: list[tuple[int, int, float]] = []  # (position in `last`, earlier row, earlier price)
        seen = np.zeros(len(keys), dtype=bool)
        for chunk in self.chunks:
            at = np.searchsorted(chunk.keys, keys)
            at[at == len(chunk.keys)] = 0
            hit = (chunk.keys[at] == keys) & ~seen if len(chunk.keys) else np.zeros(len(keys), dtype=bool)
            if not hit.any():
                continue
            where = np.flatnonzero(hit)
            differs = where[chunk.hashes[at[where]] != hashes[where]]
            found.extend(zip(differs.tolist(), chunk.rows[at[differs]].tolist(), chunk.prices[at[differs]].tolist()))
            # The later row is now the one a further repeat is compared with.
            chunk.hashes[at[where]] = hashes[where]
            chunk.rows[at[where]] = rows[where]
            chunk.prices[at[where]] = prices[where]
            seen |= hit
        fresh = ~seen
        if fresh.any():
            self.chunks.append(_Chunk(keys[fresh], hashes[fresh], rows[fresh], prices[fresh]))
        if len(self.chunks) > MAX_CHUNKS:
            chunks, self.chunks = self.chunks, []
            self.chunks = [_merge(chunks)]
        if not found:
            return no_issues()
        taken = last.iloc[[position for position, _, _ in found]]
        return pd.DataFrame(
            {
                "row": [row for _, row, _ in found],
                "column": "",
                "value": [_price(price) for _, _, price in found],
                "message": [
                    f"PO {po} line {line} appears again in row {row} with other values; row {row} was taken "
                    f"(unit price {_price(price)} here)."
                    for po, line, row, (_, _, price) in zip(
                        taken["po_number"], taken["line_number"], taken["source_row"], found, strict=True
                    )
                ],
                "severity": WARNING,
            }
        )

    def _hashes(self, lines: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """A 64-bit hash of each line's VALUES, and its unit price. The amounts (exact decimal
        strings) are hashed as the numbers they are, so '1.0' and '1.00' are the same value,
        with Arrow's kernels and integer arithmetic: a tenth of hashing their text."""
        try:
            amounts = [_float(lines[name]) for name in ("quantity", "unit_price", "total_price")]
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # never for validated amounts
            text = pd.util.hash_pandas_object(lines[VALUES].astype(str), index=False).to_numpy()
            return text, pd.to_numeric(lines["unit_price"], errors="coerce").to_numpy(dtype=np.float64)
        encoded = pc.dictionary_encode(text_as_arrow(lines["currency"]))
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        table = [self.currencies.setdefault(code, len(self.currencies)) for code in encoded.dictionary.to_pylist()]
        currency = np.array(table, dtype=np.uint64)[encoded.indices.to_numpy(zero_copy_only=False)]
        with np.errstate(over="ignore"):
            hashed = lines["material_id"].to_numpy(dtype=np.int64).view(np.uint64) * _MULTIPLIER
            for part in (*(amount.view(np.uint64) for amount in amounts), currency):
                hashed = (hashed ^ part) * _MULTIPLIER
                hashed ^= hashed >> np.uint64(29)
        return hashed, amounts[1]


_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


def _float(values: pd.Series) -> np.ndarray:
    """Decimal strings (None: missing) as float64 (NaN: missing)."""
    cast = pc.fill_null(pc.cast(text_as_arrow(values), pa.float64()), float("nan"))
    if isinstance(cast, pa.ChunkedArray):
        cast = cast.combine_chunks()
    return cast.to_numpy(zero_copy_only=False)


def _price(value: float) -> str:
    """A unit price as a file writes it: at least two decimals, no trailing zeros past them."""
    if value != value:
        return ""
    text = f"{value:.6f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"
