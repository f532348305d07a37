"""The scenario library: determinism, event shapes (docs/events.md), event-time order, truth sidecars, planted effects."""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import orjson
import pandas as pd
import pytest
from typer.testing import CliRunner

from monitor.cli_simulate import parse_duration
from monitor.scenarios import (
    DEFAULT_START,
    SCENARIOS,
    ScenarioSpec,
    dump_line,
    get_scenario,
    write_reference_table,
    write_scenario,
)
from monitor.scenarios.model import FEATURES, SEA_FEATURES, Change
from monitor.scenarios.produce import normalize_bootstrap, produce_events

T0 = DEFAULT_START
SMALL = {"windows": 12, "window_s": 20.0, "rate": 5.0}  # ~100 predictions per window and model
JITTER_BOUND_S = 10.0  # the generator jitters by at most 4 s; the default allowed lateness is 60 s
TARGETS = {"__prediction__", "__score__", "__multivariate__", "latency", "errors", "accuracy"}
KINDS = {"mean_shift", "gradual", "new_category", "latency_regression", "error_burst", "accuracy_drop",
         "concept_drift", "score_shift", "seasonal", "rhythm", "correlation_flip"}
PREDICTION_FIELDS = {"model", "model_version", "request_id", "timestamp", "features", "prediction", "score",
                     "latency_ms", "error"}


def ts_of(value: float | str) -> float:
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return float(value)


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def contract_problem(ev: Any) -> str | None:
    """Why ``ev`` (a decoded JSON value) breaks the input contract (docs/events.md), or None."""
    if not isinstance(ev, dict):
        return "not an object"
    for key in ("model", "request_id"):
        if not isinstance(ev.get(key), str) or not 1 <= len(ev[key]) <= 200:
            return f"bad {key}"
    stamp = ev.get("timestamp")
    if isinstance(stamp, str):
        try:
            ts_of(stamp)
        except ValueError:
            return "bad timestamp string"
    elif not is_number(stamp):
        return "bad timestamp"
    if "label" in ev:
        return None if set(ev) == {"model", "request_id", "timestamp", "label"} else "label fields"
    feats = ev.get("features")
    if not isinstance(feats, dict):
        return "features not an object"
    for v in feats.values():
        if not (v is None or isinstance(v, str | bool) or is_number(v)):
            return "bad feature value"
    if "prediction" not in ev:
        return "missing prediction"
    pred, error = ev["prediction"], ev.get("error")
    if pred is None and error is None:
        return "null prediction without error"
    if pred is not None and not (isinstance(pred, str) or is_number(pred)):
        return "bad prediction"
    if "score" in ev and not (is_number(ev["score"]) and 0 <= ev["score"] <= 1):
        return "bad score"
    if "latency_ms" in ev and not (is_number(ev["latency_ms"]) and ev["latency_ms"] >= 0):
        return "bad latency"
    if error is not None and not isinstance(error, str):
        return "bad error"
    if "model_version" in ev and not isinstance(ev["model_version"], str):
        return "bad model_version"
    return None


