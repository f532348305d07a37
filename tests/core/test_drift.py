"""Drift statistics: properties (hypothesis), scipy agreement, documented error bounds, golden values."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from monitor.core.drift.chi2 import chi2_test
from monitor.core.drift.js import js_distance
from monitor.core.drift.ks import ks_binned, ks_exact
from monitor.core.drift.multitest import benjamini_hochberg
from monitor.core.drift.psi import psi
from monitor.core.drift.wasserstein import wasserstein_binned
from monitor.core.reference import numeric_profile

counts = arrays(np.int64, st.integers(2, 30), elements=st.integers(0, 10_000)).filter(lambda a: a.sum() > 0)


@given(counts)
def test_psi_of_identical_histograms_is_zero(c):
    assert psi(c / c.sum(), c) == pytest.approx(0.0, abs=1e-12)


@given(counts, counts)
def test_psi_is_non_negative(a, b):
    n = min(a.size, b.size)
    a, b = a[:n], b[:n]
    if a.sum() == 0 or b.sum() == 0:
        return
    assert psi(a / a.sum(), b) >= -1e-12


@given(counts, counts)
def test_js_is_a_bounded_symmetric_distance(a, b):
    n = min(a.size, b.size)
    a, b = a[:n], b[:n]
    if a.sum() == 0 or b.sum() == 0:
        return
    d = float(js_distance(a / a.sum(), b))
    assert 0.0 <= d <= 1.0
    assert d == pytest.approx(float(js_distance(b / b.sum(), a)), abs=1e-9)


samples = arrays(np.float64, st.integers(1, 300),
                 elements=st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.integers(-5, 5).map(float)))


@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful")
@settings(max_examples=200, deadline=None)
@given(samples, samples)
def test_exact_ks_equals_scipy(a, b):
    d, p = ks_exact(np.sort(a), b)
    ref = stats.ks_2samp(a, b)
    assert d == pytest.approx(ref.statistic, abs=1e-12)
    assert p == pytest.approx(ref.pvalue, abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 10_000), st.floats(-1, 1), st.floats(0.5, 2.0), st.sampled_from([20, 100]))
def test_binned_ks_is_within_its_documented_bound(seed, shift, scale, bins):
    rng = np.random.default_rng(seed)
    ref = rng.normal(0, 1, 5_000)
    win = rng.normal(shift, scale, 800)
    prof = numeric_profile("x", ref, ref.size, fine_bins=bins, ks_sample_size=ref.size)
    c = np.bincount(np.searchsorted(prof.edges, win, side="right"), minlength=prof.proportions.size)
    d_b, _, bound = ks_binned(prof.proportions, c, prof.count)
    d_exact = stats.ks_2samp(ref, win).statistic
    assert d_b <= d_exact + 1e-12
    assert d_exact <= d_b + bound + 1e-12


def test_binned_ks_p_value_tracks_scipy_on_large_samples():
    rng = np.random.default_rng(3)
    ref, win = rng.normal(0, 1, 100_000), rng.normal(0.03, 1, 10_000)
    prof = numeric_profile("x", ref, ref.size, fine_bins=100, ks_sample_size=1000)
    c = np.bincount(np.searchsorted(prof.edges, win, side="right"), minlength=prof.proportions.size)
    d_b, p_b, _ = ks_binned(prof.proportions, c, prof.count)
    ref_res = stats.ks_2samp(ref, win)
    assert abs(float(d_b) - ref_res.statistic) < 0.01
    assert abs(float(p_b) - ref_res.pvalue) < 0.05


def test_chi2_matches_scipy_chisquare():
    p = np.array([0.5, 0.3, 0.2])
    c = np.array([480, 330, 190])
    stat, pval = chi2_test(p, c)
    ref = stats.chisquare(c, p * c.sum())
    assert float(stat) == pytest.approx(ref.statistic) and float(pval) == pytest.approx(ref.pvalue)


def test_chi2_unseen_category_raises_the_statistic():
    p = np.array([0.6, 0.4, 0.0])
    _, p_seen = chi2_test(p, np.array([600, 400, 0]))
    _, p_new = chi2_test(p, np.array([570, 380, 50]))
    assert p_seen > 0.5 and p_new < 1e-6


def test_wasserstein_mean_shift_in_sd_units():
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 2, 50_000)
    prof = numeric_profile("x", ref, ref.size, fine_bins=100)
    win = rng.normal(1.0, 2, 20_000)  # +0.5 sd
    c = np.bincount(np.searchsorted(prof.edges, win, side="right"), minlength=prof.proportions.size)
    widths = np.append(np.diff(prof.edges), 0.0)  # last: the open upper bin
    w = float(wasserstein_binned(prof.proportions, c, widths, prof.std))
    assert w == pytest.approx(0.5, abs=0.08)


def test_benjamini_hochberg_matches_hand_computation():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    reject, adj = benjamini_hochberg(p, 0.05)
    assert reject.tolist() == [True, True] + [False] * 8
    assert adj[:3].tolist() == pytest.approx([0.01, 0.04, 0.084])


def test_psi_golden_value():
    # classic example: reference 10 equal deciles, window shifted mass
    ref = np.full(10, 0.1)
    win = np.array([5, 5, 5, 10, 10, 10, 10, 15, 15, 15])
    expected = sum((q - 0.1) * np.log(q / 0.1) for q in win / 100)
    assert float(psi(ref, win, eps=0.0)) == pytest.approx(expected)
