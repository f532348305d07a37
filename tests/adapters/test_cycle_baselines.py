"""Trailing and seasonal baselines survive crashes and takeovers (the fake ports of test_cycle.py).

The owner's current block travels in its checkpoint and closed blocks as records of the checkpoint topic, so
a new owner that starts from the committed offsets and the checkpoints compares every window it finalizes
again against exactly the baseline the single-process pipeline had: the baseline-tagged drift points are
equal, whatever the crashes, failed flushes and interleavings."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.baselines_config import BaselinesConfig
from monitor.pipeline import Monitor
from monitor.types import MetricPoint, PredictionEvent
from tests.adapters.test_cycle import REF, SETTINGS, T0, Step, World

#: 10 s windows, 20 s blocks (the current block holds up to two windows), a 40 s trailing baseline and a
#: 20 s seasonal one: over 120 s of events blocks close, get written, fall out of the ring and are restored
BSETTINGS = SETTINGS.model_copy(update={"baselines": BaselinesConfig(
    trailing="40s", seasonal="20s", block="20s", min_events=10)})
SPAN_S = 120.0


def _events(seed: int, n: int) -> list[PredictionEvent]:
    """x shifts by 1.5 sd for 20 s in the middle (drifted windows are left out of the baselines)."""
    rng = np.random.default_rng(seed)
    ts = np.sort(T0 + rng.uniform(0, SPAN_S, n))
    return [PredictionEvent("m", f"r{seed}-{i}", float(t),
                            {"x": float(rng.normal(1.5 if T0 + 50 <= t < T0 + 70 else 0.0, 1)),
                             "c": str(rng.choice(["a", "b"], p=[0.8, 0.2] if t > T0 + 90 else [0.5, 0.5]))},
                            prediction=int(rng.integers(2)), score=float(rng.uniform()),
                            latency_ms=float(rng.lognormal(3, 0.3)))
            for i, t in enumerate(ts)]


def _drift(points: list[MetricPoint] | tuple[MetricPoint, ...]) -> dict[tuple, set[tuple]]:
    out: dict[tuple, set[tuple]] = defaultdict(set)
    for p in points:
        if p.measurement in ("drift", "drift_summary"):
            out[p.series_key()].add(p.fields)
    return out


def _expected(events: list[PredictionEvent]) -> dict[tuple, tuple]:
    mon = Monitor(BSETTINGS, {"m": REF})
    mon.observe(events)
    got = _drift(mon.close_all().points)
    return {k: next(iter(v)) for k, v in got.items()}


def _baselined(keys: object) -> set[str]:
    return {dict(k[1]).get("baseline", "") for k in keys}  # type: ignore[attr-defined]


def test_a_takeover_mid_stream_keeps_the_baseline() -> None:
    events = _events(1, 600)
    expected = _expected(events)
    assert {"trailing", "seasonal"} <= _baselined(expected)
    world = World(events, "request_id", BSETTINGS)
    half = {p: len(world.broker.topics[BSETTINGS.predictions_topic][p]) // 2 for p in range(2)}
    for p in range(2):
        world.fetch(BSETTINGS.predictions_topic, p, half[p])
    for _ in range(3):
        world.flush()
        for p in range(2):
            world.fetch(BSETTINGS.partials_topic, p, 10**9)
    world.flush()
    records = [r for p in range(2) for r in world.broker.topics[BSETTINGS.checkpoint_topic][p]
               if r.key is not None and r.key.startswith(b"baseline:")]
    assert records, "closed blocks were written to the checkpoint topic"
    world.crash()
    ring = world.cycle.owner.finalizer.baselines.rings["m"]
    assert ring.current is not None and len(ring.blocks) >= 2  # restored: closed blocks and the current one
    world.drain()
    got = _drift(world.sink.written)
    assert not {k: v for k, v in got.items() if len(v) > 1}, "a window written twice with different values"
    assert {k: next(iter(v)) for k, v in got.items()} == expected


def test_without_the_block_records_the_new_owner_would_compare_differently() -> None:
    """The check above is not vacuous: a takeover that loses the closed blocks writes other points."""
    events = _events(1, 600)
    expected = _expected(events)
    world = World(events, "request_id", BSETTINGS)
    for p in range(2):
        world.fetch(BSETTINGS.predictions_topic, p, len(world.broker.topics[BSETTINGS.predictions_topic][p]) // 2)
    for _ in range(3):
        world.flush()
        for p in range(2):
            world.fetch(BSETTINGS.partials_topic, p, 10**9)
    world.flush()
    for p in range(2):
        log = world.broker.topics[BSETTINGS.checkpoint_topic][p]
        log[:] = [r for r in log if not (r.key or b"").startswith(b"baseline:")]
    world.crash()
    world.drain()
    got = {k: next(iter(v)) for k, v in _drift(world.sink.written).items()}
    assert got != expected


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 1000), st.sampled_from(["request_id", "none"]), st.lists(Step, min_size=5, max_size=60))
def test_crashes_and_failures_never_change_a_baseline_comparison(seed: int, keying: str, steps: list) -> None:
    events = _events(seed, 480)
    expected = _expected(events)
    world = World(events, keying, BSETTINGS)
    world.play(steps)
    got = _drift(world.sink.written)
    twice = {k: v for k, v in got.items() if len(v) > 1}
    assert not twice, f"windows written twice with different values: {list(twice.items())[:2]}"
    final = {k: next(iter(v)) for k, v in got.items()}
    assert final.keys() == expected.keys(), sorted(set(final) ^ set(expected))[:4]
    assert final == expected
