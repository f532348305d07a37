"""Latency sketch: relative accuracy against numpy, exact merge, serialisation."""

import math

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from monitor.core.sketch import ALPHA, LatencySketch

latencies = arrays(np.float64, st.integers(0, 200),
                   elements=st.one_of(st.floats(1e-3, 1e7), st.just(0.0), st.floats(1, 500)))


def sketch_of(values: np.ndarray) -> LatencySketch:
    s = LatencySketch()
    s.add(values)
    return s


def same(a: LatencySketch, b: LatencySketch) -> bool:
    return bool(np.array_equal(a.buckets, b.buckets)) and (a.count, a.sum_us, a.max) == (b.count, b.sum_us, b.max)


@settings(max_examples=100, deadline=None)
@given(latencies, latencies, latencies)
def test_merge_is_associative_commutative_and_equals_the_concatenation(a, b, c):
    sa, sb, sc = sketch_of(a), sketch_of(b), sketch_of(c)
    left = sa.merge(sb).merge(sc)
    right = sa.merge(sb.merge(sc))
    assert same(left, right) and same(sa.merge(sb), sb.merge(sa))
    assert same(left, sketch_of(np.concatenate([a, b, c])))
    inplace = LatencySketch()
    for s in (sa, sb, sc):
        inplace.merge_in(s)
    assert same(inplace, left)


@settings(max_examples=100, deadline=None)
@given(latencies.filter(lambda v: v.size > 0), st.lists(st.floats(0, 1), min_size=1, max_size=5))
def test_quantiles_within_relative_accuracy_of_numpy(values, qs):
    s = sketch_of(values)
    for q, got in zip(qs, s.quantiles(qs), strict=True):
        exact = float(np.percentile(values, 100 * q, method="lower"))
        assert abs(got - exact) <= ALPHA * exact + 1e-12


@pytest.mark.parametrize("dist", ["lognormal", "exponential", "uniform"])
def test_quantiles_on_realistic_latencies(dist):
    rng = np.random.default_rng(1)
    v = {"lognormal": rng.lognormal(3, 1, 50_000), "exponential": rng.exponential(20, 50_000),
         "uniform": rng.uniform(0, 1000, 50_000)}[dist]
    s = sketch_of(v)
    for q in (0.5, 0.9, 0.95, 0.99, 1.0):
        exact = np.percentile(v, 100 * q, method="lower")
        assert abs(s.quantile(q) - exact) <= ALPHA * exact
    assert s.count == v.size and s.max == v.max() and s.mean == pytest.approx(v.mean(), rel=1e-6)


def test_zero_and_empty():
    s = LatencySketch()
    assert s.count == 0 and math.isnan(s.mean) and all(math.isnan(x) for x in s.quantiles([0.5, 0.9]))
    s.add(np.zeros(10))
    assert s.quantile(0.99) == 0.0 and s.max == 0.0 and s.sum == 0.0


def test_bad_input_is_rejected_and_leaves_the_sketch_unchanged():
    s = sketch_of(np.array([1.0, 2.0]))
    for bad in ([np.nan], [-1.0], [np.inf]):
        with pytest.raises(ValueError):
            s.add(np.array(bad))
    assert s.count == 2
    with pytest.raises(ValueError):
        s.quantile(1.5)


def test_round_trip_through_json_and_constant_size():
    rng = np.random.default_rng(0)
    small, big = sketch_of(rng.lognormal(3, 1, 1000)), sketch_of(rng.lognormal(3, 1, 100_000))
    assert small.nbytes() == big.nbytes()
    back = LatencySketch.from_dict(orjson.loads(orjson.dumps(big.to_dict(), option=orjson.OPT_NON_STR_KEYS)))
    assert same(back, big)
    bad = big.to_dict()
    bad["count"] += 1
    with pytest.raises(ValueError, match="add up"):
        LatencySketch.from_dict(bad)
    with pytest.raises(ValueError, match="accuracy"):
        LatencySketch.from_dict({**big.to_dict(), "alpha": 0.05})
