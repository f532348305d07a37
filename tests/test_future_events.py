"""One event from the future must not stop a model: it is held back without moving any watermark, and
dead-lettered once its stream goes on without it; a real jump of the stream (a gap in the traffic) is
observed as soon as a handful of events confirm it."""

from __future__ import annotations

from collections import Counter

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import MonitorSettings
from monitor.core.reference import build_profile
from monitor.pipeline import Monitor
from monitor.replay import replay_file
from monitor.types import PredictionEvent

T0 = 1_767_225_600.0
REF = build_profile("m", pd.DataFrame({"x": np.random.default_rng(0).normal(0, 1, 2000)}),
                    built_at="2026-01-01T00:00:00Z")


def events(n: int, t0: float, seconds: float, seed: int = 0) -> list[PredictionEvent]:
    rng = np.random.default_rng(seed)
    ts = np.sort(t0 + rng.uniform(0, seconds, n))
    return [PredictionEvent("m", f"r{seed}-{i}", float(t), {"x": float(rng.normal())}, prediction=1, score=0.7)
            for i, t in enumerate(ts)]


def counts(points) -> Counter[float]:
    return Counter({p.time_ns / 1e9: p.field("events") for p in points if p.measurement == "throughput"})


def expected(evs: list[PredictionEvent], size: float = 60.0) -> Counter[float]:
    return Counter((e.timestamp // size) * size + size for e in evs)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.sampled_from([4_102_444_800.0, 7_000_000_000.0, T0 + 86_400.0, T0 + 3_600.0]),
                min_size=1, max_size=4), st.integers(1, 400), st.integers(0, 100))
def test_a_handful_of_events_from_the_future_never_stop_a_model(outliers, where, seed):
    stream = events(600, T0, 360, seed)
    normal = list(stream)
    for k, ts in enumerate(outliers):  # e.g. 2100-01-01, 2191, a day ahead, an hour ahead
        stream.insert(min(where + 37 * k, len(stream)), PredictionEvent("m", f"future-{k}", ts, {"x": 9.0},
                                                                        prediction=1))
    mon = Monitor(MonitorSettings(window="1m", allowed_lateness="5s"), {"m": REF})
    pts, dead = [], []
    for i in range(0, len(stream), 50):
        dead += mon.observe(stream[i:i + 50])
        pts.extend(mon.advance().points)
    pts.extend(mon.close_all().points)
    dead += mon.take_dead_letters()
    assert counts(pts) == expected(normal)  # every window closed, with exactly its events
    assert mon.late_events() == 0
    assert sorted(d.timestamp for d in dead) == sorted(outliers)
    assert all("ahead of its stream" in d.reason for d in dead)
    invalid = sum(p.field("invalid") for p in pts if p.measurement == "data_quality" and p.tag("feature") == "__event__")
    assert invalid == len(outliers)  # dead letters are counted where a dashboard shows them


def test_a_real_jump_of_the_stream_is_observed():
    """A gap of a day in the traffic: the first events after it are held only until five confirm it."""
    before, after = events(300, T0, 120, 1), events(300, T0 + 86_400, 120, 2)
    mon = Monitor(MonitorSettings(window="1m", allowed_lateness="5s"), {"m": REF})
    pts = []
    for chunk in (before, after[:3], after[3:]):
        dead = mon.observe(chunk)
        assert not dead
        pts.extend(mon.advance().points)
    pts.extend(mon.close_all().points)
    assert counts(pts) == expected(before + after)
    assert not mon.take_dead_letters()


def test_replay_dead_letters_the_event_from_the_future(tmp_path):
    stream = events(900, T0, 540, 3)
    outlier = {"model": "m", "request_id": "from-2100", "timestamp": "2100-01-01T00:00:00Z", "features": {"x": 1.0},
               "prediction": 1}
    lines = [orjson.dumps({"model": e.model, "request_id": e.request_id, "timestamp": e.timestamp,
                           "features": dict(e.features), "prediction": e.prediction}) for e in stream]
    lines.insert(450, orjson.dumps(outlier))
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    summary = replay_file(path, {"m": REF}, tmp_path / "out", MonitorSettings(window="1m", allowed_lateness="5s"))
    from monitor.lineprotocol import read_lp

    assert counts(read_lp(tmp_path / "out" / "metrics.lp")) == expected(stream)
    dlq = [orjson.loads(x) for x in (tmp_path / "out" / "dlq.jsonl").read_bytes().splitlines()]
    assert [(d["offset"], orjson.loads(d["raw"])["request_id"]) for d in dlq] == [(450, "from-2100")]
    assert "ahead of its stream" in dlq[0]["reason"]
    assert summary.events == len(stream) and summary.rejected == 1


@pytest.mark.parametrize("skew", [None, "10m"])
def test_future_skew_can_be_switched_off(skew):
    settings_ = MonitorSettings(window="1m", max_future_skew=skew)
    mon = Monitor(settings_, {"m": REF})
    stream = events(200, T0, 100)
    mon.observe([*stream[:100], PredictionEvent("m", "f", T0 + 3_600, {"x": 0.0}, prediction=1), *stream[100:]])
    mon.close_all()
    held = len(mon.take_dead_letters())
    assert held == (0 if skew is None else 1)
