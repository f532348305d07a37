"""The batch decoder against the validating decoder, record by record: for any batch of raw values — well
formed, odd or hostile — decode_batch accepts and rejects exactly what decode_any does, with the same values,
and the columns it bins straight from JSON equal those built from decode_any's events."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import orjson
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.core.aggregate import Batch
from monitor.core.binning import FeatureBinner
from monitor.core.reference import build_profile
from monitor.events import DecodeOptions, decode_any
from monitor.fastdecode import decode_batch
from monitor.types import LabelEvent, PredictionEvent, Rejection

T0 = 1_767_225_600.0
rng = np.random.default_rng(0)
_N = 600
REF_A = build_profile("a", pd.DataFrame({
    "x": rng.normal(0, 1, _N), "y": rng.integers(0, 5, _N).astype(float), "c": rng.choice(["p", "q", "r"], _N),
    "flag": rng.choice([True, False], _N), "score": rng.uniform(0, 1, _N), "prediction": rng.integers(0, 2, _N)}),
    built_at="2026-01-01T00:00:00Z")
REF_C = build_profile("c", pd.DataFrame({"x": rng.normal(0, 1, _N), "prediction": rng.choice(["cat", "dog"], _N)}),
                      built_at="2026-01-01T00:00:00Z")
BINNERS = {"a": FeatureBinner(REF_A), "c": FeatureBinner(REF_C)}

feature_values = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False), st.integers(-10**6, 10**6), st.sampled_from(["p", "q", "r", "zz", "30", ""]),
    st.booleans(), st.none(), st.just([1]), st.just({"k": 1}), st.text(max_size=4), st.just("x" * 10_001))
names = st.sampled_from(["x", "y", "c", "flag", "extra", "", "n" * 201, "new\nline", "é"])


def rarely(common: st.SearchStrategy, *odd: st.SearchStrategy) -> st.SearchStrategy:
    """``common`` 80 % of the time, else one of ``odd``."""
    return st.integers(0, 9).flatmap(lambda k: common if k < 8 else st.one_of(*odd))


timestamps = rarely(st.floats(T0, T0 + 600), st.integers(int(T0), int(T0) + 600), st.just("2026-01-01T00:01:00Z"),
                    st.just("2026-01-01T00:01:00"), st.floats(T0 * 1000, T0 * 1000 + 6e5), st.just(T0 * 1e6),
                    st.just(T0 * 1e9), st.just(-1e11), st.just(str(int(T0))), st.just(T0 + 86_400 * 3),
                    st.just(T0 - 86_400 * 30), st.just(-1.0), st.just("soon"), st.none())
#: names that must not reach the metrics store (control characters, a backslash, DEL, C1, U+2028) and fine ones
odd_names = st.sampled_from(["a\nb", "tab\there", "back\\slash", "del\x7f", "c1\x85", "line\u2028sep", "é", "日本"])


@st.composite
def record(draw: st.DrawFn) -> bytes:
    kind = draw(rarely(st.just("prediction"), st.just("label"), st.just("label"), st.just("broken"), st.just("other")))
    if kind == "broken":  # (other: a record of neither kind)
        return draw(st.sampled_from([b'{"model": "a"', b"[1, 2]", b'"text"', b"", b"\xff\xfe", b'{"model": "a",}',
                                     b'{"model": NaN}', b"[" * 3000]))
    ev: dict[str, object] = {"model": draw(rarely(st.sampled_from(["a", "b", "c"]), st.sampled_from(["", "d" * 201]),
                                                  odd_names)),
                             "request_id": draw(rarely(st.sampled_from(["r1", "r2", "r3"]), st.just(""), odd_names)),
                             "timestamp": draw(timestamps)}
    if kind == "label":
        ev["label"] = draw(st.one_of(st.integers(0, 1), st.sampled_from(["cat", "dog"]), st.booleans(), st.none()))
    elif kind == "prediction":
        clean = st.fixed_dictionaries({"x": st.floats(-3, 3), "y": st.integers(0, 4), "c": st.sampled_from(["p", "q"]),
                                       "flag": st.booleans()})
        ev["features"] = draw(rarely(clean, st.dictionaries(names, feature_values, max_size=6), st.just(None),
                                     st.just([1.0]), clean.map(lambda f: {**f, "extra": 1})))
        ev["prediction"] = draw(rarely(st.one_of(st.integers(0, 1), st.floats(0, 1), st.sampled_from(["cat", "dog"])),
                                       st.sampled_from(["1", "yes"]), st.none(), st.booleans()))
        for name, values in (("score", rarely(st.floats(0, 1), st.floats(-0.5, 1.5), st.none())),
                             ("latency_ms", rarely(st.floats(0, 100), st.floats(-5, 100), st.none())),
                             ("error", rarely(st.none(), st.just("boom"))),
                             ("model_version", rarely(st.sampled_from(["v1", "v2"]), st.none(), st.just(3),
                                                      odd_names))):
            if draw(st.booleans()):
                ev[name] = draw(values)
    if draw(st.integers(0, 9)) == 0:
        ev.pop(draw(st.sampled_from(["model", "request_id", "timestamp", "features", "prediction"])), None)
    if draw(st.booleans()):
        ev["trace_id"] = "t"
    if draw(st.integers(0, 9)) == 0:  # a producer's own field names (``fields`` maps them)
        ev = {"svc": ev.pop("model", None), "payload": {"inputs": ev.pop("features", None)}, **ev}
    return orjson.dumps(ev)


NOW = T0 + 300
#: decode options as the worker builds them from the settings
OPTIONS = st.sampled_from([
    DecodeOptions(), DecodeOptions(timestamp_unit="ms"), DecodeOptions(timestamp_unit="s"),
    DecodeOptions(timestamp_unit="us"), DecodeOptions(max_future_skew_s=None, max_event_age_s=7 * 86_400.0),
    DecodeOptions(models=frozenset({"a", "c"})), DecodeOptions(max_bytes=150),
    DecodeOptions(fields=(("features", "payload.inputs"), ("model", "svc"))),
    DecodeOptions(timestamp_source="record")])


def _same(a: np.ndarray | None, b: np.ndarray | None, shape: tuple[int, ...]) -> None:
    a = np.zeros(shape, dtype=bool) if a is None else a
    b = np.zeros(shape, dtype=bool) if b is None else b
    np.testing.assert_array_equal(a, b)


def check(values: list[bytes], models: frozenset[str] | None = None, max_bytes: int = 1_000_000,
          options: DecodeOptions | None = None, now: float | None = None) -> None:
    offsets = [100 + i for i in range(len(values))]
    record_ms = [int((T0 + i) * 1000) for i in range(len(values))]
    opts = replace(options or DecodeOptions(), max_bytes=max_bytes if options is None else options.max_bytes)
    if models is not None:
        opts = replace(opts, models=models)
    got = decode_batch(values, binner_of=BINNERS.get, options=opts, now=now, record_timestamps_ms=record_ms,
                       topic="t", partition=3, offsets=offsets)
    expected = [decode_any(v, topic="t", partition=3, offset=o, options=opts, now=now, record_timestamp_ms=ms)
                for v, o, ms in zip(values, offsets, record_ms, strict=True)]
    assert got.n == len(values)
    assert got.rejected == [(i, e) for i, e in enumerate(expected) if isinstance(e, Rejection)]
    assert got.labels == [(i, e) for i, e in enumerate(expected) if isinstance(e, LabelEvent)]
    preds = {i: e for i, e in enumerate(expected) if isinstance(e, PredictionEvent)}
    seen = set()
    for model, (rows, pos) in got.groups.items():
        assert pos.tolist() == sorted(pos.tolist())
        events = [preds[i] for i in pos.tolist()]
        assert all(e.model == model for e in events)
        assert list(rows) == events
        assert rows.ts.tolist() == [e.timestamp for e in events]
        assert rows.versions() == [e.model_version for e in events]
        assert rows.predictions() == [e.prediction for e in events]
        seen |= set(pos.tolist())
        binner = BINNERS.get(model)
        fast, slow = rows.batch(binner), Batch.build(events, binner)
        for name in ("ts", "latency", "error", "p_correct"):
            np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))
        assert list(fast.error_text or []) == [e.error for e in events]
        if binner is None:
            assert fast.numeric is None and fast.cat_codes is None
            continue
        np.testing.assert_array_equal(fast.numeric, slow.numeric)
        np.testing.assert_array_equal(fast.cat_codes, slow.cat_codes)
        _same(fast.num_mismatch, slow.num_mismatch, slow.numeric.shape)
        _same(fast.cat_mismatch, slow.cat_mismatch, slow.cat_codes.shape)
    assert seen == set(preds)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record(), max_size=25), OPTIONS, st.sampled_from([None, NOW]))
def test_decode_batch_agrees_with_decode_any(values, options, now):
    check(values, options=options, now=now)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=60), max_size=10))
def test_arbitrary_bytes(values):
    check(values)


def test_a_clean_batch_takes_the_fast_path_for_every_row():
    values = [orjson.dumps({"model": "a", "request_id": f"r{i}", "timestamp": T0 + i,
                            "features": {"x": 0.5 * i, "y": 2, "c": "pq"[i % 2], "flag": i % 3 == 0},
                            "prediction": i % 2, "score": 0.25, "latency_ms": 3.0, "error": None})
              for i in range(50)]
    got = decode_batch(values, binner_of=BINNERS.get)
    rows, _ = got.groups["a"]
    assert all(type(r) is not PredictionEvent for r in rows.items)  # no event object was made
    assert rows.block is not None and rows.binner is BINNERS["a"]
    check(values)


def test_a_clean_batch_of_several_models_is_grouped_in_order_of_first_appearance():
    values = [orjson.dumps({"model": "cab"[i % 3], "request_id": f"r{i}", "timestamp": T0 + i,
                            "features": {"x": 0.5 * i, "c": "pq"[i % 2]}, "prediction": i % 2, "score": 0.25})
              for i in range(30)]
    got = decode_batch(values, binner_of=BINNERS.get)
    assert list(got.groups) == ["c", "a", "b"]
    assert got.groups["a"][1].tolist() == list(range(1, 30, 3))
    check(values)
    check(values, models=frozenset({"a", "c"}))  # an undeclared model among them: the validating way


def test_rows_outside_the_reference_struct_mix_with_fast_rows_in_offset_order():
    def ev(i, **features):
        return orjson.dumps({"model": "a", "request_id": f"r{i}", "timestamp": T0 + i, "prediction": 1,
                             "score": 0.5, "features": {"x": 1.0, "y": 2, "c": "p", "flag": True, **features}})

    values = [ev(0), ev(1, extra="kept out"), ev(2, x="30"), ev(3, c=7), ev(4),
              orjson.dumps({"model": "a", "request_id": "r5", "timestamp": "2026-01-01T00:00:05Z", "prediction": 0,
                            "features": {"x": 2.0}}),
              ev(6, y=None), ev(7, x=[1])]
    got = decode_batch(values, binner_of=BINNERS.get)
    rows, pos = got.groups["a"]
    assert pos.tolist() == [0, 1, 2, 3, 4, 5, 6]
    kinds = ["event" if type(r) is PredictionEvent else "record" for r in rows.items]
    assert kinds == ["record", "event", "event", "event", "record", "record", "record"]
    assert [i for i, _ in got.rejected] == [7]
    batch = rows.batch(BINNERS["a"])
    x = BINNERS["a"].numeric_names.index("x")
    assert batch.numeric[2, x] == 30.0 and batch.num_mismatch[2, x] and batch.num_mismatch.sum() == 1
    assert batch.cat_mismatch[3].sum() == 1
    check(values)
