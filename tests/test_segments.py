"""Segments: per-value window state of configured categorical features, bounded by configuration.

Top-K + ``__other__`` and bounded state with a 100,000-value feature, the reference/config mismatch error,
segment points and tags, one test family with the model's, small segment-windows, alert text, retraining
evidence, per-segment performance through the label join, and the profile's JSON."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import MonitorSettings, load_settings
from monitor.core.aggregate import Batch, WindowState
from monitor.core.binning import FeatureBinner
from monitor.core.reference import ReferenceProfile, build_profile
from monitor.core.segment_profiles import OTHER, with_segments
from monitor.pipeline import Monitor
from monitor.segments import Segmenter, check_references, segmenter_for
from monitor.types import LabelEvent, PredictionEvent

T0 = 1_767_225_600.0
COUNTRIES = ("US", "DE", "FR", "GB", "IN", "PL")
SHARES = (0.38, 0.2, 0.15, 0.12, 0.1, 0.05)


def table(n: int = 20_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    country = rng.choice(COUNTRIES, n, p=SHARES)
    income = rng.normal(50, 10, n) + np.where(country == "PL", -20.0, 0.0)  # PL differs from the rest
    score = 1 / (1 + np.exp(-x))  # calibrated: the label is drawn from the score
    return pd.DataFrame({"x": x, "income": income, "country": country,
                         "device": rng.choice(["mobile", "desktop"], n, p=[0.7, 0.3]),
                         "score": score, "prediction": (x > 0).astype(int),
                         "label": (rng.uniform(size=n) < score).astype(int)})


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return table()


@pytest.fixture(scope="module")
def profile(frame: pd.DataFrame) -> ReferenceProfile:
    base = build_profile("m", frame, built_at="2026-01-01T00:00:00Z")
    return with_segments(base, frame, ["country", "device"], 20)


def events(n: int, t0: float, seconds: float, seed: int = 0, pl_shift: float = 0.0, all_shift: float = 0.0,
           countries: tuple[str, ...] = COUNTRIES, shares: tuple[float, ...] = SHARES,
           error_in: str | None = None, error_rate: float = 0.5) -> list[PredictionEvent]:
    rng = np.random.default_rng(seed)
    ts = np.sort(t0 + rng.uniform(0, seconds, n))
    country = rng.choice(countries, n, p=shares)
    x = rng.normal(0, 1, n)
    income = rng.normal(50, 10, n) + np.where(country == "PL", -20.0 + pl_shift, 0.0) + all_shift
    device = rng.choice(["mobile", "desktop"], n, p=[0.7, 0.3])
    out = []
    for i in range(n):
        score = float(1 / (1 + np.exp(-x[i])))
        err = error_in is not None and country[i] == error_in and rng.uniform() < error_rate
        out.append(PredictionEvent(
            "m", f"r{seed}-{i}", float(ts[i]),
            {"x": float(x[i]), "income": float(income[i]), "country": str(country[i]), "device": str(device[i])},
            prediction=None if err else int(score >= 0.5), model_version="v1", score=None if err else score,
            latency_ms=float(rng.lognormal(3, 0.3)), error="upstream timeout" if err else None))
    return out


def settings_(**kw: object) -> MonitorSettings:
    base: dict[str, object] = dict(window="5m", allowed_lateness="30s", segments=["country", "device"])
    base.update(kw)
    return MonitorSettings(**base)


def run(mon: Monitor, evs: list[PredictionEvent | LabelEvent]):
    pts, alerts, retrain = [], [], []
    for i in range(0, len(evs), 1000):
        mon.observe(evs[i:i + 1000])
        em = mon.advance()
        pts += em.points
        alerts += em.alerts
        retrain += em.retrain
    em = mon.close_all()
    return pts + list(em.points), alerts + list(em.alerts), retrain + list(em.retrain)


def window(p) -> int:
    return int((p.time_ns / 1e9 - T0) // 300) - 1


# -- reference ------------------------------------------------------------------------------------------------
def test_profile_has_one_nested_profile_per_segment_with_the_models_columns(profile: ReferenceProfile):
    assert list(profile.segments["country"]) == ["US", "DE", "FR", "GB", "IN", "PL"]  # by reference frequency
    assert list(profile.segments["device"]) == ["mobile", "desktop"]
    pl = profile.segments["country"]["PL"]
    assert abs(pl.rows - 1000) < 120
    assert abs(pl.numeric["income"].mean - 30.0) < 1.0  # the segment's own distribution, not the model's
    for seg in (*profile.segments["country"].values(), *profile.segments["device"].values()):
        assert list(seg.numeric) == list(profile.numeric) and list(seg.categorical) == list(profile.categorical)
        assert seg.categorical["country"].categories == profile.categorical["country"].categories
        assert not seg.segments
    assert FeatureBinner(pl).numeric_names == FeatureBinner(profile).numeric_names


def test_top_k_and_other(frame: pd.DataFrame):
    base = build_profile("m", frame, built_at="2026-01-01T00:00:00Z")
    prof = with_segments(base, frame, ["country"], 3)
    assert list(prof.segments["country"]) == ["US", "DE", "FR", OTHER]
    other = prof.segments["country"][OTHER]
    assert abs(other.rows - 0.27 * len(frame)) < 300  # GB, IN and PL
    seg = Segmenter.build(FeatureBinner(prof), ["country"])
    assert seg is not None and seg.keys == ["country=US", "country=DE", "country=FR", "country=__other__"]


def test_json_round_trip_and_the_hash_of_a_profile_without_segments(profile: ReferenceProfile, tmp_path):
    profile.save(tmp_path / "p.json")
    back = ReferenceProfile.load(tmp_path / "p.json")
    assert back.content_hash == profile.content_hash
    assert list(back.segments["country"]) == list(profile.segments["country"])
    plain = build_profile("m", table(2000), built_at="2026-01-01T00:00:00Z")
    assert "segments" not in plain.to_dict()  # profiles without segments keep their content hash
    bad = orjson.loads((tmp_path / "p.json").read_bytes())
    bad["segments"]["country"][0]["profile"]["numeric"][0]["proportions"] = [1.0]
    with pytest.raises(ValueError, match="segment country=US: feature 'x'"):
        ReferenceProfile.from_dict(bad)


def test_a_segment_feature_must_be_categorical(frame: pd.DataFrame):
    base = build_profile("m", frame, built_at="2026-01-01T00:00:00Z")
    with pytest.raises(ValueError, match="segment feature 'income' is numeric"):
        with_segments(base, frame, ["income"])
    with pytest.raises(ValueError, match="segment feature 'nope' is not in the reference"):
        with_segments(base, frame, ["nope"])
    assert with_segments(base, frame, ["nope", "device"], strict=False).segments.keys() == {"device"}


def test_a_feature_with_100000_values_stays_at_k_plus_one_segments():
    """Memory and series are bounded by configuration: 100,000 distinct values (20 frequent ones, a long
    tail) give 20 segments + __other__, and a window of events with fresh values holds at most those."""
    rng = np.random.default_rng(7)
    frequent = [f"m{i:02d}" for i in range(20)]
    values = np.concatenate([np.repeat(frequent, 500), [f"t{i}" for i in range(100_000)]])
    n = values.size
    t = pd.DataFrame({"x": rng.normal(0, 1, n), "merchant": values})
    base = build_profile("m", t, built_at="2026-01-01T00:00:00Z")
    prof = with_segments(base, t, ["merchant"], 20)
    assert list(prof.segments["merchant"]) == [*frequent, OTHER]  # the tail the profile knows pools
    st = MonitorSettings(segments=["merchant"], segment_max_values=20)
    binner = FeatureBinner(prof)
    seg = segmenter_for(binner, st)
    assert seg is not None and len(seg.keys) == 21

    def state_of(merchants: list[str]) -> WindowState:
        evs = [PredictionEvent("m", f"r{i}", T0, {"x": float(i % 7), "merchant": v}, prediction=1)
               for i, v in enumerate(merchants)]
        batch = Batch.build(evs, binner)
        s = WindowState.empty(binner)
        rows = np.arange(len(evs))
        s.ingest(batch, rows, binner)
        seg.ingest(s, rows, seg.assign(batch))
        return s

    known = prof.categorical["merchant"].categories
    wide = state_of([*frequent * 50, *known[20:], *(f"new{i}" for i in range(100_000))])
    assert wide.segments is not None and set(wide.segments) == set(seg.keys)
    assert wide.segments["merchant=__other__"].events == len(known) - 20  # known tail values pool …
    assert sum(s.events for s in wide.segments.values()) == 20 * 50 + len(known) - 20  # … new ones do not
    assert int(wide.cat_unseen[binner.categorical_names.index("merchant")]) == 100_000  # unseen for the feature
    narrow = state_of([*frequent * 50, *known[20:]])
    assert wide.nbytes() == narrow.nbytes()  # the state's size does not depend on the values seen


# -- configuration -----------------------------------------------------------------------------------------------
def test_segments_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MONITOR_SEGMENTS", "country, device")
    assert load_settings().segments == ["country", "device"]
    monkeypatch.setenv("MONITOR_SEGMENTS", '["country"]')
    assert load_settings().segments == ["country"]
    monkeypatch.setenv("MONITOR_SEGMENTS", "country=PL")
    with pytest.raises(ValueError, match=r"segments: .*not a feature name.*MONITOR_SEGMENTS"):
        load_settings()


def test_a_profile_without_the_configured_segments_is_a_start_up_error(frame: pd.DataFrame):
    plain = build_profile("m", frame, built_at="2026-01-01T00:00:00Z")
    with pytest.raises(ValueError, match=r"model 'm' was built without segments, but the configuration sets "
                                         r"segments: \[country, device\] \(setting `segments` / MONITOR_SEGMENTS\)"):
        Monitor(settings_(), {"m": plain})
    only_device = with_segments(plain, frame, ["device"])
    with pytest.raises(ValueError, match=r"built with segments device, .*remove country from `segments`"):
        check_references([only_device], settings_())
    with pytest.raises(ValueError, match="6 segments of 'country', more than segment_max_values 3"):
        check_references([with_segments(plain, frame, ["country", "device"], 20)], settings_(segment_max_values=3))
    check_references([plain], settings_(segments=[]))  # no segments configured: any profile


def test_the_cli_names_the_reference_file_and_the_setting(frame: pd.DataFrame, tmp_path, monkeypatch):
    frame.to_csv(tmp_path / "ref.csv", index=False)
    runner = CliRunner()
    r = runner.invoke(app, ["reference", "build", "--model", "m", "--data", str(tmp_path / "ref.csv"),
                            "--out", str(tmp_path / "plain.json")])
    assert r.exit_code == 0, r.output
    (tmp_path / "ev.jsonl").write_bytes(b"")
    monkeypatch.setenv("MONITOR_SEGMENTS", "country")
    r = runner.invoke(app, ["replay", str(tmp_path / "ev.jsonl"), "--reference", str(tmp_path / "plain.json"),
                            "--out", str(tmp_path / "out")])
    text = " ".join(r.output.split())
    assert r.exit_code == 2 and "plain.json" in text and "segments: [country]" in text, text
    assert "--segments country" in text
    r = runner.invoke(app, ["reference", "build", "--model", "m", "--data", str(tmp_path / "ref.csv"),
                            "--out", str(tmp_path / "seg.json"), "--segments", "country,device",
                            "--segment-max-values", "4"])
    assert r.exit_code == 0, r.output
    assert "segments of country: US" in " ".join(r.output.split())
    assert list(ReferenceProfile.load(tmp_path / "seg.json").segments["country"]) == ["US", "DE", "FR", "GB", OTHER]


# -- the pipeline --------------------------------------------------------------------------------------------------
def test_only_the_moved_segment_flags_and_the_alert_names_it(profile: ReferenceProfile):
    """PL (5 %) moves by 0.8 sd of income from window 2: flagged in its first window; the whole model and the
    other segments stay quiet; the page says which segment, the retraining request names it."""
    st = settings_(policy={"retrain_consecutive_windows": 2})
    evs = [e for w in range(5) for e in events(4000, T0 + w * 300, 299, seed=w, pl_shift=8.0 if w >= 2 else 0.0)]
    pts, alerts, retrain = run(Monitor(st, {"m": profile}), evs)
    decision = st.policy.decision_methods
    flagged = {(p.tag("segment") or "", window(p)) for p in pts
               if p.measurement == "drift" and p.field("drifted") is True and p.tag("method") in decision}
    assert flagged == {("country=PL", w) for w in (2, 3, 4)}
    seg_tags = {p.tag("segment") for p in pts if p.measurement == "throughput"}
    assert seg_tags == {None, *(f"country={c}" for c in COUNTRIES), "device=mobile", "device=desktop"}
    pl = [a for a in alerts if a.status == "firing" and a.labels.get("segment") == "country=PL"]
    assert pl and {a.labels["alertname"] for a in pl} == {"FeatureDrift"}
    assert all(a.labels.get("segment") == "country=PL" for a in alerts)  # nothing else pages
    income = next(a for a in pl if a.labels["feature"] == "income" and a.severity == "warning")
    assert income.annotations["summary"].startswith("m [country=PL]: income drifted (psi=")
    assert "events in country=PL)" in income.annotations["description"]
    assert "var-segment=country%3DPL" in income.generator_url
    (req,) = retrain
    assert {e.segment for e in req.evidence} == {"country=PL"} and "income" in {e.feature for e in req.evidence}
    assert req.to_cloudevent()["data"]["evidence"][0]["segment"] == "country=PL"
    marks = [p for p in pts if p.measurement == "alerts"]
    assert marks and all(p.tag("segment") == "country=PL" for p in marks)
    summary = {(p.tag("segment"), window(p)): p.field("drifted_features") for p in pts
               if p.measurement == "drift_summary"}
    assert summary[("country=PL", 2)] >= 1 and summary[(None, 2)] == 0


def test_a_whole_model_shift_pages_once_for_the_model_not_per_segment(profile: ReferenceProfile):
    evs = [e for w in range(3) for e in events(3000, T0 + w * 300, 299, seed=w, all_shift=15.0 if w >= 1 else 0.0)]
    pts, alerts, _ = run(Monitor(settings_(), {"m": profile}), evs)
    drifted = {p.tag("segment") for p in pts if p.measurement == "drift" and p.tag("feature") == "income"
               and p.field("drifted") is True and window(p) == 1}
    assert None in drifted and "country=US" in drifted  # the points say where it moved …
    assert {a.labels.get("segment") for a in alerts} == {None}  # … the model's page covers the segments


def test_a_segment_only_error_burst_pages_for_the_segment(profile: ReferenceProfile):
    """15 % errors in IN (10 % of traffic): 1.5 % for the whole model, too little to page; IN pages."""
    evs = [e for w in range(4) for e in events(3000, T0 + w * 300, 299, seed=w, error_in="IN" if w == 3 else None,
                                                error_rate=0.15)]
    _, alerts, _ = run(Monitor(settings_(), {"m": profile}), evs)
    fired = [(a.labels["alertname"], a.labels.get("segment"), a.severity) for a in alerts if a.status == "firing"]
    assert fired == [("ErrorRate", "country=IN", "warning")]
    page = next(a for a in alerts if a.labels.get("segment") == "country=IN")
    assert page.annotations["summary"].startswith("m [country=IN]: error rate")
    assert "upstream timeout" in page.annotations["description"]


def test_a_segment_worse_than_the_model_pages_at_its_own_level(profile: ReferenceProfile):
    """50 % errors in DE (20 %): the model's 10 % is a warning; DE's critical is more, so it pages too."""
    evs = [e for w in range(4) for e in events(3000, T0 + w * 300, 299, seed=w, error_in="DE" if w == 3 else None)]
    _, alerts, _ = run(Monitor(settings_(), {"m": profile}), evs)
    fired = {(a.labels["alertname"], a.labels.get("segment"), a.severity) for a in alerts if a.status == "firing"}
    assert fired == {("ErrorRate", None, "warning"), ("ErrorRate", "country=DE", "warning"),
                     ("ErrorRate", "country=DE", "critical")}


def test_a_small_segment_window_reports_but_never_flags(profile: ReferenceProfile):
    """PL has ~10 events per window here (min_window_events 50): its drift is written, never flagged."""
    evs = [e for w in range(3) for e in events(200, T0 + w * 300, 299, seed=w, pl_shift=40.0 if w >= 1 else 0.0)]
    pts, alerts, _ = run(Monitor(settings_(), {"m": profile}), evs)
    pl = [p for p in pts if p.measurement == "drift" and p.tag("segment") == "country=PL" and window(p) >= 1]
    assert pl and max(p.field("score") for p in pl if p.tag("method") == "psi") > 1.0
    assert not any(p.field("drifted") for p in pl) and not alerts


def test_stable_traffic_gives_no_alarm_with_segments_on(profile: ReferenceProfile):
    evs = [e for w in range(6) for e in events(4000, T0 + w * 300, 299, seed=100 + w)]
    pts, alerts, retrain = run(Monitor(settings_(), {"m": profile}), evs)
    decision = settings_().policy.decision_methods
    assert not [p for p in pts if p.measurement == "drift" and p.field("drifted") is True
                and p.tag("method") in decision]
    assert not alerts and not retrain


def test_segment_performance_follows_the_label_join(profile: ReferenceProfile):
    """Labels update their prediction's segments too, also after the window closed (points rewritten)."""
    evs = events(2000, T0, 299, seed=3)
    labels = [LabelEvent("m", e.request_id, e.timestamp + 400, 1 - int(e.prediction) if e.features["country"] == "FR"
                         else int(e.prediction)) for e in evs if e.prediction is not None]
    late = events(50, T0 + 420, 30, seed=4)  # moves the watermark past the first window's end
    pts, _, _ = run(Monitor(settings_(), {"m": profile}), [*evs, *late, *labels])
    acc: dict[str | None, float] = {}
    for p in pts:  # the last write of a series wins
        if p.measurement == "performance" and p.tag("metric") == "accuracy" and window(p) == 0:
            acc[p.tag("segment")] = float(p.field("value"))  # type: ignore[arg-type]
    assert acc["country=FR"] == 0.0 and acc["country=DE"] == 1.0
    assert 0.8 < acc[None] < 0.9


