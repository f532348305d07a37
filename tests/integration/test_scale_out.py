"""Exact windows whatever the producers' keys: two workers, four partitions, one model spread over every
partition (key = request id or none) or not (key = model). Every window's event count and every drift score
equal those of the single-process pipeline over the same events; the same after kill -9 of one worker in
the middle of a window."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from monitor.config import MonitorSettings
from monitor.core.reference import build_profile
from monitor.devservices import create_topics
from monitor.events import decode_any, parse_timestamp
from monitor.lineprotocol import read_lp
from monitor.pipeline import Monitor
from monitor.scenarios import get_scenario
from monitor.types import LabelEvent, PredictionEvent
from tests.integration.harness import Worker, wait_for

pytestmark = pytest.mark.integration
T0 = 1_767_225_600.0
W = 10.0
WINDOWS = 10


def _produce(bootstrap: str, events: list[dict], topics: dict[str, str], keying: str) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for e in events:
        key = {"request_id": e["request_id"].encode(), "model": e["model"].encode(), "none": None}[keying]
        p.send(topics["labels"] if "label" in e else topics["predictions"], key=key, value=orjson.dumps(e))
    p.flush()
    p.close()


def _expected(events: list[dict], refs: dict, labels: bool) -> dict[tuple, float]:
    """(measurement, model, feature, method, window end) → value, from the single-process pipeline."""
    mon = Monitor(MonitorSettings(window="10s", allowed_lateness="2s", labels_topic="labels" if labels else ""), refs)
    decoded = [decode_any(orjson.dumps(e)) for e in events]
    mon.observe([e for e in decoded if isinstance(e, PredictionEvent | LabelEvent)])
    return _index(mon.close_all().points)


def _index(points) -> dict[tuple, float]:
    out: dict[tuple, float] = {}
    for p in points:
        if p.measurement == "throughput":
            out[("events", p.tag("model"), "", "", p.time_ns)] = float(p.field("events"))  # type: ignore[arg-type]
        elif p.measurement == "drift":
            out[("drift", p.tag("model"), p.tag("feature"), p.tag("method"), p.time_ns)] = float(p.field("score"))  # type: ignore[arg-type]
    return out


def _written(files: list[Path]) -> dict[tuple, set[float]]:
    out: dict[tuple, set[float]] = defaultdict(set)
    for f in files:
        if f.exists():
            for key, value in _index(read_lp(f)).items():
                out[key].add(value)
    return out


def _run(kafka_broker: str, tmp_path: Path, keying: str, kill: bool) -> None:
    spec = get_scenario("multi_model")
    refdir = tmp_path / "refs"
    refdir.mkdir()
    refs = {}
    for model, frame in spec.reference(rows=5_000, seed=11).items():
        refs[model] = build_profile(model, frame)
        refs[model].save(refdir / f"{model}.json")
    labels = keying != "none"  # labels keyed unlike their predictions cannot be joined (docs/events.md)
    name = f"so-{keying}-{'kill' if kill else 'run'}"
    topics = {"predictions": f"{name}-predictions", "labels": f"{name}-labels"}
    create_topics(kafka_broker, {topics["predictions"]: 4, topics["labels"]: 4})
    events = [e for e in spec.events(seed=11, windows=WINDOWS, window_s=W, rate=10.0, start=T0)
              if isinstance(e, dict) and (labels or "label" not in e)]
    expected = _expected(events, refs, labels)
    env = dict(MONITOR_REFERENCE=str(refdir), MONITOR_PREDICTIONS_TOPIC=topics["predictions"],
               MONITOR_LABELS_TOPIC=topics["labels"] if labels else "", MONITOR_CONSUMER_GROUP=name,
               MONITOR_RETRAINING_TOPIC=f"{name}-retraining", MONITOR_DLQ_TOPIC=f"{name}-dlq")
    a = Worker(tmp_path, kafka_broker, "a", MONITOR_LP_FILE=str(tmp_path / "a.lp"), **env).start()
    b = Worker(tmp_path, kafka_broker, "b", MONITOR_LP_FILE=str(tmp_path / "b.lp"), **env).start()
    files = [tmp_path / "a.lp", tmp_path / "b.lp"]
    try:
        if kill:
            # the crash comes in the middle of window 5: part of it is consumed, none of it finalized
            cut = 1 + max(i for i, e in enumerate(events)
                          if "label" not in e and parse_timestamp(e["timestamp"]) < T0 + 5.5 * W)
            _produce(kafka_broker, events[:cut], topics, keying)
            wait_for(lambda: a.metric("driftline_sources") + b.metric("driftline_sources") >= 4, 60)
            wait_for(lambda: len([k for k in _written(files) if k[0] == "events"]) >= 3 * 3, 90)
            wait_for(lambda: a.metric("driftline_events_total") + b.metric("driftline_events_total") >= cut, 60)
            a.kill()
            _produce(kafka_broker, events[cut:], topics, keying)
        else:
            _produce(kafka_broker, events, topics, keying)
        wait_for(lambda: a.metric("driftline_sources") + b.metric("driftline_sources") >= 4 or kill, 60)
        wait_for(lambda: expected.keys() <= _written(files).keys(), 150)
        if not kill:  # both workers did stage-1 work: one model's events spread over both
            assert a.metric("driftline_partials_sent_total") > 0 and b.metric("driftline_partials_sent_total") > 0
    finally:
        a.kill()
        b.stop()
    written = _written(files)
    wrong = {k: (sorted(written.get(k, ())), v) for k, v in expected.items() if written.get(k) != {v}}
    if wrong:
        print("DIAGNOSIS", _diagnose(kafka_broker, name, topics["predictions"], wrong))
    assert not wrong, f"{len(wrong)} of {len(expected)} window values missing or different: " \
                      f"{dict(list(wrong.items())[:8])}"
    extra = set(written) - set(expected)
    assert not extra, f"points for windows the pipeline does not have: {sorted(extra)[:5]}"


def _diagnose(bootstrap: str, group: str, topic: str, wrong: dict) -> str:
    """Per source: the partials of the first wrong window (generations, events, bin totals) and the events the
    input partition holds for it."""
    from monitor.wire import PartialRecord, decode, state_from_wire
    from tests.integration.harness import read_topic

    model, t_ns = next((k[1], k[4]) for k in wrong)
    start = t_ns / 1e9 - W
    lines = []
    for r in read_topic(bootstrap, f"{group}.partials"):
        rec = decode(r.value)
        if isinstance(rec, PartialRecord) and rec.model == model and rec.start == start:
            st = state_from_wire(rec.state) if rec.state is not None else None
            lines.append(f"partition {r.partition} offset {r.offset}: source {rec.source} epoch {rec.epoch} "
                         f"seq {rec.seq} events {st.events if st else None} "
                         f"bins {int(st.num_counts.sum()) if st is not None and st.num_counts is not None else None}")
    per_partition: dict[int, int] = defaultdict(int)
    for r in read_topic(bootstrap, topic):
        e = orjson.loads(r.value)
        if e.get("model") == model and start <= parse_timestamp(e["timestamp"]) < start + W:
            per_partition[r.partition] += 1
    return "\n".join([f"{model} window start {start}", *lines, f"input events per partition: {dict(per_partition)}"])


@pytest.mark.parametrize("keying", ["request_id", "none", "model"])
def test_two_workers_exact_whatever_the_keying(kafka_broker, tmp_path, keying):
    _run(kafka_broker, tmp_path, keying, kill=False)


def test_kill_one_of_two_workers_mid_window_keyed_by_request_id(kafka_broker, tmp_path):
    _run(kafka_broker, tmp_path, "request_id", kill=True)
