"""Multivariate drift: the reconstruction maths, exact mergeable window sums, detection of a correlation flip."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.aggregate import Batch, WindowState
from monitor.core.binning import FeatureBinner
from monitor.core.multivariate import accumulate
from monitor.core.reference import build_profile
from monitor.types import PredictionEvent


def _frame(n, rho, rng):
    x3 = rng.normal(size=n)
    x4 = rho * x3 + np.sqrt(1 - rho * rho) * rng.normal(size=n)
    return pd.DataFrame({"x3": x3, "x4": x4, "a": rng.normal(size=n), "b": rng.exponential(size=n),
                         "c": rng.choice(["u", "v", "w"], n, p=[0.5, 0.3, 0.2])})


@pytest.fixture(scope="module")
def profile():
    return build_profile("m", _frame(8000, 0.85, np.random.default_rng(0)), resamples=300)


def _events(frame):
    return [PredictionEvent("m", str(i), 0.0, dict(row), 1) for i, row in enumerate(frame.to_dict("records"))]


def test_error_is_the_norm_of_the_residual_of_the_projection(profile):
    mv = profile.multivariate
    rng = np.random.default_rng(1)
    frame = _frame(50, 0.85, rng)
    num = frame[list(mv.numeric)].to_numpy(float, copy=True)
    num[3, 1] = np.nan  # a missing value is imputed with the reference mean (standardised 0)
    cats = [frame[c].tolist() for c in mv.categorical]
    cats[0][4] = "never-seen"
    z = mv.standardize(num, cats)
    assert z[3, 1] == 0.0
    v = mv.components
    explicit = np.linalg.norm(z - z @ v @ v.T, axis=1)
    assert np.allclose(mv.errors(num, cats), explicit, atol=1e-9)
    assert np.allclose(v.T @ v, np.eye(v.shape[1]), atol=1e-9)
    assert mv.explained >= 0.65


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1e5, allow_nan=False), min_size=1, max_size=300), st.randoms(use_true_random=False))
def test_window_sums_are_exact_in_any_merge_order(values, rnd):
    parts = [np.array(values[i::3]) for i in range(3)]
    order = list(range(3))
    rnd.shuffle(order)
    a = [sum(t) for t in zip(*(accumulate(parts[i]) for i in range(3)), strict=True)]
    b = [sum(t) for t in zip(*(accumulate(parts[i]) for i in order), strict=True)]
    assert a == b == list(accumulate(np.array(values)))


def test_window_state_keeps_and_merges_the_multivariate_sums(profile):
    binner = FeatureBinner(profile)
    events = _events(_frame(600, 0.85, np.random.default_rng(2)))
    whole = WindowState.empty(binner)
    batch = Batch.build(events, binner)
    whole.ingest(batch, np.arange(600), binner)
    parts = [WindowState.empty(binner) for _ in range(2)]
    parts[0].ingest(Batch.build(events[:250], binner), np.arange(250), binner)
    parts[1].ingest(Batch.build(events[250:], binner), np.arange(350), binner)
    merged = WindowState.empty(binner)
    merged.merge_in(parts[1])
    merged.merge_in(parts[0])
    assert (merged.mv_n, merged.mv_sum_micro, merged.mv_sumsq_micro) == \
        (whole.mv_n, whole.mv_sum_micro, whole.mv_sumsq_micro) and whole.mv_n == 600
    off = FeatureBinner(profile, multivariate=False)
    assert Batch.build(events, off).recon is None


def test_correlation_flip_is_flagged_and_stable_windows_are_not(profile):
    binner = FeatureBinner(profile)

    def verdict(rho, seed, n=2000):
        state = WindowState.empty(binner)
        state.ingest(Batch.build(_events(_frame(n, rho, np.random.default_rng(seed))), binner), np.arange(n), binner)
        (r,) = [s for s in binner.drift(state.num_counts, state.cat_counts,
                                        multivariate=(state.mv_n, state.mv_sum_micro, state.mv_sumsq_micro))
                if s.feature == "__multivariate__"]
        return r.score > profile.null_threshold(r.feature, r.method, r.n, 0.9999), r.p_value

    flipped, p = verdict(-0.85, 5)
    assert flipped and p < 1e-10
    assert not any(verdict(0.85, seed)[0] for seed in range(10, 20))
