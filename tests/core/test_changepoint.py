"""Window-level change detectors: silent on stable windows, quick on real changes, restorable."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.changepoint import ChangeDetector
from monitor.core.sketch import LatencySketch


def _window(rng, n=1000, rate=0.01, scale=1.0, sigma=0.4):
    s = LatencySketch()
    s.add(rng.lognormal(np.log(20.0 * scale), sigma, n))
    return int(rng.binomial(n, rate)), n, s


def test_no_change_marked_on_stable_windows():
    rng = np.random.default_rng(0)
    flagged = [0, 0]
    for traffic in (50, 1_000, 10_000):
        for sigma in (0.35, 1.0):
            d = ChangeDetector()
            for _ in range(300):
                err, lat = d.update(*_window(rng, n=traffic, sigma=sigma))
                flagged[0] += err
                flagged[1] += lat
    assert flagged == [0, 0], f"false change marks on 1,800 stable windows: errors {flagged[0]}, latency {flagged[1]}"


def test_error_burst_and_latency_regression_marked_in_their_first_window_only():
    rng = np.random.default_rng(1)
    d = ChangeDetector()
    for _ in range(10):
        d.update(*_window(rng))
    assert d.update(60, 1000, _window(rng)[2]) == (True, False)  # 1 % → 6 % errors
    for _ in range(3):
        d.update(*_window(rng))
    assert d.update(*_window(rng, scale=1.5))[1]  # p95 × 1.5
    assert not any(d.update(*_window(rng, scale=1.5))[1] for _ in range(5))  # the new level is not a change


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 100), st.floats(5, 500)), min_size=1, max_size=40),
       st.lists(st.tuples(st.integers(0, 100), st.floats(5, 500)), min_size=1, max_size=20))
def test_restored_detector_decides_like_the_original(before, after):
    def sketch(ms):
        s = LatencySketch()
        s.add(np.full(50, ms))
        return s

    a = ChangeDetector()
    for e, p in before:
        a.update(e, 1000, sketch(p))
    b = ChangeDetector.from_dict(a.to_dict())
    assert [a.update(e, 1000, sketch(p)) for e, p in after] == [b.update(e, 1000, sketch(p)) for e, p in after]
