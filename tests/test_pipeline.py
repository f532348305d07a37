"""The pure pipeline on small synthetic streams: windows, watermark, late events, labels, idempotence."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import MonitorSettings
from monitor.core.aggregate import Batch, WindowState, merged
from monitor.core.binning import FeatureBinner
from monitor.core.reference import build_profile
from monitor.pipeline import Monitor
from monitor.types import LabelEvent, PredictionEvent, Rejection

T0 = 1_767_225_600.0  # 2026-01-01, a multiple of 300 s


def reference(seed=0, n=5000):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    return build_profile("m", pd.DataFrame({
        "x": x, "y": rng.normal(5, 2, n), "c": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]),
        "score": 1 / (1 + np.exp(-x)), "prediction": (x > 0).astype(int), "label": (x > 0).astype(int)}))


def events(n, t0, seconds, seed=0, shift=0.0, latency=20.0, error_rate=0.0, model="m", version="v1"):
    rng = np.random.default_rng(seed)
    xs = rng.normal(shift, 1, n)
    ys = rng.normal(5, 2, n)
    cs = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    ts = np.sort(t0 + rng.uniform(0, seconds, n))
    lat = rng.lognormal(np.log(latency), 0.2, n)
    err = rng.uniform(size=n) < error_rate
    out = []
    for i in range(n):
        score = float(1 / (1 + np.exp(-xs[i])))
        out.append(PredictionEvent(
            model=model, request_id=f"{model}-{seed}-{i}", timestamp=float(ts[i]),
            features={"x": float(xs[i]), "y": float(ys[i]), "c": str(cs[i])},
            prediction=None if err[i] else int(score >= 0.5), model_version=version,
            score=None if err[i] else score, latency_ms=float(lat[i]), error="boom" if err[i] else None))
    return out


def settings_(**kw):
    base = dict(window="5m", allowed_lateness="30s", label_grace="1h")
    base.update(kw)
    return MonitorSettings(**base)


def points_by(em, measurement):
    return [p for p in em.points if p.measurement == measurement]


def test_window_closes_on_watermark_not_on_next_event():
    mon = Monitor(settings_(), {"m": reference()})
    mon.observe(events(600, T0, 299))
    assert not mon.advance().points  # watermark = max ts - 30 s < window end
    mon.observe(events(10, T0 + 330, 1, seed=1))  # max ts 331 → watermark 301 > 300
    em = mon.advance()
    assert [c[2].end for c in em.closed] == [T0 + 300]
    (tp,) = points_by(em, "throughput")
    assert tp.field("events") == 600 and tp.time_ns == int((T0 + 300) * 1e9)
    assert tp.tag("model_version") == "v1" and tp.tag("window") == "5m"


def test_idle_model_closes_by_wall_clock():
    mon = Monitor(settings_(idle_timeout="10s"), {"m": reference()})
    mon.observe(events(100, T0, 100), now=1000.0)
    assert not mon.advance(now=1005.0).closed
    assert mon.advance(now=1000.0 + 240.0).closed  # idle 240 s: watermark moved past the window end


def test_stable_traffic_raises_no_drift_and_shift_does():
    mon = Monitor(settings_(), {"m": reference()})
    mon.observe(events(3000, T0, 299, seed=1))
    mon.observe(events(3000, T0 + 300, 299, seed=2, shift=0.5))
    mon.observe(events(10, T0 + 700, 1, seed=3))
    em = mon.advance()
    drift = {(p.time_ns, p.tag("feature"), p.tag("method")): p for p in points_by(em, "drift")}
    w1, w2 = int((T0 + 300) * 1e9), int((T0 + 600) * 1e9)
    assert not any(p.field("drifted") for (t, _, _), p in drift.items() if t == w1)
    assert drift[(w2, "x", "psi")].field("drifted") is True
    assert drift[(w2, "x", "ks")].field("drifted") is True
    assert drift[(w2, "y", "psi")].field("drifted") is False
    assert drift[(w2, "__score__", "psi")].field("drifted") is True  # the score follows x
    assert [a.labels["feature"] for a in em.alerts if a.labels["alertname"] == "FeatureDrift"] == ["x"]


def test_late_events_are_counted_not_dropped():
    mon = Monitor(settings_(), {"m": reference()})
    mon.observe(events(200, T0, 299))
    mon.observe(events(10, T0 + 400, 1, seed=1))
    first = mon.advance()
    assert first.closed
    mon.observe(events(7, T0 + 10, 5, seed=2))  # belongs to the closed window
    em = mon.advance()
    (q,) = [p for p in points_by(em, "data_quality") if p.tag("feature") == "__event__"]
    assert q.field("late") == 7 and q.time_ns == int((T0 + 300) * 1e9)


def test_labels_join_even_after_the_window_closed():
    mon = Monitor(settings_(), {"m": reference()})
    evs = events(500, T0, 299)
    mon.observe(evs)
    mon.observe(events(10, T0 + 400, 1, seed=1))
    mon.advance()
    labels = [LabelEvent("m", e.request_id, T0 + 450, e.prediction if i % 4 else 1 - e.prediction)
              for i, e in enumerate(evs) if e.prediction is not None]
    mon.observe(labels)
    em = mon.advance()
    perf = {p.tag("metric"): p for p in points_by(em, "performance")}
    assert perf["accuracy"].field("value") == pytest.approx(0.75, abs=0.01)
    assert perf["accuracy"].time_ns == int((T0 + 300) * 1e9) and perf["accuracy"].field("n") == len(labels)


def test_label_before_prediction_is_joined():
    mon = Monitor(settings_(), {"m": reference()})
    evs = events(100, T0, 200)
    mon.observe([LabelEvent("m", evs[0].request_id, T0, evs[0].prediction)])
    mon.observe(evs)
    em = mon.close_all()
    perf = {p.tag("metric"): p for p in points_by(em, "performance")}
    assert perf["accuracy"].field("n") == 1


def test_error_burst_and_latency_are_measured():
    mon = Monitor(settings_(), {"m": reference()})
    mon.observe(events(1000, T0, 299, latency=20.0, error_rate=0.3))
    em = mon.close_all()
    (err,) = points_by(em, "errors")
    assert err.field("rate") == pytest.approx(0.3, abs=0.05)
    (lat,) = points_by(em, "latency")
    assert lat.field("p50") == pytest.approx(20.0, rel=0.05)
    assert lat.field("count") == 1000


def test_replaying_the_same_events_gives_identical_points():
    evs = events(2000, T0, 900, seed=4, shift=0.3)
    labels = [LabelEvent("m", e.request_id, e.timestamp + 5, 1) for e in evs[::3] if e.prediction is not None]
    stream = sorted([*evs, *labels], key=lambda e: e.timestamp)

    def run(chunk):
        mon = Monitor(settings_(), {"m": reference()})
        pts = {}
        for i in range(0, len(stream), chunk):
            mon.observe(stream[i:i + chunk])
            for p in mon.advance().points:
                pts[p.series_key()] = p
        for p in mon.close_all().points:
            pts[p.series_key()] = p
        return pts

    a, b = run(100), run(777)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].to_line() == b[k].to_line()


def test_rejections_count_as_invalid_in_their_window():
    mon = Monitor(settings_(), {"m": reference()})
    mon.observe(events(100, T0, 200))
    mon.reject([Rejection("bad", b"{", model="m", timestamp=T0 + 5)] * 3)
    em = mon.close_all()
    (q,) = [p for p in points_by(em, "data_quality") if p.tag("feature") == "__event__"]
    assert q.field("invalid") == 3


def test_warm_up_reference_from_first_events():
    mon = Monitor(settings_(warmup_events=500), {})
    mon.observe(events(500, T0 - 600, 290))
    mon.observe(events(2000, T0, 299, seed=5, shift=1.0))
    em = mon.close_all()
    drifted = {p.tag("feature") for p in points_by(em, "drift") if p.field("drifted")}
    assert "x" in drifted and "y" not in drifted


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4))
def test_window_state_merge_is_associative_and_equals_concatenation(seed, parts):
    binner = FeatureBinner(reference())
    evs = events(300, T0, 299, seed=seed, error_rate=0.1)
    batch = Batch.build(evs, binner)
    whole = WindowState.empty(binner)
    whole.ingest(batch, np.arange(len(evs)), binner)
    cuts = np.array_split(np.arange(len(evs)), parts + 1)
    states = []
    for rows in cuts:
        s = WindowState.empty(binner)
        s.ingest(batch, rows, binner)
        states.append(s)
    left = merged([merged(states[:2], binner), *states[2:]], binner)
    right = merged([states[0], merged(states[1:], binner)], binner)
    for m in (left, right):
        np.testing.assert_array_equal(m.num_counts, whole.num_counts)
        np.testing.assert_array_equal(m.cat_counts, whole.cat_counts)
        np.testing.assert_array_equal(m.num_missing, whole.num_missing)
        assert (m.events, m.errors, m.est_n, m.est_correct_nano) == (
            whole.events, whole.errors, whole.est_n, whole.est_correct_nano)
        assert m.latency.sum_us == whole.latency.sum_us
        assert m.latency.count == whole.latency.count
        assert m.latency.quantile(0.95) == pytest.approx(whole.latency.quantile(0.95))


def test_window_state_size_is_independent_of_rows():
    binner = FeatureBinner(reference())
    sizes = []
    for n in (100, 10_000):
        evs = events(n, T0, 299)
        s = WindowState.empty(binner)
        s.ingest(Batch.build(evs, binner), np.arange(n), binner)
        sizes.append(s.nbytes())
    assert sizes[0] == sizes[1]
