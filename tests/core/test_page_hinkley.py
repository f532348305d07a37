"""The batched Page-Hinkley loop gives exactly river's PageHinkley(mode="up") results and state."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from river import drift

from monitor.pipeline import page_hinkley_up


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.floats(0, 500, allow_nan=False), max_size=300), min_size=1, max_size=4),
       st.sampled_from([(30, 0.005, 50.0), (5, 0.0, 5.0), (1, 1.0, 0.5)]))
def test_same_detections_and_state_as_river(batches, params) -> None:
    min_n, delta, threshold = params
    ours = drift.PageHinkley(min_instances=min_n, delta=delta, threshold=threshold, mode="up")
    theirs = drift.PageHinkley(min_instances=min_n, delta=delta, threshold=threshold, mode="up")
    for values in batches:
        expected = []
        for i, x in enumerate(values):
            theirs.update(x)
            if theirs.drift_detected:
                expected.append(i)
        assert page_hinkley_up(ours, values) == expected
        assert ours.drift_detected == theirs.drift_detected
        assert (ours._x_mean.n, ours._x_mean.get(), ours._sum_increase, ours._min_increase) == (
            theirs._x_mean.n, theirs._x_mean.get(), theirs._sum_increase, theirs._min_increase)


def test_a_level_shift_is_detected() -> None:
    ph = drift.PageHinkley(mode="up")
    fired = page_hinkley_up(ph, [10.0] * 500 + [40.0] * 50)
    assert fired and fired[0] >= 500
