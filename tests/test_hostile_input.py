"""Hostile input: hypothesis-generated malformed events interleaved with valid ones. Every bad event is
rejected with a reason (DLQ), nothing crashes, every valid event is counted; the one-pass decoder, the
validating decoder and the field-mapping decoder agree on every input.

Runs in CI with the fast suite (``-m "not integration"``); the example counts are bounded so it takes
well under a minute."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import MonitorSettings
from monitor.core.reference import build_profile
from monitor.events import DecodeOptions, decode_any, producer_shaped
from monitor.pipeline import Monitor
from monitor.types import Rejection

T0 = 1_767_225_600.0
#: the wall clock the decoder is given: a day after the valid events (max_future_skew 10m, max_event_age 30d)
NOW = T0 + 86_400.0
OPTS = DecodeOptions(max_bytes=50_000, models=frozenset({"m"}), max_event_age_s=30 * 86_400.0, age_text="30d")
#: characters no name may contain (monitor.names), and the backslash forms the line protocol cannot carry
BAD_NAME_PARTS = ["\n", "\r", "\x00", "\t", "\x1f", "\x7f", "\x85", "\u2028", "\\\\", "\\,", "\\=", "\\ "]

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
                                 "far_time", "future", "too_old", "bad_name", "bad_score", "neg_latency",
                                 "null_prediction"]))
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
    elif kind == "far_time":  # outside 1970..2200 in whatever unit its magnitude implies (or not a time at all)
        base["timestamp"] = draw(st.one_of(
            st.floats(-1e12, -1), st.floats(7.26e9, 9.9e10), st.floats(7.26e12, 9.9e13), st.floats(7.26e15, 9.9e16),
            st.floats(7.26e18, 1e22), st.just("9999-99-99"), st.just("2300-01-01T00:00:00Z"), st.just("soon")))
    elif kind == "future":  # ahead of the wall clock by more than max_future_skew, in any unit
        ts = NOW + draw(st.floats(601, 1e9))
        scale = draw(st.sampled_from([1, 1_000, 1_000_000, 10**9, "rfc3339"]))
        base["timestamp"] = (f"{np.datetime64(int(ts * 1e6), 'us')}Z" if scale == "rfc3339" else ts * scale)
    elif kind == "too_old":  # behind the wall clock by more than max_event_age
        base["timestamp"] = NOW - 30 * 86_400.0 - draw(st.floats(1, 1e9))
    elif kind == "bad_name":
        where = draw(st.sampled_from(["model", "model_version", "request_id", "feature"]))
        part = draw(st.sampled_from(BAD_NAME_PARTS if where != "request_id" else BAD_NAME_PARTS[:8]))
        name = draw(st.text(max_size=5)) + part + draw(st.sampled_from(["", "x", "é"]))
        name = name + "\\" if draw(st.booleans()) and where != "request_id" else name  # a trailing backslash
        if where == "feature":
            base["features"][name] = 1.0
        elif where == "model":
            return json.dumps({**base, "model": name}).encode()  # not a declared model either
        else:
            base[where] = name
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
    out = decode_any(raw, topic="predictions", partition=3, offset=offset, options=OPTS, now=NOW)
    assert isinstance(out, Rejection), raw[:200]
    if out.timestamp is not None:  # a rejection is counted in a window only at a sane time
        assert NOW - 30 * 86_400.0 <= out.timestamp <= NOW + 600
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
        out = decode_any(raw, topic="predictions", partition=0, offset=offset, options=OPTS, now=NOW)
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


#: one instant (NOW - 1 h) in every form a producer may send it
_INSTANT = NOW - 3_600.0
TIME_FORMS = [_INSTANT, int(_INSTANT), _INSTANT * 1e3, int(_INSTANT * 1e3), _INSTANT * 1e6, int(_INSTANT * 1e9),
              str(int(_INSTANT)), str(int(_INSTANT * 1e3)), "2026-01-01T00:00:00Z", "2026-01-01T00:00:00.123+02:00",
              "2026-01-01T00:00:00", "2026-01-01", 0, 7_258_118_400, 7_258_118_399_999]


@st.composite
def near_valid(draw: st.DrawFn) -> bytes:
    """Valid events, malformed ones, and valid ones with odd but legal variations (labels, times in every unit,
    string/bool/null features, names with spaces, commas, quotes and Unicode, extra fields): the one-pass
    decoder must agree with the validating one."""
    kind = draw(st.sampled_from(["malformed", "valid", "variant", "label"]))
    if kind == "malformed":
        return draw(malformed())
    base = valid(draw(st.integers(0, 10_000)))
    times = st.one_of(st.sampled_from(TIME_FORMS), st.floats(-1e20, 1e20), st.integers(-10**20, 10**20))
    if kind == "label":
        return json.dumps({"model": base["model"], "request_id": draw(st.one_of(st.just(base["request_id"]),
                                                                               st.text(max_size=8))),
                           "timestamp": draw(times),
                           "label": draw(st.one_of(st.booleans(), st.integers(-5, 5), st.text(max_size=5), st.none()))
                           }).encode()
    if kind == "variant":
        name_chars = st.one_of(st.characters(blacklist_categories=["Cs"]), st.sampled_from(list(' ,="#\\é😀\n\t')))
        base["features"][draw(st.text(name_chars, max_size=210))] = draw(
            st.one_of(st.none(), st.booleans(), st.text(max_size=20), st.floats(allow_nan=False, allow_infinity=False)))
        base["timestamp"] = draw(times)
        base[draw(st.sampled_from(["extra", "model_version", "error", "request_id"]))] = draw(
            st.one_of(st.none(), st.text(name_chars, max_size=5)))
    return json.dumps(base).encode()


options = st.builds(
    DecodeOptions, max_bytes=st.just(50_000), models=st.sampled_from([None, frozenset({"m"})]),
    max_future_skew_s=st.sampled_from([None, 0.0, 600.0]), max_event_age_s=st.sampled_from([None, 7_200.0]),
    timestamp_unit=st.sampled_from(["auto", "s", "ms", "us", "ns"]))


@settings(max_examples=3_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(near_valid(), options, st.sampled_from([None, NOW]))
def test_one_pass_decoder_agrees_with_the_validating_decoder(raw, opts, now):
    """Same accept/reject decision and the same event, whatever the options and the clock."""
    from monitor.events import _decode, _decode_fast

    def reject(reason: str, model: str | None = None, ts: float | None = None) -> Rejection:
        return Rejection(reason=reason, raw=raw, model=model, timestamp=ts)

    fast = _decode_fast(raw, opts, now)
    try:
        slow = _decode(raw, reject, opts, now)
    except RecursionError:
        slow = reject("nested too deeply")
    if fast is None:
        assert isinstance(slow, Rejection), raw[:300]
    else:
        assert not isinstance(slow, Rejection), (raw[:200], slow.reason)
        assert fast == slow




PRODUCER_FIELDS = {"model": "model_name", "request_id": "meta.id", "timestamp": "meta.ts", "features": "payload.inputs",
                   "prediction": "output", "score": "proba", "latency_ms": "latency", "error": "err",
                   "label": "y", "model_version": "meta.version"}


@settings(max_examples=1_500, deadline=None, suppress_health_check=list(HealthCheck))
@given(near_valid(), st.sampled_from([None, NOW]))
def test_field_mapping_decodes_like_driftline_names(raw, now):
    """A producer's event under its own (nested) field names, with ``fields`` mapping them, is accepted or
    rejected exactly as the same event under Driftline's names, with the same values."""
    try:
        event = json.loads(raw)
        producer = json.dumps(producer_shaped(event, PRODUCER_FIELDS)).encode() if isinstance(event, dict) else b""
    except (ValueError, RecursionError):  # not JSON, or too deep for the stdlib json this test uses
        return
    if not producer or len(producer) > 50_000:
        return
    plain = decode_any(raw, options=OPTS, now=now)
    mapped_opts = DecodeOptions(max_bytes=50_000, models=frozenset({"m"}), max_event_age_s=30 * 86_400.0,
                                fields=tuple(PRODUCER_FIELDS.items()))
    mapped = decode_any(producer, options=mapped_opts, now=now)
    assert isinstance(mapped, Rejection) == isinstance(plain, Rejection), (raw[:200], producer[:200])
    if isinstance(mapped, Rejection):
        assert mapped.raw == producer  # the dead letter carries what the producer sent
        for ours, theirs in PRODUCER_FIELDS.items():  # reasons name the producer's fields, not ours
            assert f"$.{ours}`" not in mapped.reason or ours == theirs, mapped.reason
    else:
        assert mapped == plain


