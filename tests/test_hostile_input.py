"""Hostile input: hypothesis-generated malformed events interleaved with valid ones. Every bad event is
rejected with a reason (DLQ), nothing crashes, every valid event is counted."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import MonitorSettings
from monitor.core.reference import build_profile
from monitor.events import decode_any
from monitor.pipeline import Monitor
from monitor.types import Rejection

T0 = 1_767_225_600.0

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=False),
                         st.text(max_size=30))
json_values = st.recursive(json_scalars, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                                 st.dictionaries(st.text(max_size=8), kids, max_size=4)),
                           max_leaves=20)


def valid(i: int) -> dict:
    return {"model": "m", "request_id": f"ok-{i}", "timestamp": T0 + i * 0.01,
            "features": {"x": float(np.sin(i)), "c": "ab"[i % 2]}, "prediction": i % 2, "score": 0.5,
            "latency_ms": 10.0}


@st.composite
def malformed(draw: st.DrawFn) -> bytes:
    base = valid(draw(st.integers(0, 10_000)))
    kind = draw(st.sampled_from(["garbage", "json", "drop", "wrong_type", "nonfinite", "huge", "deep", "unknown_model",
                                 "far_time", "bad_score", "neg_latency", "null_prediction"]))
    if kind == "garbage":
        raw = draw(st.binary(max_size=200))
        return raw if raw.strip()[:1] not in (b"{",) else b"\x00" + raw
    if kind == "json":
        v = draw(json_values)
        return json.dumps(v).encode() if not isinstance(v, dict) else b"[" + json.dumps(v).encode() + b"]"
    if kind == "drop":
        base.pop(draw(st.sampled_from(["model", "request_id", "timestamp", "features", "prediction"])))
    elif kind == "wrong_type":
        key = draw(st.sampled_from(["model", "request_id", "timestamp", "features", "score", "latency_ms"]))
        wrong = st.one_of(st.lists(st.integers(), max_size=3), st.dictionaries(
            st.text(), st.lists(st.integers(), max_size=2), min_size=1, max_size=2))
        base[key] = draw(wrong if key == "features" else st.one_of(wrong, st.booleans() if key != "timestamp"
                                                                    else st.lists(st.none(), max_size=1)))
    elif kind == "nonfinite":
        text = json.dumps(base).replace('"latency_ms": 10.0', '"latency_ms": ' + draw(st.sampled_from(
            ["NaN", "Infinity", "-Infinity", "1e999"])))
        return text.encode()
    elif kind == "huge":
        return json.dumps({**base, "model": "m" * draw(st.integers(201, 5000))}).encode()
    elif kind == "deep":
        depth = draw(st.integers(50, 2000))
        return ('{"model":"m","request_id":"d","timestamp":1,"prediction":1,"features":{"x":' + "[" * depth
                + "]" * depth + "}}").encode()
    elif kind == "unknown_model":
        base["model"] = draw(st.text(min_size=1, max_size=20).filter(lambda s: s != "m"))
    elif kind == "far_time":
        base["timestamp"] = draw(st.one_of(st.floats(-1e12, -1), st.floats(1e11, 1e15), st.just("9999-99-99")))
    elif kind == "bad_score":
        base["score"] = draw(st.one_of(st.floats(1.0001, 1e6), st.floats(-1e6, -0.0001)))
    elif kind == "neg_latency":
        base["latency_ms"] = draw(st.floats(-1e6, -0.001))
    elif kind == "null_prediction":
        base["prediction"] = None
    return json.dumps(base).encode()


REF = build_profile("m", pd.DataFrame({"x": np.sin(np.arange(5000)), "c": ["a", "b"] * 2500,
                                       "prediction": [0, 1] * 2500, "score": [0.5] * 5000}))


@settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(malformed(), st.integers(0, 10**9))
def test_every_malformed_event_is_rejected_with_a_reason(raw, offset):
    out = decode_any(raw, topic="predictions", partition=3, offset=offset, max_bytes=50_000, models=frozenset({"m"}))
    assert isinstance(out, Rejection), raw[:200]
    assert out.reason and len(out.reason) < 2_000
    record = out.to_dlq(0.0)
    assert (record["topic"], record["partition"], record["offset"]) == ("predictions", 3, offset)


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(malformed(), min_size=200, max_size=200), st.randoms(use_true_random=False))
def test_storm_interleaved_with_valid_events(bad, rnd):
    """Bad events never stop or pollute the pipeline: every valid event is counted, every bad one rejected."""
    mon = Monitor(MonitorSettings(window="1m", models=["m"]), {"m": REF})
    good = [json.dumps(valid(i)).encode() for i in range(500)]
    stream = [(True, g) for g in good] + [(False, b) for b in bad]
    rnd.shuffle(stream)
    accepted, rejected = [], []
    for offset, (is_good, raw) in enumerate(stream):
        out = decode_any(raw, topic="predictions", partition=0, offset=offset, max_bytes=50_000,
                         models=frozenset({"m"}))
        (rejected if isinstance(out, Rejection) else accepted).append((is_good, out))
    assert all(not g for g, _ in rejected) and all(g for g, _ in accepted)
    mon.observe([e for _, e in accepted])
    mon.reject([r for _, r in rejected])
    em = mon.close_all()
    assert sum(p.field("events") for p in em.points if p.measurement == "throughput") == len(good)
    counted = sum(p.field("invalid") for p in em.points if p.measurement == "data_quality"
                  and p.tag("feature") == "__event__")
    assert counted == sum(1 for _, r in rejected if r.model == "m")
