"""The pipeline's own machinery, without a database: the first batch's ramp, the prefetch
thread and line numbering."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

from ingestion.outcomes import Cancelled
from ingestion.pipeline import _number_lines, prefetch, ramped
from ingestion.reading import Batch


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "ingest-prefetch"]


# --- the first batch's ramp ---------------------------------------------------------------


def batch_of(first_row: int, rows: int, *, skipped=(), warnings=()) -> Batch:
    frame = pd.DataFrame({"po": [f"PO{i}" for i in range(rows)]}, index=range(first_row, first_row + rows))
    return Batch(frame=frame, first_row=first_row, skipped=list(skipped), warnings=list(warnings))


def test_the_first_batch_is_cut_into_a_ramp_and_every_row_skip_and_warning_keeps_its_place():
    first = batch_of(
        2,
        5_500,
        skipped=[(None, "unnumbered"), (900, "a"), (1_002, "b"), (5_000, "c")],
        warnings=[(1_001, "po", "x", "NUL"), (1_002, "po", "y", "NUL"), (5_501, "po", "z", "NUL")],
    )
    second = batch_of(5_502, 10_000, skipped=[(5_600, "d")])
    pieces = list(ramped(iter([first, second]), sizes=(1_000, 3_000)))

    assert [len(p.frame) for p in pieces] == [1_000, 3_000, 1_500, 10_000]
    assert [p.first_row for p in pieces] == [2, 1_002, 4_002, 5_502]
    assert [list(p.frame.index[[0, -1]]) for p in pieces[:3]] == [[2, 1_001], [1_002, 4_001], [4_002, 5_501]]
    assert [[row for row, _ in p.skipped] for p in pieces] == [[None, 900], [1_002], [5_000], [5_600]]
    assert [[w[0] for w in p.warnings] for p in pieces] == [[1_001], [1_002], [5_501], []]
    assert pieces[3] is second  # later batches pass as they are
    assert pd.concat([p.frame for p in pieces[:3]]).equals(first.frame)


def test_a_first_batch_shorter_than_the_ramp_and_an_empty_file_pass_as_they_are():
    short = batch_of(2, 1_000)
    assert list(ramped(iter([short]), sizes=(1_000, 3_000))) == [short]
    middle = batch_of(2, 2_500)
    assert [len(p.frame) for p in ramped(iter([middle]), sizes=(1_000, 3_000))] == [1_000, 1_500]
    assert list(ramped(iter([]))) == []


# --- prefetch -------------------------------------------------------------------------------


def test_prefetch_yields_every_item_in_order_from_its_own_thread():
    produced_in: list[str] = []

    def items():
        for i in range(25):
            produced_in.append(threading.current_thread().name)
            yield i

    assert list(prefetch(items(), should_stop=lambda: False)) == list(range(25))
    assert produced_in == ["ingest-prefetch"] * 25
    assert prefetch_threads() == []


def test_prefetch_works_ahead_by_at_most_its_depth():
    produced: list[int] = []

    def items():
        for i in range(100):
            produced.append(i)
            yield i

    stream = prefetch(items(), should_stop=lambda: False, depth=2)
    assert next(stream) == 0
    deadline = time.monotonic() + 10
    while len(produced) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # every chance to run further ahead than it may
    # Item 0 was taken, items 1 and 2 fill the queue, item 3 waits to be put.
    assert produced == [0, 1, 2, 3]
    stream.close()
    assert prefetch_threads() == []


@pytest.mark.parametrize("ending", ["the end", "an error"])
def test_a_consumer_that_stops_when_every_item_is_read_frees_the_thread_at_once(ending):
    # A cancel near the end of a file: the reader has read everything and waits to hand over
    # its end (or its error) to a pipeline that no longer takes anything.
    def items():
        yield from range(3)
        if ending == "an error":
            raise ValueError("row 30001: the file ends inside a quoted field")

    stream = prefetch(items(), should_stop=lambda: False, depth=2)
    assert next(stream) == 0  # items 1 and 2 fill the queue
    time.sleep(0.3)  # the reader is done, its last hand-over waits for room
    started = time.monotonic()
    stream.close()
    assert time.monotonic() - started < 1  # it waited out the join's 10 s before
    assert prefetch_threads() == []


def test_an_exception_arrives_after_the_items_before_it_and_as_itself():
    def items():
        yield "batch 1"
        yield "batch 2"
        raise ValueError("row 2001: the file ends inside a quoted field")

    received: list = []
    with pytest.raises(ValueError, match="^row 2001: the file ends inside a quoted field$") as caught:
        received.extend(prefetch(items(), should_stop=lambda: False))
    assert received == ["batch 1", "batch 2"]
    # Raised where it happened: the generator's frame is in the traceback.
    assert any(entry.name == "items" for entry in caught.traceback)
    assert prefetch_threads() == []


def test_a_stop_ends_the_stream_with_cancelled_and_the_producer_with_it():
    stop = threading.Event()
    produced: list[int] = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    received: list[int] = []

    def take(item: int) -> int:
        received.append(item)
        if item == 4:
            stop.set()
        return item

    with pytest.raises(Cancelled):
        list(map(take, prefetch(endless(), should_stop=stop.is_set, depth=2)))
    # What was queued before the stop is still handed over, in order: at most the two in the
    # queue and the one being put. The producer makes nothing after it sees the stop.
    assert received == list(range(len(received))) and 5 <= len(received) <= 5 + 2 + 1
    assert produced == received
    assert prefetch_threads() == []


def test_leaving_the_loop_early_stops_the_producer():
    def endless():
        i = 0
        while True:
            yield i
            i += 1

    for item in prefetch(endless(), should_stop=lambda: False):
        if item == 3:
            break
    assert prefetch_threads() == []


# --- line numbering -------------------------------------------------------------------------


def batch(first_row: int, po_numbers: list[str], rejected: set[int]) -> tuple[pd.DataFrame, pd.Series]:
    """A validated batch as the pipeline sees it: every row's PO number (rejected rows too),
    and the lines of the rows that were kept."""
    index = pd.RangeIndex(first_row, first_row + len(po_numbers))
    pos = pd.Series(po_numbers, index=index)
    kept = [i for i in index if i not in rejected]
    lines = pd.DataFrame({"po_number": pos[kept].to_list(), "quantity": ["1"] * len(kept)}, index=kept)
    return lines, pos


def test_lines_are_numbered_by_order_within_their_po_across_batches_rejected_rows_included():
    counters: dict[str, int] = {}
    # Row 1 (PO A) is rejected but keeps its number; row 4 has no PO number at all.
    lines, pos = batch(0, ["A", "A", "B", "A", ""], rejected={1, 4})
    first = _number_lines(lines, counters, numbered=False, po_numbers=pos)
    assert first["line_number"].to_dict() == {0: 1, 2: 1, 3: 3}
    assert counters == {"A": 3, "B": 1}

    lines, pos = batch(5, ["B", "A", "C", "A"], rejected={8})
    second = _number_lines(lines, counters, numbered=False, po_numbers=pos)
    assert second["line_number"].to_dict() == {5: 2, 6: 4, 7: 1}
    assert counters == {"A": 5, "B": 2, "C": 1}
    assert str(second["line_number"].dtype) == "int64"


def test_a_file_with_its_own_line_numbers_is_left_as_it_is():
    counters: dict[str, int] = {}
    lines, pos = batch(0, ["A", "A"], rejected=set())
    lines = lines.assign(line_number=[10, 20])
    assert _number_lines(lines, counters, numbered=True, po_numbers=pos) is lines
    assert counters == {}