def test_valid_events_take_the_one_pass_decoder():
    from monitor.events import _decode_fast

    assert _decode_fast(json.dumps(valid(3)).encode(), OPTS, NOW) is not None
    label = {"model": "m", "request_id": "r", "timestamp": "2026-01-01T00:00:00Z", "label": True}
    assert _decode_fast(json.dumps(label).encode(), DecodeOptions(), None) is not None
    assert _decode_fast(json.dumps(valid(3)).encode(), DecodeOptions(models=frozenset({"other"})), None) is None
    odd = {**valid(3), "model_version": "v 1,2=\"3\" é", "features": {"a b,c=d": 1.0, "C:\\dir": 2.0}}
    assert _decode_fast(json.dumps(odd).encode(), DecodeOptions(), NOW) is not None  # legal names stay fast


def test_far_future_event_mid_stream_does_not_stop_the_model():
    """One event dated 2100 (and one from 1999) in the middle of a stream, decoded against the wall clock as
    the worker does: both are dead-lettered, every window still closes with exactly its events, none late."""
    events = [dict(valid(i), timestamp=T0 + i * 0.1) for i in range(3_000)]  # 5 one-minute windows
    stream = [json.dumps(e).encode() for e in events]
    stream.insert(1_500, json.dumps(dict(valid(99_999), timestamp="2100-01-01T00:00:00Z")).encode())
    stream.insert(1_700, json.dumps(dict(valid(99_998), timestamp="1999-01-01T00:00:00Z")).encode())
    now = T0 + 300 + 60
    mon = Monitor(MonitorSettings(window="1m", allowed_lateness="0s", models=["m"]), {"m": REF})
    outs = [decode_any(raw, offset=i, options=OPTS, now=now) for i, raw in enumerate(stream)]
    dead = [o for o in outs if isinstance(o, Rejection)]
    assert [d.offset for d in dead] == [1_500, 1_700]
    assert "ahead of the wall clock" in dead[0].reason and "behind the wall clock" in dead[1].reason
    assert all(d.timestamp is None and d.model == "m" for d in dead)
    points = []
    for start in range(0, len(outs), 500):  # observe and advance chunk by chunk, as the worker does
        chunk = outs[start:start + 500]
        mon.reject([o for o in chunk if isinstance(o, Rejection)])
        mon.observe([o for o in chunk if not isinstance(o, Rejection)])
        points += mon.advance().points
    points += mon.close_all().points
    per_window = {p.time_ns: p.field("events") for p in points if p.measurement == "throughput"}
    assert sorted(per_window.values()) == [600] * 5
    late = sum(p.field("late") or 0 for p in points if p.measurement == "data_quality" and p.tag("feature") == "__event__")
    invalid = sum(p.field("invalid") or 0 for p in points
                  if p.measurement == "data_quality" and p.tag("feature") == "__event__")
    assert late == 0 and invalid == 2
