"""Hostile input: hypothesis-generated malformed events interleaved with valid ones. Every bad event is
rejected with a reason (DLQ), nothing crashes, every valid event is counted."""

from __future__ import annotations

import json
from collections import Counter

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
    counted = Counter()
    for p in em.points:
        if p.measurement == "data_quality" and p.tag("feature") == "__event__":
            counted[p.tag("model")] += p.field("invalid")
    # every dead letter is counted: under its model, or under __unknown__ when none could be read
    assert counted["m"] == sum(1 for _, r in rejected if r.model == "m")
    assert counted["__unknown__"] == sum(1 for _, r in rejected if r.model is None)
    assert sum(counted.values()) == len(bad)


@st.composite
def near_valid(draw: st.DrawFn) -> bytes:
    """Valid events, malformed ones, and valid ones with odd but legal variations (labels, RFC 3339 times,
    string/bool/null features, extra fields): the one-pass decoder must agree with the validating one."""
    kind = draw(st.sampled_from(["malformed", "valid", "variant", "label"]))
    if kind == "malformed":
        return draw(malformed())
    base = valid(draw(st.integers(0, 10_000)))
    if kind == "label":
        return json.dumps({"model": base["model"], "request_id": base["request_id"], "timestamp": draw(
            st.one_of(st.just(base["timestamp"]), st.just("2026-01-01T00:00:00Z"), st.just("2026-01-01T00:00:00"))),
            "label": draw(st.one_of(st.booleans(), st.integers(-5, 5), st.text(max_size=5), st.none()))}).encode()
    if kind == "variant":
        base["features"][draw(st.text(max_size=210))] = draw(
            st.one_of(st.none(), st.booleans(), st.text(max_size=20), st.floats(allow_nan=False, allow_infinity=False)))
        base["timestamp"] = draw(st.sampled_from([base["timestamp"], "2026-01-01T00:00:00+02:00", "2026-01-01",
                                                  0, 7_258_118_400]))
        base[draw(st.sampled_from(["extra", "model_version", "error"]))] = draw(st.one_of(st.none(), st.text(max_size=5)))
    return json.dumps(base).encode()


@settings(max_examples=3_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(near_valid())
def test_one_pass_decoder_agrees_with_the_validating_decoder(raw):
    from monitor.events import _decode, _decode_fast

    def reject(reason: str, model: str | None = None, ts: float | None = None) -> Rejection:
        return Rejection(reason=reason, raw=raw, model=model, timestamp=ts)

    models = frozenset({"m"})
    fast = _decode_fast(raw, models)
    try:
        slow = _decode(raw, reject, models)
    except RecursionError:
        slow = reject("nested too deeply")
    if fast is None:
        return  # the validating decoder decides (and gives the reason)
    assert not isinstance(slow, Rejection), (raw[:200], slow.reason)
    assert fast == slow


def test_valid_events_take_the_one_pass_decoder():
    from monitor.events import _decode_fast

    assert _decode_fast(json.dumps(valid(3)).encode(), frozenset({"m"})) is not None
    label = {"model": "m", "request_id": "r", "timestamp": "2026-01-01T00:00:00Z", "label": True}
    assert _decode_fast(json.dumps(label).encode(), None) is not None
    assert _decode_fast(json.dumps(valid(3)).encode(), frozenset({"other"})) is None
