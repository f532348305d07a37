"""Input problems that are counted, not lost or hidden (docs/measurements.md, docs/events.md): features sent
with the wrong JSON type, and repeated request ids — with and without a labels topic, over any keying."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.aggregate import Batch, WindowState
from monitor.core.binning import FeatureBinner
from monitor.pipeline import Monitor
from monitor.types import LabelEvent, PredictionEvent
from tests.test_pipeline import T0, events, points_by, reference, settings_
from tests.test_two_stage import assert_same, multi, single, stream
from tests.test_two_stage import reference as ref2
from tests.test_two_stage import settings_ as settings2


def _quality(em, feature):
    pts = [p for p in points_by(em, "data_quality") if p.tag("feature") == feature]
    assert len(pts) == 1, pts
    return pts[0]


def test_numbers_as_strings_and_categories_as_numbers_are_counted_per_feature_and_still_used():
    binner = FeatureBinner(reference())
    good = events(6, T0, 10)
    sent = [*good[:3],
            PredictionEvent("m", "s1", T0 + 1, {"x": "0.25", "y": 5.0, "c": "a"}, 1, "v1", 0.5, 10.0),
            PredictionEvent("m", "s2", T0 + 2, {"x": "abc", "y": True, "c": 7}, 1, "v1", 0.5, 10.0),
            PredictionEvent("m", "s3", T0 + 3, {"x": 1.0, "y": 5.0, "c": 2.0}, 1, "v1", 0.5, 10.0)]
    batch = Batch.build(sent, binner)
    x, y = binner.numeric_names.index("x"), binner.numeric_names.index("y")
    assert batch.numeric[3, x] == 0.25  # coerced for the statistics
    assert np.isnan(batch.numeric[4, x]) and np.isnan(batch.numeric[4, y])  # not a number: missing
    state = WindowState.empty(binner)
    state.ingest(batch, np.arange(len(sent)), binner)
    assert state.num_mismatch[x] == 2 and state.num_mismatch[y] == 1
    assert state.cat_mismatch[binner.categorical_names.index("c")] == 2
    assert state.num_missing[x] == 1
    # a subset of rows counts its own mismatches only
    part = WindowState.empty(binner)
    part.ingest(batch, np.array([0, 3]), binner)
    assert part.num_mismatch[x] == 1 and part.num_mismatch[y] == 0 and part.cat_mismatch.sum() == 0


def test_type_mismatches_reach_the_data_quality_points():
    mon = Monitor(settings_(), {"m": reference()})
    evs = events(200, T0, 290)
    evs[5] = PredictionEvent("m", "odd", T0 + 1, {"x": "1.5", "y": 4.0, "c": 3}, 0, "v1", 0.2, 10.0)
    mon.observe(evs)
    em = mon.close_all()
    assert _quality(em, "x").field("type_mismatch") == 1
    assert _quality(em, "y").field("type_mismatch") == 0
    assert _quality(em, "c").field("type_mismatch") == 1
    assert _quality(em, "x").field("missing_rate") == 0.0  # "1.5" was used as 1.5
def _dup(e: PredictionEvent, **kw) -> PredictionEvent:
    fields = {f: getattr(e, f) for f in e.__struct_fields__}
    fields.update(kw)
    return PredictionEvent(**fields)


@pytest.mark.parametrize("labels_topic", ["labels", ""])
def test_a_repeated_request_id_is_counted_once_and_as_a_duplicate(labels_topic):
    st_ = settings_(labels_topic=labels_topic)
    evs = events(300, T0, 290)
    # three copies of 50 events (a retrying producer), one copy with other values: none may count
    copies = [_dup(e, features={"x": 9.0, "y": 9.0, "c": "z"}, latency_ms=5000.0) for e in evs[:50]]
    stream = sorted([*evs, *evs[:50], *copies], key=lambda e: e.timestamp)
    once, twice = Monitor(st_, {"m": reference()}), Monitor(st_, {"m": reference()})
    once.observe(evs)
    for i in range(0, len(stream), 70):
        twice.observe(stream[i:i + 70])
    a, b = once.close_all(), twice.close_all()
    quality = _quality(b, "__event__")
    assert quality.field("duplicates") == 100
    assert _quality(a, "__event__").field("duplicates") == 0
    keep = {(p.series_key()) for p in a.points if p.measurement != "data_quality" or p.tag("feature") != "__event__"}
    got = {p.series_key(): p for p in b.points}
    for p in a.points:
        if p.series_key() in keep:
            assert got[p.series_key()].fields == p.fields, p
    assert points_by(b, "throughput")[0].field("events") == 300


def test_duplicate_detection_ends_at_its_horizon():
    """Without a labels topic, a request id is remembered for window + allowed_lateness (or dedup_horizon)."""
    st_ = settings_(labels_topic="", window="1m", allowed_lateness="5s")
    first = events(20, T0, 10)
    later = [_dup(e, timestamp=e.timestamp + 600) for e in first[:5]]  # 10 min later: a new request
    mon = Monitor(st_, {"m": reference()})
    mon.observe(first)
    mon.observe(events(20, T0 + 300, 10, seed=7))  # moves the watermark past the horizon
    mon.advance()
    mon.observe(later)
    em = mon.close_all()
    assert sum(p.field("duplicates") for p in points_by(em, "data_quality") if p.tag("feature") == "__event__") == 0
    st_long = settings_(labels_topic="", window="1m", allowed_lateness="5s", dedup_horizon="1h")
    mon = Monitor(st_long, {"m": reference()})
    mon.observe(first)
    mon.observe(events(20, T0 + 300, 10, seed=7))
    mon.advance()
    mon.observe(later)
    em = mon.close_all()
    assert sum(p.field("duplicates") for p in points_by(em, "data_quality") if p.tag("feature") == "__event__") == 5


def test_a_label_joins_the_first_copy_of_a_repeated_prediction():
    st_ = settings_()
    e = events(1, T0, 1)[0]
    other = _dup(e, prediction=1 - e.prediction)
    mon = Monitor(st_, {"m": reference()})
    mon.observe([e, other, LabelEvent("m", e.request_id, T0 + 5, e.prediction)])
    em = mon.close_all()
    acc = [p for p in points_by(em, "performance") if p.tag("metric") == "accuracy"]
    assert acc and acc[0].field("value") == 1.0 and acc[0].field("n") == 1


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 4), st.sampled_from(["request_id", "model"]), st.integers(0, 10_000), st.booleans())
def test_duplicates_over_any_sources_keyed_by_request_id_or_model_give_the_single_source_points(k, keying, seed,
                                                                                                  labels):
    rnd = np.random.default_rng(seed)
    events = stream(seed % 5, windows=3, per_window=150)
    preds = [e for e in events if isinstance(e, PredictionEvent)]
    copies = [_dup(preds[i], timestamp=preds[i].timestamp + float(rnd.uniform(0, 20)), latency_ms=999.0)
              for i in rnd.choice(len(preds), 60, replace=False).tolist()]
    stream_ = sorted([*events, *copies], key=lambda e: e.timestamp)
    if not labels:
        stream_ = [e for e in stream_ if isinstance(e, PredictionEvent)]
    st_ = settings2() if labels else settings2(labels_topic="")
    refs = {"a": ref2("a"), "b": ref2("b", seed=1)}
    expected = single(stream_, refs, st_)
    assert sum(p.field("duplicates") for p in expected.values()
               if p.measurement == "data_quality" and p.tag("feature") == "__event__") == 60
    assert_same(expected, multi(stream_, refs, st_, k, keying, seed, chaos=True))
