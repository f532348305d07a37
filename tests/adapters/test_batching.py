"""AckLedger: offsets are acked per partition as an offset-ordered prefix, only once every window of every
record in the prefix is closed, rejections only after their dead-letter record is delivered."""

from __future__ import annotations

import math
from itertools import cycle

from faust.types import TP
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.adapters.batching import UNATTRIBUTED, AckLedger

P0 = TP("predictions", 0)
P1 = TP("predictions", 1)


def closed_map(values: dict[str, float]):
    return lambda model: values.get(model)


def test_prefix_only_up_to_the_first_open_window() -> None:
    led = AckLedger()
    a, b = led.model_id("a"), led.model_id("b")
    led.add(P0, [10, 11, 12, 13], [a, b, a, a], [100.0, 200.0, 100.0, 110.0])
    # a closed until 100, b still open at 200: offsets 10 only (11 blocks 12 and 13)
    assert led.ackable(closed_map({"a": 100.0, "b": 150.0})) == [(P0, 10, 10)]
    assert led.pending() == 3
    assert led.ackable(closed_map({"a": 100.0, "b": 200.0})) == [(P0, 11, 12)]
    assert led.ackable(closed_map({"a": 110.0, "b": 200.0})) == [(P0, 13, 13)]
    assert led.pending() == 0
    assert led.ackable(closed_map({"a": 500.0})) == []


def test_unknown_model_state_blocks() -> None:
    led = AckLedger()
    led.add(P0, [0, 1], [led.model_id("a"), led.model_id("a")], [10.0, 10.0])
    assert led.ackable(closed_map({})) == []


def test_rejections_wait_for_their_dead_letter_record() -> None:
    led = AckLedger()
    a = led.model_id("a")
    chunk = led.add(P0, [5, 6, 7], [a, UNATTRIBUTED, a], [10.0, math.inf, 10.0])
    assert led.ackable(closed_map({"a": 20.0})) == [(P0, 5, 5)]
    led.mark_done(chunk, 1)
    assert led.ackable(closed_map({"a": 20.0})) == [(P0, 6, 7)]


def test_partitions_are_independent_and_gaps_are_acked_through() -> None:
    led = AckLedger()
    a, b = led.model_id("a"), led.model_id("b")
    led.add(P0, [0, 1], [a, a], [10.0, 10.0])
    led.add(P1, [40, 41], [b, b], [10.0, 99.0])
    led.add(P0, [5, 6], [a, a], [10.0, 20.0])  # 2..4 are transaction markers / compacted away
    out = dict((tp, (f, last)) for tp, f, last in led.ackable(closed_map({"a": 10.0, "b": 10.0})))
    assert out == {P0: (0, 5), P1: (40, 40)}


def test_first_batch_acks_from_the_consumer_position() -> None:
    led = AckLedger()
    a = led.model_id("a")
    led.add(P0, [103, 104], [a, a], [1.0, 1.0], start_hint=100)  # 100..102 hold no record
    assert led.ackable(closed_map({"a": 1.0})) == [(P0, 100, 104)]


def test_drop_forgets_a_revoked_partition() -> None:
    led = AckLedger()
    a = led.model_id("a")
    led.add(P0, [0], [a], [1.0])
    led.add(P1, [0], [a], [1.0])
    led.drop([P0])
    assert led.ackable(closed_map({"a": 1.0})) == [(P1, 0, 0)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.floats(0, 10), st.booleans()), min_size=1, max_size=80),
       st.lists(st.integers(1, 7), min_size=1, max_size=10),
       st.lists(st.lists(st.floats(0, 10), min_size=3, max_size=3), min_size=1, max_size=4))
def test_acked_prefix_matches_a_sequential_model(records, cuts, steps) -> None:
    """Whatever the batching, and as watermarks advance, the acked offsets are exactly the longest prefix
    whose records are all done (model 3 = a rejection, done when its flag is set)."""
    led = AckLedger()
    ids = [led.model_id(m) for m in ("a", "b", "c")]
    i = 0
    for size in cycle(cuts):  # every record goes into some batch
        if i >= len(records):
            break
        part = records[i:i + size]
        chunk = led.add(P0, list(range(i, i + len(part))), [ids[m] if m < 3 else UNATTRIBUTED for m, _, _ in part],
                        [e if m < 3 else math.inf for m, e, _ in part])
        for j, (m, _, delivered) in enumerate(part):
            if m == 3 and delivered:
                led.mark_done(chunk, j)
        i += len(part)
    closed = [0.0, 0.0, 0.0]
    acked = 0
    for step in steps:
        closed = [max(c, s) for c, s in zip(closed, step, strict=True)]  # watermarks only advance
        got = led.ackable(closed_map(dict(zip("abc", closed, strict=True))))
        done = 0
        for m, end, delivered in records:
            if (m == 3 and not delivered) or (m < 3 and end > closed[m]):
                break
            done += 1
        assert got == ([(P0, acked, done - 1)] if done > acked else [])
        acked = max(acked, done)
        assert led.pending() == len(records) - acked


def test_ledger_size_does_not_grow_with_events_per_window() -> None:
    led = AckLedger()
    a = led.model_id("a")
    for start in range(0, 1_000_000, 5_000):  # 1M records of one model over 2 windows, in batches
        led.add(P0, list(range(start, start + 5_000)), [a] * 5_000, [10.0 if start < 500_000 else 20.0] * 5_000)
    assert led.pending() == 1_000_000
    assert led.nbytes() < 200 * 16 + 64  # one (index, end) pair per batch
    assert led.ackable(closed_map({"a": 10.0})) == [(P0, 0, 499_999)]
