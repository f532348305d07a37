"""Trailing and seasonal baselines across a real crash: a `monitor run` worker is killed (-9) mid-stream, after
baseline blocks were closed and written to the checkpoint topic, and a new process takes over. Every drift
point against a baseline — written by the first worker, the second, or both — equals what one in-process
pipeline computes over the same events: the new owner restored the blocks instead of starting over."""

from __future__ import annotations

from collections import defaultdict

import orjson
import pytest

from monitor.config import MonitorSettings
from monitor.core.reference import build_profile
from monitor.devservices import create_topics
from monitor.events import decode_any, parse_timestamp
from monitor.lineprotocol import read_lp
from monitor.pipeline import Monitor
from monitor.scenarios import get_scenario
from monitor.scenarios.produce import produce_events
from monitor.types import PredictionEvent
from tests.integration.harness import Worker, wait_for

pytestmark = pytest.mark.integration
T0 = 1_767_225_600.0
W = 10.0
WINDOWS = 14
BASELINES = {"trailing": "40s", "seasonal": "20s", "block": "20s", "min_events": "50", "adopt_after": "30s"}


def test_a_killed_worker_s_successor_keeps_the_baselines(kafka_broker, tmp_path):
    spec = get_scenario("sudden_shift")
    ref = build_profile("fraud", spec.reference(rows=5_000, seed=3)["fraud"].drop(columns=["label"]))
    ref.save(tmp_path / "fraud.json")
    events = [e for e in spec.events(seed=3, windows=WINDOWS, window_s=W, rate=20.0, start=T0)
              if isinstance(e, dict) and "label" not in e]
    settings = MonitorSettings(window="10s", allowed_lateness="2s", labels_topic="", baselines=BASELINES)
    mon = Monitor(settings, {"fraud": ref})
    decoded = [decode_any(orjson.dumps(e), topic="predictions") for e in events]
    assert all(isinstance(e, PredictionEvent) for e in decoded)
    mon.observe(decoded)  # type: ignore[arg-type]
    expected = {p.series_key(): p.fields for p in mon.close_all().points
                if p.measurement in ("drift", "drift_summary") and p.tag("baseline")}
    assert {dict(k[1])["baseline"] for k in expected} == {"trailing", "seasonal"}

    create_topics(kafka_broker, {"bl-predictions": 4})
    env = {"MONITOR_REFERENCE": str(tmp_path / "fraud.json"), "MONITOR_PREDICTIONS_TOPIC": "bl-predictions",
           "MONITOR_LABELS_TOPIC": "", "MONITOR_CONSUMER_GROUP": "driftline-baselines",
           "MONITOR_DLQ_TOPIC": "bl-dlq", "MONITOR_RETRAINING_TOPIC": "bl-retraining", "MONITOR_IDLE_TIMEOUT": "30s",
           **{f"MONITOR_BASELINES__{k.upper()}": v for k, v in BASELINES.items()}}
    # crash in window 9: blocks 0..3 (windows 0..7) are closed and written when the process dies
    cut = 1 + max(i for i, e in enumerate(events) if parse_timestamp(e["timestamp"]) < T0 + 9.5 * W)
    first = Worker(tmp_path, kafka_broker, "first", MONITOR_LP_FILE=str(tmp_path / "first.lp"), **env).start()
    second = None
    try:
        produce_events(events[:cut], kafka_broker, predictions_topic="bl-predictions", labels_topic="")
        wait_for(lambda: first.metric("driftline_windows_closed_total") >= 8, 90)
        wait_for(lambda: first.metric("driftline_events_total") >= cut, 30)
        first.kill()
        second = Worker(tmp_path, kafka_broker, "second", MONITOR_LP_FILE=str(tmp_path / "second.lp"),
                        **{**env, "MONITOR_IDLE_TIMEOUT": "2s"}).start()
        produce_events(events[cut:], kafka_broker, predictions_topic="bl-predictions", labels_topic="")

        def written() -> dict[tuple, set[tuple]]:
            out: dict[tuple, set[tuple]] = defaultdict(set)
            for f in ("first.lp", "second.lp"):
                if (tmp_path / f).exists():
                    for p in read_lp(tmp_path / f):
                        if p.measurement in ("drift", "drift_summary") and p.tag("baseline"):
                            out[p.series_key()].add(p.fields)
            return out

        wait_for(lambda: expected.keys() <= written().keys(), 120)
    finally:
        first.kill()
        if second is not None:
            second.stop()
    got = written()
    wrong = {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != {v}}
    assert not wrong, f"baseline points missing or different (written, expected): {list(wrong.items())[:3]}"
    by_worker = {f: {p.series_key() for p in read_lp(tmp_path / f) if p.tag("baseline")}
                 for f in ("first.lp", "second.lp")}
    late = min(k[2] for k in expected if k in by_worker["second.lp"] and k not in by_worker["first.lp"])
    assert late > T0 * 1e9 + 8 * W * 1e9  # the successor compared windows after the crash against restored blocks
    print(f"{len(expected)} baseline points checked; first worker wrote {len(by_worker['first.lp'])}, "
          f"second {len(by_worker['second.lp'])}")
