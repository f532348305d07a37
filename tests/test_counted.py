"""Input problems that are counted, not lost or hidden (docs/measurements.md, docs/events.md): features sent
with the wrong JSON type, and repeated request ids — with and without a labels topic, over any keying."""

from __future__ import annotations

import numpy as np

from monitor.core.aggregate import Batch, WindowState
from monitor.core.binning import FeatureBinner
from monitor.pipeline import Monitor
from monitor.types import PredictionEvent
from tests.test_pipeline import T0, events, points_by, reference, settings_


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
