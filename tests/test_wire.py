"""The partial-window wire format: every WindowState field travels, and a round trip changes nothing."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import MonitorSettings
from monitor.core.aggregate import Batch, WindowState
from monitor.core.binning import FeatureBinner
from monitor.core.reference import build_profile
from monitor.core.segment_profiles import with_segments
from monitor.segments import segmenter_for
from monitor.types import PredictionEvent
from monitor.wire import (
    WIRE_FIELDS,
    PartialRecord,
    WatermarkRecord,
    apply_extras,
    decode,
    encode,
    extras_of,
    state_from_wire,
    state_to_wire,
    window_state_fields,
)

_TABLE = pd.DataFrame({"x": np.linspace(-3, 3, 500), "c": ["a", "b"] * 250, "prediction": [0, 1] * 250,
                       "score": np.linspace(0, 1, 500)})
REF = build_profile("m", _TABLE, built_at="2026-01-01T00:00:00Z")
#: with segments c=a and c=b: the sub-states travel too
SEG_REF = with_segments(REF, _TABLE, ["c"])


def test_every_window_state_field_has_a_wire_form():
    assert window_state_fields() == WIRE_FIELDS


def _state(seed: int, exact: bool, n: int) -> WindowState:
    rng = np.random.default_rng(seed)
    binner = FeatureBinner(SEG_REF)
    evs = [PredictionEvent("m", f"r{i}", 0.0, {"x": float(rng.normal()), "c": str(rng.choice(["a", "b", "z"]))},
                           prediction=int(rng.integers(2)), score=float(rng.uniform()),
                           latency_ms=float(rng.lognormal(3, 1)), error="boom" if rng.uniform() < 0.1 else None)
           for i in range(n)]
    s = WindowState.empty(binner, exact)
    batch = Batch.build(evs, binner)
    s.ingest(batch, np.arange(n), binner)
    seg = segmenter_for(binner, MonitorSettings(segments=["c"]))
    assert seg is not None
    seg.ingest(s, np.arange(n), seg.assign(batch))
    for e in evs[: n // 2]:
        s.perf.update(int(rng.integers(2)), e.prediction, "classification")
        for sub in (s.segments or {}).values():
            sub.perf.update(int(rng.integers(2)), e.prediction, "classification")
    s.late, s.invalid, s.duplicates, s.labels_unmatched = 3, 2, 1, 4
    return s


def _same(a: WindowState, b: WindowState) -> None:
    assert (a.segments or {}).keys() == (b.segments or {}).keys()
    for key, sub in (a.segments or {}).items():
        assert b.segments is not None
        _same(sub, b.segments[key])
    for name in ("num_counts", "num_missing", "num_oor", "cat_counts", "cat_missing", "cat_unseen"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for name in ("events", "errors", "est_correct_nano", "est_n", "late", "invalid", "duplicates",
                 "labels_unmatched", "error_top"):
        assert getattr(a, name) == getattr(b, name), name
    np.testing.assert_array_equal(a.latency.buckets, b.latency.buckets)
    assert (a.latency.count, a.latency.sum_us, a.latency.max) == (b.latency.count, b.latency.sum_us, b.latency.max)
    assert a.perf.values() == b.perf.values() and a.perf.n == b.perf.n
    if a.raw is not None:
        assert b.raw is not None
        for x, y in zip(a.raw, b.raw, strict=True):
            np.testing.assert_array_equal(np.concatenate(x), np.concatenate(y))


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.booleans(), st.integers(1, 300))
def test_partial_round_trip(seed, exact, n):
    s = _state(seed, exact, n)
    rec = PartialRecord(model="m", version="v1", start=60.0, size=60.0, source=3, epoch=7, seq=0, profile="abc",
                        state=state_to_wire(s), warmup=[{"x": 1.0, "timestamp": 1.0, "request_id": "r"}])
    raw = encode(rec)
    back = decode(raw)
    assert isinstance(back, PartialRecord) and back.state is not None
    _same(s, state_from_wire(back.state))
    # compact: bin counts travel as raw buffers, not as lists of numbers
    assert len(raw) < 4 * s.nbytes() + 2_000


def test_extras_replace_absolute_values():
    a, b = _state(1, False, 100), _state(2, False, 100)
    apply_extras(a, decode(encode(PartialRecord("m", None, 0.0, 60.0, 0, 0, 1, None, None,
                                                extras=extras_of(b)))).extras)  # type: ignore[arg-type]
    assert (a.late, a.invalid, a.duplicates, a.labels_unmatched) == (b.late, b.invalid, b.duplicates, b.labels_unmatched)
    assert a.perf.values() == b.perf.values() and a.perf.n == b.perf.n
    assert a.segments is not None and b.segments is not None and a.segments.keys() == b.segments.keys()
    for key, sub in a.segments.items():  # the segments' joined labels are extras too
        assert sub.perf.values() == b.segments[key].perf.values() and sub.perf.n == b.segments[key].perf.n > 0


def test_watermark_round_trip():
    w = WatermarkRecord(source=2, epoch=5, seq=9, overall=None, idle=True, models={"m": 120.0})
    assert decode(encode(w)) == w