def test_the_benchmark_outcomes_hold_on_a_small_seed():
    """Pins `python -m simulations.bench_segments`: the 5 % segment is flagged in its first window at ≥ 4,000
    events per window with everything else quiet; the stable scenarios flag no more with segments on."""
    from simulations.bench_segments import detection

    res = detection(seeds=1, windows=6)
    (shift,) = res["segment_shift"]
    assert shift["events_per_window"] >= 4000 and shift["first_window_flagged"] and shift["quiet_elsewhere"]
    assert {segment for _, segment in shift["alerts"]} == {"country=PL"}
    off, on = res["stable"]["off"], res["stable"]["on"]
    assert on["segment_feature_windows"] > 5 * on["model_feature_windows"]  # segments were really measured
    assert on["model_flags"] + on["segment_flags"] <= off["model_flags"] and on["alerts"] <= off["alerts"]


def test_segment_alerts_and_baselines_survive_a_takeover(profile: ReferenceProfile):
    """The owner's checkpoint carries each segment's open alerts and baselines: a new owner does not page again."""
    st = settings_()
    first = Monitor(st, {"m": profile})
    evs = [e for w in range(3) for e in events(4000, T0 + w * 300, 299, seed=w, pl_shift=8.0 if w >= 1 else 0.0)]
    _, alerts, _ = run(first, evs)
    assert any(a.labels.get("segment") == "country=PL" for a in alerts)
    cp = orjson.loads(orjson.dumps(first.owner.checkpoint("m")))
    state = first.owner.finalizer.policy.state("m", "v1")
    assert "country=PL" in state.segments and state.segments["country=PL"].alerts
    second = Monitor(st, {"m": profile})
    second.owner.restore(cp)
    assert second.owner.finalizer.policy.state("m", "v1") == state
    later = [e for e in events(4000, T0 + 3 * 300, 299, seed=9, pl_shift=8.0)]
    _, again, _ = run(second, later)
    assert not [a for a in again if a.status == "firing"]  # still firing from before: no new page


