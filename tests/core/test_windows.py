import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.windows import WindowSpec, idle_watermark, watermark


def test_tumbling_assignment_and_last_end():
    w = WindowSpec(300)
    assert [(r.start, r.end) for r in w.windows_of(599.9)] == [(300.0, 600.0)]
    assert w.windows_of(600.0)[0].start == 600.0
    assert w.last_end(0.0) == 300.0


def test_hopping_windows_contain_the_event():
    w = WindowSpec(300, 100)
    ranges = w.windows_of(250.0)
    assert [r.start for r in ranges] == [0.0, 100.0, 200.0]
    assert all(r.start <= 250.0 < r.end for r in ranges)


def test_bad_geometry_is_rejected():
    with pytest.raises(ValueError):
        WindowSpec(0)
    with pytest.raises(ValueError):
        WindowSpec(60, 120)


@given(st.lists(st.floats(0, 1e7, allow_nan=False), min_size=1, max_size=200),
       st.sampled_from([(60.0, None), (300.0, 60.0), (300.0, 100.0), (90.0, 45.0)]))
def test_vectorised_assignment_matches_scalar(times, geometry):
    size, hop = geometry
    w = WindowSpec(size, hop)
    ts = np.array(times)
    got = {}
    for start, rows in w.starts(ts):
        for i in rows.tolist():
            got.setdefault(i, set()).add(start)
    for i, t in enumerate(times):
        assert got[i] == {r.start for r in w.windows_of(t)}


def test_watermark_and_idle_extrapolation():
    assert watermark(None, 60) is None
    assert watermark(1000.0, 60) == 940.0
    # a backlog replay (event time far behind wall time) is not extrapolated while events flow
    assert idle_watermark(100.0, 1e9, 1e9 + 5, 30) == 100.0
    assert idle_watermark(100.0, 1e9, 1e9 + 300, 30) == 400.0
    assert idle_watermark(None, None, 5.0, 30) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 5_000, allow_nan=False), max_size=60), st.booleans(),
       st.sampled_from([(300.0, None), (300.0, 60.0), (60.0, 60.0), (90.0, 40.0)]))
def test_starts_assigns_each_event_to_every_window_it_is_in(times, ordered, geometry):
    """Sorted input takes a path without a sort; both give windows ascending, rows ascending within each."""
    w = WindowSpec(*geometry)
    ts = np.array(sorted(times) if ordered else times, dtype=np.float64)
    expected: dict[float, list[int]] = {}
    for i, t in enumerate(ts.tolist()):
        for r in w.windows_of(t):
            expected.setdefault(r.start, []).append(i)
    got = w.starts(ts)
    merged: dict[float, list[int]] = {}
    for start, rows in got:
        merged.setdefault(start, []).extend(rows.tolist())
    assert {k: sorted(v) for k, v in merged.items()} == expected
    for _, rows in got:
        assert rows.tolist() == sorted(rows.tolist())
