"""Producers as they are: timestamps in any unit or from the Kafka record, their own field names, a clock
that is ahead of theirs (wall-clock sanity), byte-order marks. Unit tests of monitor/events.py; the
equivalence of the decode paths is property-tested in tests/test_hostile_input.py."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import MonitorSettings
from monitor.events import DecodeOptions, decode_any, decode_lines, strip_bom
from monitor.timestamps import parse_timestamp
from monitor.types import LabelEvent, PredictionEvent, Rejection

T = 1_767_225_600.0  # 2026-01-01T00:00:00Z
NOW = T + 60.0


def event(**kw: object) -> bytes:
    base = {"model": "m", "request_id": "r1", "timestamp": T, "features": {"a": 1.5}, "prediction": 1}
    base.update(kw)
    return json.dumps(base).encode()


@pytest.mark.parametrize("value", [T, int(T), T * 1e3, int(T * 1e3), T * 1e6, int(T * 1e6), T * 1e9,
                                   int(T * 1e9), str(int(T)), str(int(T * 1e3)), "2026-01-01T00:00:00Z",
                                   "2026-01-01T01:00:00+01:00"])
def test_auto_unit_reads_every_common_form(value: object) -> None:
    out = decode_any(event(timestamp=value), now=NOW)
    assert isinstance(out, PredictionEvent), getattr(out, "reason", "")
    assert out.timestamp == pytest.approx(T, abs=1e-6)


@pytest.mark.parametrize("unit, value", [("s", T), ("ms", T * 1e3), ("us", T * 1e6), ("ns", T * 1e9)])
def test_fixed_unit(unit: str, value: float) -> None:
    opts = DecodeOptions(timestamp_unit=unit)  # type: ignore[arg-type]
    assert decode_any(event(timestamp=value), options=opts).timestamp == pytest.approx(T)
    wrong = decode_any(event(timestamp=value * 1000), options=opts)
    assert isinstance(wrong, Rejection) and f"(timestamp_unit {unit})" in wrong.reason


def test_auto_unit_magnitude_boundaries() -> None:
    """Documented in monitor/timestamps.py: < 1e11 s, < 1e14 ms, < 1e17 µs, else ns."""
    assert parse_timestamp(99_999_999_999.0 / 100) == pytest.approx(999_999_999.99)
    assert parse_timestamp(100_000_000_000) == 100_000_000.0  # 1e11 → ms → 1973-03-03
    assert parse_timestamp(10**14) == 10**8  # µs
    assert parse_timestamp(10**17) == 10**8  # ns
    with pytest.raises(ValueError, match="read as seconds"):
        parse_timestamp(99_999_999_999)  # seconds → year 5138: refused, not read as ms


@settings(max_examples=500, deadline=None)
@given(st.floats(0, 7_258_118_399), st.sampled_from([("s", 1), ("ms", 1e3), ("us", 1e6), ("ns", 1e9)]))
def test_every_unit_round_trips_for_any_date_after_1973(ts: float, unit: tuple[str, float]) -> None:
    name, scale = unit
    if ts < 100_000_000 and name != "s":  # before 1973-03-03: auto reads a ms/µs/ns number as a smaller unit
        return
    assert parse_timestamp(ts * scale) == pytest.approx(ts, rel=1e-12, abs=1e-6)
    assert parse_timestamp(ts * scale, name) == pytest.approx(ts, rel=1e-12, abs=1e-6)  # type: ignore[arg-type]


def test_far_future_event_is_rejected_against_the_wall_clock() -> None:
    out = decode_any(event(timestamp="2100-01-01T00:00:00Z"), now=NOW, topic="predictions", offset=9)
    assert isinstance(out, Rejection)
    assert out.reason == ("invalid event: timestamp 2100-01-01T00:00:00Z is 27,028 days ahead of the wall clock "
                          "(max_future_skew 10m)")
    assert out.timestamp is None and out.model == "m"  # counted for the model, never at the bogus time
    assert isinstance(decode_any(event(timestamp=NOW + 599), now=NOW), PredictionEvent)
    assert isinstance(decode_any(event(timestamp=NOW + 601), now=NOW), Rejection)
    assert isinstance(decode_any(event(timestamp="2100-01-01T00:00:00Z")), PredictionEvent)  # no clock, no rule
    label = json.dumps({"model": "m", "request_id": "r", "timestamp": NOW + 3600, "label": 1}).encode()
    assert "ahead of the wall clock" in decode_any(label, now=NOW).reason


def test_max_event_age_and_disabled_skew() -> None:
    opts = DecodeOptions(max_future_skew_s=None, max_event_age_s=86_400.0, age_text="1d")
    assert isinstance(decode_any(event(timestamp="2100-01-01T00:00:00Z"), options=opts, now=NOW), PredictionEvent)
    old = decode_any(event(timestamp=NOW - 2 * 86_400), options=opts, now=NOW)
    assert isinstance(old, Rejection) and old.reason.endswith("is 2 days behind the wall clock (max_event_age 1d)")
    assert isinstance(decode_any(event(timestamp=NOW - 3600), options=opts, now=NOW), PredictionEvent)


def test_options_from_settings() -> None:
    s = MonitorSettings(max_future_skew="5m", max_event_age="7d", timestamp_unit="ms", models=["m"],
                        fields={"model": "model_name", "features": "payload.inputs", "score": "score"})
    opts = DecodeOptions.from_settings(s)
    assert (opts.max_future_skew_s, opts.max_event_age_s, opts.skew_text, opts.age_text) == (300, 604_800, "5m", "7d")
    assert opts.timestamp_unit == "ms" and opts.models == frozenset({"m"})
    assert opts.fields == (("features", "payload.inputs"), ("model", "model_name"))  # identity entries dropped
    assert DecodeOptions.from_settings(MonitorSettings(max_future_skew=None)).max_future_skew_s is None
    assert not DecodeOptions.from_settings(MonitorSettings()).mapped  # the default keeps the one-pass decoder


FIELDS = (("model", "model_name"), ("timestamp", "ts"), ("features", "payload.inputs"), ("score", "proba"),
          ("request_id", "id"), ("prediction", "output"), ("latency_ms", "latency"), ("error", "err"),
          ("label", "y"), ("model_version", "meta.version"))


def test_field_mapping_with_nested_paths() -> None:
    opts = DecodeOptions(fields=FIELDS)
    raw = json.dumps({"model_name": "fraud", "ts": int(T * 1000), "id": "a1", "output": 1, "proba": 0.9,
                      "latency": 12.5, "meta": {"version": "v2"}, "payload": {"inputs": {"amount": 3.0}},
                      "model": "ignored: not the mapped field"}).encode()
    out = decode_any(raw, options=opts)
    assert out == PredictionEvent(model="fraud", request_id="a1", timestamp=T, features={"amount": 3.0},
                                  prediction=1, model_version="v2", score=0.9, latency_ms=12.5)
    label = decode_any(json.dumps({"model_name": "fraud", "ts": T, "id": "a1", "y": True}).encode(), options=opts)
    assert label == LabelEvent(model="fraud", request_id="a1", timestamp=T, label=True)


def test_field_mapping_reasons_name_the_producers_fields() -> None:
    opts = DecodeOptions(fields=FIELDS)
    raw = json.dumps({"model_name": "fraud", "ts": T, "id": "a1", "output": 1, "proba": "high",
                      "payload": {"inputs": {"amount": 3.0}}}).encode()
    out = decode_any(raw, options=opts, topic="t", offset=4)
    assert isinstance(out, Rejection) and "`$.proba`" in out.reason and out.raw == raw
    missing = decode_any(json.dumps({"model_name": "fraud", "ts": T, "id": "a1", "output": 1}).encode(), options=opts)
    assert isinstance(missing, Rejection) and "`payload.inputs`" in missing.reason
    assert "top level" in decode_any(b"[1]", options=opts).reason
    assert decode_any(b"{", options=opts).reason.startswith("invalid JSON")


def test_timestamp_source_record() -> None:
    opts = DecodeOptions(timestamp_source="record")
    out = decode_any(event(timestamp="not even a time"), options=opts, record_timestamp_ms=int(T * 1000) + 250)
    assert isinstance(out, PredictionEvent) and out.timestamp == T + 0.25
    no_ts = json.loads(event())
    del no_ts["timestamp"]
    assert decode_any(json.dumps(no_ts).encode(), options=opts, record_timestamp_ms=int(T * 1000)).timestamp == T
    for missing in (None, -1):
        out = decode_any(json.dumps(no_ts).encode(), options=opts, record_timestamp_ms=missing)
        assert isinstance(out, Rejection) and "no record timestamp" in out.reason
    future = decode_any(event(), options=opts, record_timestamp_ms=int((NOW + 3600) * 1000), now=NOW)
    assert isinstance(future, Rejection) and "ahead of the wall clock" in future.reason


def test_decode_lines_strips_byte_order_marks_and_blank_lines() -> None:
    lines = [b"\xef\xbb\xbf" + event() + b"\r\n", b"\n", b"   \n", event(request_id="r2") + b"\n"]
    out = list(decode_lines(lines, now=NOW))
    assert [type(o) for o in out] == [PredictionEvent, PredictionEvent]
    assert strip_bom(b"\xef\xbb\xbf") == b"" and strip_bom(b"{}") == b"{}"


def test_names_the_line_protocol_can_carry_are_accepted() -> None:
    odd = event(model="fraud model, v=2", model_version='"v2"', features={"C:\\path": 1.0, "a b=c,d": 2.0, "é😀": 3.0})
    out = decode_any(odd)
    assert isinstance(out, PredictionEvent) and set(out.features) == {"C:\\path", "a b=c,d", "é😀"}


@settings(max_examples=1_000, deadline=None)
@given(st.floats(0, 7_258_118_399), st.floats(0, 7_258_118_399), st.sampled_from([None, 0.0, 600.0, 86_400.0]),
       st.sampled_from([None, 60.0, 30 * 86_400.0]))
def test_wall_clock_rule_is_exactly_the_window_around_now(ts, now, skew, age):
    opts = DecodeOptions(max_future_skew_s=skew, max_event_age_s=age)
    out = decode_any(event(timestamp=ts), options=opts, now=now)
    sane = (skew is None or ts <= now + skew) and (age is None or ts >= now - age)
    assert isinstance(out, PredictionEvent) == sane, getattr(out, "reason", "")
    if not sane:
        assert "wall clock" in out.reason and out.timestamp is None


def test_reasons_spell_the_limit_as_configured_or_derived():
    far = event(timestamp=NOW + 7200)
    assert decode_any(far, options=DecodeOptions(max_future_skew_s=60.0), now=NOW).reason.endswith(
        "(max_future_skew 1m)")
    s = MonitorSettings(max_future_skew="90s")
    assert decode_any(far, options=DecodeOptions.from_settings(s), now=NOW).reason.endswith("(max_future_skew 90s)")
