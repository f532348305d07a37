"""Window-level change detectors: silent on stable windows, quick on real changes, restorable."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.changes import ChangeDetector


def _stable(rng, n=1000, rate=0.01, p95=50.0):
    errors = int(rng.binomial(n, rate))
    # p95 of n lognormal latencies: sampling noise plus the sketch's 1 % error
    lat = rng.lognormal(np.log(p95) - 1.645 * 0.3, 0.3, n)
    return errors, n, float(np.percentile(lat, 95)) * (1 + rng.uniform(-0.01, 0.01))


def test_no_change_marked_on_stable_windows():
    rng = np.random.default_rng(0)
    flagged = [0, 0]
    for traffic in (100, 1_000, 10_000):
        d = ChangeDetector()
        for _ in range(400):
            err, lat = d.update(*_stable(rng, n=traffic))
            flagged[0] += err
            flagged[1] += lat
    assert flagged == [0, 0], f"false change marks on 1,200 stable windows: errors {flagged[0]}, latency {flagged[1]}"


def test_error_burst_and_latency_regression_marked_in_their_first_window():
    rng = np.random.default_rng(1)
    d = ChangeDetector()
    for _ in range(10):
        d.update(*_stable(rng))
    assert d.update(60, 1000, 50.0) == (True, False)  # 1 % → 6 % errors
    for _ in range(3):
        d.update(*_stable(rng))
    assert d.update(10, 1000, 150.0)[1]  # p95 ×3


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 100), st.floats(5, 500)), min_size=1, max_size=60),
       st.lists(st.tuples(st.integers(0, 100), st.floats(5, 500)), min_size=1, max_size=20))
def test_restored_detector_decides_like_the_original(before, after):
    a = ChangeDetector()
    for e, p in before:
        a.update(e, 1000, p)
    b = ChangeDetector.from_dict(a.to_dict())
    assert [a.update(e, 1000, p) for e, p in after] == [b.update(e, 1000, p) for e, p in after]