def parse_line(line: bytes) -> Any:
    """Strict JSON (NaN/Infinity rejected, unlike Python's json default)."""
    try:
        return json.loads(line, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except ValueError:
        return None


def gen(name: str, seed: int = 0, **kw: Any) -> list[dict[str, Any] | str]:
    return list(get_scenario(name).events(seed=seed, **{**SMALL, **kw}))


def window(ev: dict[str, Any], window_s: float) -> int:
    return int((ts_of(ev["timestamp"]) - T0) // window_s)


def per_window(events: Iterable[dict[str, Any] | str], window_s: float, model: str | None = None,
               ) -> tuple[dict[int, list[dict[str, Any]]], dict[int, list[tuple[Any, Any]]]]:
    """Predictions by window, and (prediction, label) pairs by the prediction's window."""
    preds: dict[str, dict[str, Any]] = {}
    by_w: dict[int, list[dict[str, Any]]] = defaultdict(list)
    pairs: dict[int, list[tuple[Any, Any]]] = defaultdict(list)
    for ev in events:
        if not isinstance(ev, dict) or (model is not None and ev["model"] != model):
            continue
        if "label" in ev:
            p = preds[ev["request_id"]]
            pairs[window(p, window_s)].append((p["prediction"], ev["label"]))
        else:
            preds[ev["request_id"]] = ev
            by_w[window(ev, window_s)].append(ev)
    return by_w, pairs


@pytest.fixture(scope="module")
def mixed() -> tuple[dict[int, list[dict[str, Any]]], dict[int, list[tuple[Any, Any]]]]:
    return per_window(get_scenario("mixed").events(seed=7, windows=12, window_s=60.0, rate=20.0), 60.0)


# -- every scenario ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(SCENARIOS))
def test_same_seed_same_bytes_other_seed_other_bytes(name: str) -> None:
    a = b"\n".join(dump_line(x) for x in gen(name, seed=11))
    assert a == b"\n".join(dump_line(x) for x in gen(name, seed=11))
    assert a != b"\n".join(dump_line(x) for x in gen(name, seed=12))
    ref = get_scenario(name).reference(rows=500, seed=3)
    again = get_scenario(name).reference(rows=500, seed=3)
    for model in ref:
        pd.testing.assert_frame_equal(ref[model], again[model])


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_events_follow_the_contract_and_event_time_order(name: str) -> None:
    from monitor.events import decode_any
    from monitor.types import Rejection

    spec = get_scenario(name)
    items = gen(name, seed=1)
    assert items
    newest = -math.inf
    seen_predictions: dict[str, float] = {}
    malformed = predictions = 0
    text_stamps = 0
    for item in items:
        raw = dump_line(item)
        decoded = decode_any(raw)
        if isinstance(item, str):
            malformed += 1
            parsed = parse_line(raw)
            assert parsed is None or contract_problem(parsed) is not None, item
            assert isinstance(decoded, Rejection), item
            continue
        assert contract_problem(parse_line(raw)) is None, item
        assert not isinstance(decoded, Rejection), (decoded.reason, item)
        assert item["model"] in spec.models
        ts = ts_of(item["timestamp"])
        text_stamps += isinstance(item["timestamp"], str)
        assert T0 <= ts < T0 + SMALL["windows"] * SMALL["window_s"] * 4
        assert ts >= newest - JITTER_BOUND_S, "out of order beyond the jitter bound"
        newest = max(newest, ts)
        if "label" in item:
            assert item["request_id"] in seen_predictions, "label before its prediction"
            assert ts > seen_predictions[item["request_id"]]
            assert item["label"] in (0, 1)
        else:
            predictions += 1
            assert item["request_id"] not in seen_predictions, "request_id reused"
            seen_predictions[item["request_id"]] = ts
            assert set(item) <= PREDICTION_FIELDS | {"trace_id"}
            assert set(item["features"]) == set(spec.features_of(item["model"]))
            if item["prediction"] is not None:
                assert item["prediction"] == int(item["score"] >= 0.5)
    assert 0 < text_stamps < 0.15 * len(items)
    if name == "malformed_storm":
        assert 0.07 < malformed / (malformed + predictions) < 0.13
    else:
        assert malformed == 0


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_truth_sidecar_is_consistent(name: str) -> None:
    spec = get_scenario(name)
    truth = spec.truth(windows=12, window_s=300.0, start=T0, rate=20.0, seed=4)
    assert truth["scenario"] == name and truth["seed"] == 4 and truth["window_s"] == 300.0
    assert truth["start"] == T0 and truth["models"] == list(spec.models)
    orjson.dumps(truth)
    for c in truth["changes"]:
        assert set(c) == {"target", "kind", "start_window", "end_window", "magnitude", "model", "segment"}
        if c["segment"] is not None:
            seg_feature, _ = c["segment"].split("=", 1)
            assert seg_feature in spec.segments and c["segment"] in truth["changed_segments"]
        assert c["kind"] in KINDS
        assert c["model"] in spec.models
        assert 0 <= c["start_window"] < 12
        assert c["end_window"] is None or c["start_window"] <= c["end_window"] < 12
        feature = c["target"].removeprefix("category:")
        assert c["target"] in TARGETS or feature in spec.features_of(c["model"])
        if c["kind"] not in ("seasonal",) and feature in spec.features_of(c["model"]):
            assert feature not in truth["stable_features"][c["model"]]
    for model, stable in truth["stable_features"].items():
        assert set(stable) <= set(spec.features_of(model))


def test_unknown_scenario_lists_the_names() -> None:
    with pytest.raises(ValueError, match="mixed"):
        get_scenario("nope")


def test_labels_arrive_up_to_three_windows_late_some_after_their_window_closed() -> None:
    items = gen("stable", seed=2)
    ts = {e["request_id"]: ts_of(e["timestamp"]) for e in items if isinstance(e, dict) and "label" not in e}
    delays = np.array([ts_of(e["timestamp"]) - ts[e["request_id"]] for e in items
                       if isinstance(e, dict) and "label" in e])
    assert 0.7 < len(delays) / len(ts) < 0.85
    assert delays.min() > 0 and delays.max() <= 3 * SMALL["window_s"] + 10
    assert (delays > SMALL["window_s"]).mean() > 0.2


# -- the end-to-end scenario ------------------------------------------------------------------------------

def test_mixed_truth_states_the_exact_windows() -> None:
    truth = get_scenario("mixed").truth(windows=12, window_s=300.0, start=T0, rate=20.0, seed=0)
    got = {(c["target"], c["kind"], c["start_window"], c["end_window"], c["magnitude"]) for c in truth["changes"]}
    assert got == {("amount", "mean_shift", 4, None, 1.0), ("latency", "latency_regression", 6, 7, 3.0),
                   ("errors", "error_burst", 8, 8, 0.25), ("accuracy", "accuracy_drop", 9, None, 0.3)}
    assert {"age", "device"} <= set(truth["stable_features"]["fraud"])
    assert "amount" not in truth["stable_features"]["fraud"]


def test_mixed_amount_shifts_one_sd_from_window_4(mixed: Any) -> None:
    by_w, _ = mixed
    sd = get_scenario("mixed").reference(rows=20_000, seed=7)["fraud"]["amount"].std()
    means = {w: np.mean([e["features"]["amount"] for e in evs]) for w, evs in by_w.items()}
    before = np.mean([means[w] for w in range(4)])
    for w in range(4):
        assert abs(means[w] - before) < 0.2 * sd
    for w in range(4, 12):
        assert 0.8 < (means[w] - before) / sd < 1.2, w
    for feature in ("age",):
        vals = {w: np.mean([e["features"][feature] for e in evs]) for w, evs in by_w.items()}
        assert max(vals.values()) - min(vals.values()) < 2.0


def test_mixed_latency_errors_and_accuracy(mixed: Any) -> None:
    by_w, pairs = mixed
    p50 = {w: np.median([e["latency_ms"] for e in evs if e.get("error") is None]) for w, evs in by_w.items()}
    base = np.median([p50[w] for w in range(6)])
    assert 18 < base < 22
    for w in range(12):
        assert (2.7 < p50[w] / base < 3.3) if w in (6, 7) else (0.9 < p50[w] / base < 1.1), w
    err = {w: np.mean([e.get("error") is not None for e in evs]) for w, evs in by_w.items()}
    assert 0.21 < err[8] < 0.29
    assert all(err[w] < 0.02 for w in range(12) if w != 8)
    for ev in (e for evs in by_w.values() for e in evs if e.get("error") is not None):
        assert ev["prediction"] is None and "score" not in ev
    acc = {w: np.mean([p == lab for p, lab in pairs[w]]) for w in range(12)}
    assert all(0.83 < acc[w] < 0.93 for w in range(9)), acc
    assert all(acc[w] < 0.72 for w in range(9, 12)), acc


# -- the other planted effects ----------------------------------------------------------------------------

def test_concept_drift_drops_accuracy_with_inputs_unchanged() -> None:
    by_w, pairs = per_window(get_scenario("concept_drift").events(seed=5, windows=10, window_s=60, rate=20), 60)
    acc = {w: np.mean([p == lab for p, lab in pairs[w]]) for w in range(10)}
    before = np.mean([acc[w] for w in range(5)])
    after = np.mean([acc[w] for w in range(5, 10)])
    assert before > 0.85 and 0.06 < before - after < 0.16, acc
    for f in SEA_FEATURES:
        m = [np.mean([e["features"][f] for e in by_w[w]]) for w in range(10)]
        assert max(m) - min(m) < 0.5, (f, m)  # uniform on [0, 10]: sd of a window mean ≈ 0.08


def test_new_category_unseen_in_reference_then_15_percent() -> None:
    spec = get_scenario("new_category")
    assert "BR" not in set(spec.reference(rows=5000)["fraud"]["country"])
    by_w, _ = per_window(spec.events(seed=0, windows=8, window_s=60, rate=20), 60)
    share = {w: np.mean([e["features"]["country"] == "BR" for e in evs]) for w, evs in by_w.items()}
    assert all(share[w] == 0 for w in range(5)) and all(0.11 < share[w] < 0.19 for w in range(5, 8))


def test_seasonal_cycle_is_in_the_reference_too() -> None:
    spec = get_scenario("seasonal")
    ref = spec.reference(rows=20_000, seed=0)["fraud"]["x1"]
    amp = spec.seasonal
    assert abs(ref.mean()) < 0.03 and abs(ref.var() - (1 + amp**2 / 2)) < 0.05
    by_w, _ = per_window(spec.events(seed=0, windows=12, window_s=60, rate=50), 60)
    m = np.array([np.mean([e["features"]["x1"] for e in by_w[w]]) for w in range(12)])
    expected = amp * np.array([np.mean(np.sin(2 * np.pi * (w + np.linspace(0, 1, 100)) / 6)) for w in range(12)])
    assert np.abs(m - expected).max() < 0.08
    assert "x1" in spec.truth(windows=12, window_s=60, start=T0, rate=50, seed=0)["stable_features"]["fraud"]


def test_gradual_ramps_then_holds() -> None:
    by_w, _ = per_window(gen("gradual", seed=0, window_s=30, rate=40), 30)
    m = [np.mean([e["features"]["x2"] for e in by_w[w]]) for w in range(12)]
    expected = [Change("x2", "gradual", 3, 9, 1.0).level(w) for w in range(12)]
    assert np.abs(np.array(m) - np.array(expected)).max() < 0.15


def test_error_burst_latency_regression_and_score_drift_windows() -> None:
    by_w, _ = per_window(gen("error_burst", seed=0, window_s=30, rate=40), 30)
    err = [np.mean([e.get("error") is not None for e in by_w[w]]) for w in range(12)]
    assert all((0.15 < e < 0.25) if w in (5, 6) else e < 0.02 for w, e in enumerate(err)), err
    by_w, _ = per_window(gen("latency_regression", seed=0, window_s=30, rate=40), 30)
    p50 = [np.median([e["latency_ms"] for e in by_w[w] if "latency_ms" in e]) for w in range(12)]
    assert all((50 < p < 70) if w >= 6 else (17 < p < 23) for w, p in enumerate(p50)), p50
    by_w, _ = per_window(gen("score_drift", seed=0, window_s=30, rate=40), 30)
    pos = [np.mean([e["prediction"] == 1 for e in by_w[w] if e["prediction"] is not None]) for w in range(12)]
    assert min(pos[5:]) > max(pos[:5]) + 0.05, pos


def test_multi_model_rates_and_drift_in_churn_only() -> None:
    spec = get_scenario("multi_model")
    by_model = {m: per_window(spec.events(seed=0, windows=8, window_s=20, rate=20), 20, m)[0] for m in spec.models}
    counts = {m: sum(len(v) for v in by_w.values()) / (8 * 20) for m, by_w in by_model.items()}
    assert counts == pytest.approx({"fraud": 5, "churn": 20, "ranker": 50}, rel=0.1)
    for m, by_w in by_model.items():
        before = np.mean([e["features"]["x3"] for w in range(4) for e in by_w[w]])
        after = np.mean([e["features"]["x3"] for w in range(4, 8) for e in by_w[w]])
        assert (0.8 < after - before < 1.2) if m == "churn" else abs(after - before) < 0.2, m
    assert {c["model"] for c in spec.truth(windows=8, window_s=20, start=T0, rate=20, seed=0)["changes"]} == {"churn"}


def test_reference_is_the_stable_regime_with_flat_columns() -> None:
    for name in ("mixed", "concept_drift", "multi_model"):
        spec = get_scenario(name)
        for model, frame in spec.reference(rows=4000, seed=1).items():
            assert list(frame.columns) == [*spec.features_of(model), "prediction", "score", "label"]
            assert frame["score"].between(0, 1).all()
            assert 0.84 < (frame["prediction"] == frame["label"]).mean() < 0.93
    assert set(FEATURES) == set(get_scenario("stable").features_of("fraud"))


def test_generation_is_fast() -> None:
    """CPU time of this process, not wall time: other processes on a loaded CI machine do not count."""
    spec = get_scenario("mixed")
    t = time.process_time()
    n = sum(1 for _ in spec.events(seed=0, windows=10, window_s=150.0, rate=20.0))
    elapsed = time.process_time() - t
    assert n > 50_000
    assert elapsed < 3.0, f"{n} events took {elapsed:.2f} s of CPU"


# -- files, CLI, producer ---------------------------------------------------------------------------------

def test_write_scenario_and_reference_table(tmp_path: Path) -> None:
    events, truth = write_scenario("mixed", tmp_path / "m.jsonl", seed=3, windows=3, window_s=20.0, rate=5.0)
    assert truth == tmp_path / "m.truth.json"
    lines = events.read_bytes().splitlines()
    assert lines == [dump_line(x) for x in get_scenario("mixed").events(seed=3, windows=3, window_s=20.0, rate=5.0)]
    assert orjson.loads(truth.read_bytes()) == orjson.loads(orjson.dumps(
        get_scenario("mixed").truth(windows=3, window_s=20.0, start=T0, rate=5.0, seed=3)))
    paths = write_reference_table("multi_model", tmp_path / "refs", rows=100, seed=1)
    assert set(paths) == {"fraud", "churn", "ranker"}
    assert paths["churn"] == tmp_path / "refs" / "churn.reference.csv"
    assert len(pd.read_csv(paths["churn"])) == 100


def test_cli_writes_the_same_bytes_and_rejects_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.cli import app

    monkeypatch.delenv("MONITOR_BROKER", raising=False)
    runner = CliRunner()
    r = runner.invoke(app, ["simulate", "error_burst", "--out", str(tmp_path / "e.jsonl"), "--seed", "2",
                            "--windows", "3", "--window", "20s", "--rate", "5", "--reference-dir",
                            str(tmp_path / "refs")])
    assert r.exit_code == 0, r.output
    write_scenario("error_burst", tmp_path / "w.jsonl", seed=2, windows=3, window_s=20.0, rate=5.0)
    assert (tmp_path / "e.jsonl").read_bytes() == (tmp_path / "w.jsonl").read_bytes()
    assert (tmp_path / "e.truth.json").exists() and (tmp_path / "refs" / "fraud.reference.csv").exists()
    r = runner.invoke(app, ["simulate", "--list"])
    assert r.exit_code == 0 and all(name in r.output for name in SCENARIOS)
    for args in (["nope", "--out", "x"], ["mixed", "--window", "5x", "--out", "x"], ["mixed"],
                 ["mixed", "--out", "x", "--broker", "h:1"]):
        assert runner.invoke(app, ["simulate", *args]).exit_code == 2, args


def test_parse_duration() -> None:
    assert [parse_duration(t) for t in ("5m", "30s", "1h", "250ms", "90", "1.5m")] == [
        300.0, 30.0, 3600.0, 0.25, 90.0, 90.0]
    for bad in ("", "5x", "m", "-5m", "0s"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


class FakeProducer:
    """Records what produce_events sends; stands in for kafka.KafkaProducer."""

    sent: ClassVar[list[tuple[str, bytes | None, bytes]]] = []

    def __init__(self, **config: Any) -> None:
        self.config = config
        FakeProducer.sent = []

    def send(self, topic: str, key: bytes | None, value: bytes) -> Any:
        FakeProducer.sent.append((topic, key, value))

        class Future:
            def add_errback(self, fn: Any) -> None:
                pass

        return Future()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_produce_routes_topics_and_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    import kafka

    monkeypatch.setattr(kafka, "KafkaProducer", FakeProducer)
    items = gen("malformed_storm", seed=0, windows=2)
    seen: list[int] = []
    n = produce_events(items, "kafka://127.0.0.1:9", predictions_topic="p", labels_topic="l", progress=seen.append)
    assert n == len(items) == len(FakeProducer.sent) and seen[-1] == n
    for item, (topic, key, value) in zip(items, FakeProducer.sent, strict=True):
        assert value == dump_line(item)
        if isinstance(item, str):
            assert (topic, key) == ("p", None)
        else:
            assert topic == ("l" if "label" in item else "p") and key == item["model"].encode()
    assert normalize_bootstrap("kafka://a:1;b:2") == "a:1,b:2"
    with pytest.raises(ValueError):
        normalize_bootstrap("kafka://")


def test_scenario_spec_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        list(ScenarioSpec("x", "y").events(window_s=0))


def test_segment_shift_moves_one_five_percent_segment_only() -> None:
    """Only country=PL's amount moves (+3 sd from window 4); PL is ~5 % of traffic; the reference has PL."""
    spec = get_scenario("segment_shift")
    items = [e for e in spec.events(seed=1, windows=6, window_s=60.0, rate=20.0, start=T0)
             if isinstance(e, dict) and "label" not in e]
    frame = pd.DataFrame([{**e["features"], "w": int((ts_of(e["timestamp"]) - T0) // 60)} for e in items])
    assert abs((frame["country"] == "PL").mean() - 0.05) < 0.01
    assert len(frame) / 6 > 4000  # 4x the given rate: ~4,800 events per window here
    before, after = frame[frame["w"] < 4], frame[frame["w"] >= 4]
    pl_b, pl_a = before[before["country"] == "PL"], after[after["country"] == "PL"]
    rest_b, rest_a = before[before["country"] != "PL"], after[after["country"] != "PL"]
    sd = 31.2
    assert 0.15 * sd < pl_a["amount"].mean() - pl_b["amount"].mean() < 0.35 * sd
    assert abs(rest_a["amount"].mean() - rest_b["amount"].mean()) < 0.1 * sd
    ref = spec.reference(rows=20_000, seed=0)["fraud"]
    assert abs((ref["country"] == "PL").mean() - 0.05) < 0.01


def test_correlation_flip_changes_only_how_x3_and_x4_move_together() -> None:
    spec = get_scenario("correlation_flip")
    ref = spec.reference(rows=20_000, seed=1)["fraud"]
    assert abs(np.corrcoef(ref["x3"], ref["x4"])[0, 1] - 0.85) < 0.02
    events = [e for e in spec.events(seed=1, windows=8, window_s=60.0, rate=50.0)
              if isinstance(e, dict) and "features" in e]
    w = np.array([int((e["timestamp"] if isinstance(e["timestamp"], float) else 0) - T0) // 60 for e in events])
    x3 = np.array([e["features"]["x3"] for e in events])
    x4 = np.array([e["features"]["x4"] for e in events])
    ok = np.array([isinstance(e["timestamp"], float) for e in events])
    before, after = ok & (w < 5), ok & (w >= 5)
    assert np.corrcoef(x3[before], x4[before])[0, 1] > 0.8 and np.corrcoef(x3[after], x4[after])[0, 1] < -0.8
    for x in (x3, x4):  # marginals unchanged: N(0, 1) before and after
        assert abs(x[after].mean() - x[before].mean()) < 0.1 and abs(x[after].std() / x[before].std() - 1) < 0.1