def test_a_warm_up_profile_is_built_with_the_configured_segments():
    """Without a profile, the model's first events become its reference — with the configured segments; windows
    open when it arrives are binned at close, segments included."""
    st = settings_(warmup_events=3000)
    mon = Monitor(st, {})
    evs = [e for w in range(4) for e in events(2000, T0 + w * 300, 299, seed=w, pl_shift=8.0 if w >= 3 else 0.0)]
    pts, _, _ = run(mon, evs)
    prof = mon.book.get("m")
    assert prof is not None and list(prof.segments) == ["country", "device"]
    assert set(prof.segments["country"]) <= set(COUNTRIES) and "US" in prof.segments["country"]
    segs = {(p.tag("segment"), window(p)) for p in pts if p.measurement == "drift" and p.tag("segment")}
    # windows 0 and 1 built the profile; window 2 was open when it came (its rows are binned at close)
    assert {w for s, w in segs if s == "country=US"} == {2, 3}
    flagged = {(p.tag("segment"), window(p)) for p in pts if p.measurement == "drift" and p.field("drifted") is True
               and p.tag("method") in st.policy.decision_methods}
    assert flagged == {("country=PL", 3)}


def test_the_example_subscriber_passes_the_segments_on():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "retraining_subscriber.py"
    spec = importlib.util.spec_from_file_location("retraining_subscriber", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    event = {"id": "x", "data": {"model": "m", "evidence": [
        {"feature": "income", "method": "psi", "score": 3.0, "threshold": 0.1, "segment": "country=PL"},
        {"feature": "income", "method": "psi", "score": 0.2, "threshold": 0.1}]}}
    env = mod.environment(event)
    assert env["DRIFTLINE_SEGMENTS"] == "country=PL" and env["DRIFTLINE_FEATURES"] == "income"
    assert mod.environment({"id": "y", "data": {"evidence": []}})["DRIFTLINE_SEGMENTS"] == ""


def test_a_value_the_line_protocol_cannot_carry_pools_into_other():
    """A segment value becomes a tag (``segment=feature=value``): one with a control character never gets its own
    segment (it pools into ``__other__``), and a hand-edited profile with one is refused when loaded."""
    rng = np.random.default_rng(1)
    t = pd.DataFrame({"x": rng.normal(0, 1, 3000), "c": ["ok"] * 1500 + ["bad\nvalue"] * 1000 + ["rest"] * 500})
    prof = with_segments(build_profile("m", t, built_at="2026-01-01T00:00:00Z"), t, ["c"])
    assert list(prof.segments["c"]) == ["ok", "rest", OTHER] and prof.segments["c"][OTHER].rows == 1000
    data = prof.to_dict()
    data["segments"]["c"][0]["value"] = "o\rk"
    with pytest.raises(ValueError, match=r"segment 'c=o\\rk' contains a control character"):
        ReferenceProfile.from_dict(data)
