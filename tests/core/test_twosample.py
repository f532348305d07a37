"""Two-sample statistics on binned counts (monitor/core/drift/twosample.py) against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from monitor.core.drift.twosample import (
    chi2_2samp,
    js_2samp,
    ks_2samp_binned,
    psi_2samp,
    shares,
    wasserstein_2samp,
)

counts = st.lists(st.integers(0, 400), min_size=3, max_size=12)


def _pair(a: list[int], b: list[int]) -> tuple[np.ndarray, np.ndarray]:
    k = min(len(a), len(b))
    return np.array(a[:k]), np.array(b[:k])


@settings(max_examples=200, deadline=None)
@given(counts, counts)
def test_ks_equals_scipy_ks_2samp_asymp_on_values_that_sit_on_the_bins(a: list[int], b: list[int]) -> None:
    ca, cb = _pair(a, b)
    if ca.sum() == 0 or cb.sum() == 0:
        return
    x = np.repeat(np.arange(ca.size), ca)
    y = np.repeat(np.arange(cb.size), cb)
    ref = stats.ks_2samp(x, y, method="asymp")
    d, p, bound = ks_2samp_binned(ca, cb)
    assert float(d) == pytest.approx(ref.statistic, abs=1e-12)
    en = ca.sum() * cb.sum() / (ca.sum() + cb.sum())
    # below 1,000 effective events the same distribution as scipy (kstwo); above, Kolmogorov's limit
    assert float(p) == pytest.approx(ref.pvalue, abs=1e-9 if en < 1000 else 0.01)
    assert float(bound) == pytest.approx(max(shares(ca).max(), shares(cb).max()))


def test_ks_large_samples_close_to_scipy() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 50, 40_000)
    y = np.clip(rng.integers(0, 50, 30_000) + (rng.uniform(size=30_000) < 0.02), 0, 49)
    d, p, _ = ks_2samp_binned(np.bincount(x, minlength=50), np.bincount(y, minlength=50))
    ref = stats.ks_2samp(x, y, method="asymp")
    assert float(d) == pytest.approx(ref.statistic, abs=1e-12)
    assert abs(float(p) - ref.pvalue) < 0.01


@settings(max_examples=200, deadline=None)
@given(counts, counts)
def test_chi2_equals_scipy_chi2_contingency(a: list[int], b: list[int]) -> None:
    ca, cb = _pair(a, b)
    stat, p = chi2_2samp(ca, cb)
    used = (ca + cb) > 0
    if ca.sum() == 0 or cb.sum() == 0 or used.sum() < 2:
        assert float(stat) == 0.0 and float(p) == 1.0
        return
    ref = stats.chi2_contingency(np.vstack([ca[used], cb[used]]), correction=False)
    assert float(stat) == pytest.approx(ref.statistic, rel=1e-9, abs=1e-9)
    assert float(p) == pytest.approx(ref.pvalue, rel=1e-7, abs=1e-12)


def test_chi2_ignores_padding_and_is_row_wise() -> None:
    a = np.array([[30, 20, 0, 0], [10, 10, 10, 0]])
    b = np.array([[20, 30, 0, 99], [5, 5, 20, 0]])
    mask = np.array([[True, True, True, False], [True, True, True, True]])
    stat, p = chi2_2samp(a, b, mask=mask)
    ref0 = stats.chi2_contingency(np.array([[30, 20], [20, 30]]), correction=False)
    ref1 = stats.chi2_contingency(np.array([[10, 10, 10], [5, 5, 20]]), correction=False)
    assert stat.tolist() == pytest.approx([ref0.statistic, ref1.statistic])
    assert p.tolist() == pytest.approx([ref0.pvalue, ref1.pvalue])


@settings(max_examples=100, deadline=None)
@given(counts, counts)
def test_psi_is_symmetric_finite_and_zero_for_equal_shares(a: list[int], b: list[int]) -> None:
    ca, cb = _pair(a, b)
    if ca.sum() == 0 or cb.sum() == 0:
        return
    fwd, back = float(psi_2samp(ca, cb)), float(psi_2samp(cb, ca))
    assert np.isfinite(fwd) and fwd >= 0
    assert fwd == pytest.approx(back, rel=1e-12, abs=1e-15)
    assert float(psi_2samp(ca, 3 * ca)) == pytest.approx(0.0, abs=1e-12)


def test_psi_by_hand() -> None:
    a, b = np.array([80, 20, 0]), np.array([50, 30, 20])
    eps, k = 1e-4, 3
    p = (a / a.sum() + eps) / (1 + k * eps)
    q = (b / b.sum() + eps) / (1 + k * eps)
    assert float(psi_2samp(a, b)) == pytest.approx(float(((q - p) * np.log(q / p)).sum()), rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(counts, counts)
def test_js_equals_scipy_jensenshannon(a: list[int], b: list[int]) -> None:
    ca, cb = _pair(a, b)
    if ca.sum() == 0 or cb.sum() == 0:
        return
    assert float(js_2samp(ca, cb)) == pytest.approx(jensenshannon(ca / ca.sum(), cb / cb.sum(), base=2), abs=1e-7)


@settings(max_examples=100, deadline=None)
@given(counts, counts)
def test_wasserstein_equals_scipy_on_atoms_at_the_bin_edges(a: list[int], b: list[int]) -> None:
    ca, cb = _pair(a, b)
    if ca.sum() == 0 or cb.sum() == 0:
        return
    k = ca.size
    edges = np.cumsum(np.linspace(0.5, 2.0, k - 1))  # k bins: k - 1 edges, uneven widths
    widths = np.append(np.diff(edges), 0.0)  # the open top bin has no width
    # bin i < k-1 holds [e_{i-1}, e_i): its mass at e_i is what the binned form integrates
    atoms = np.append(edges, edges[-1])
    ref = stats.wasserstein_distance(atoms, atoms, ca, cb) / 2.0
    assert float(wasserstein_2samp(ca, cb, widths, 2.0)) == pytest.approx(ref, abs=1e-9)
