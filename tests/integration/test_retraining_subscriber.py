"""examples/retraining_subscriber.py on the real broker: one command run per CloudEvent id, with the event's
fields in its environment; duplicates (same id) skipped, also across restarts; a failing command retried."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kafka import KafkaProducer

from monitor.devservices import create_topics
from monitor.types import Evidence, RetrainRequest, WindowRange

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
ROOT = Path(__file__).resolve().parents[2]
T0 = 1_767_225_600.0
REF = "sha256:" + "ab" * 32


def request(model: str, end_window: int, since_window: int) -> dict:
    r = RetrainRequest(model=model, model_version="v3", reason="drift",
                       window=WindowRange(T0 + (end_window - 1) * 300, T0 + end_window * 300),
                       evidence=(Evidence("amount", "psi", 0.91, 0.1), Evidence("__score__", "psi", 0.6, 0.1)),
                       consecutive_windows=3, cooldown_s=3600.0, drift_since=T0 + since_window * 300, reference=REF)
    return r.to_cloudevent("driftline/test")


def produce(bootstrap: str, topic: str, events: list[dict | bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    for e in events:
        value = e if isinstance(e, bytes) else json.dumps(e).encode()
        key = b"" if isinstance(e, bytes) else e["subject"].encode()
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def subscriber(bootstrap: str, topic: str, group: str, state: Path, log: Path) -> subprocess.CompletedProcess[str]:
    # the command appends its DRIFTLINE_* environment to `log`; it fails for model "broken"
    script = ("import json, os, sys; env = {k: v for k, v in os.environ.items() if k.startswith('DRIFTLINE_')}; "
              f"open({str(log)!r}, 'a').write(json.dumps(env) + '\\n'); "
              "sys.exit(1 if env['DRIFTLINE_MODEL'] == 'broken' else 0)")
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / "retraining_subscriber.py"), "--bootstrap", bootstrap,
         "--topic", topic, "--group", group, "--state", str(state), "--exit-when-idle", "3", "--attempts", "2",
         "--backoff", "0.05", "--session-timeout-ms", "6000", "--", sys.executable, "-c", script],
        capture_output=True, text=True, timeout=120)


def runs(log: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_one_run_per_event_id_with_the_event_in_the_environment(kafka_broker: str, tmp_path: Path) -> None:
    topic = f"retraining-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_broker, {topic: 2})
    fraud, churn, broken = request("fraud", 7, 4), request("churn", 9, 5), request("broken", 6, 3)
    produce(kafka_broker, topic, [fraud, churn, fraud, b"not json", broken, churn])
    state, log = tmp_path / "seen.sqlite", tmp_path / "runs.jsonl"

    first = subscriber(kafka_broker, topic, "retrain-a", state, log)
    assert first.returncode == 1, first.stderr  # the broken model's command failed
    by_id: dict[str, list[dict[str, str]]] = {}
    for env in runs(log):
        by_id.setdefault(env["DRIFTLINE_EVENT_ID"], []).append(env)
    assert {k: len(v) for k, v in by_id.items()} == {fraud["id"]: 1, churn["id"]: 1, broken["id"]: 2}
    env = by_id[fraud["id"]][0]
    assert env["DRIFTLINE_MODEL"] == "fraud" and env["DRIFTLINE_MODEL_VERSION"] == "v3"
    assert env["DRIFTLINE_REASON"] == "drift" and env["DRIFTLINE_REFERENCE"] == REF
    assert env["DRIFTLINE_DRIFT_SINCE"] == "2026-01-01T00:20:00.000Z"
    assert (env["DRIFTLINE_WINDOW_START"], env["DRIFTLINE_WINDOW_END"]) == ("2026-01-01T00:30:00.000Z",
                                                                            "2026-01-01T00:35:00.000Z")
    assert env["DRIFTLINE_FEATURES"] == "__score__,amount"
    assert json.loads(env["DRIFTLINE_EVIDENCE"]) == fraud["data"]["evidence"]
    assert json.loads(env["DRIFTLINE_EVENT"]) == fraud
    assert "2 duplicates skipped" in first.stderr and "not a retraining request" in first.stderr

    # Driftline re-publishes after a crash (same ids), plus one new request: only the new one and the
    # failed one run (new group: Kafka offsets do not help, the id store does)
    new = request("fraud", 19, 16)
    produce(kafka_broker, topic, [fraud, new])
    log.unlink()
    second = subscriber(kafka_broker, topic, "retrain-b", state, log)
    assert second.returncode == 1
    assert sorted(e["DRIFTLINE_EVENT_ID"] for e in runs(log)) == sorted([new["id"], broken["id"], broken["id"]])

    # the first group resumes from its committed offsets: only the two new records, both already done
    log.unlink()
    third = subscriber(kafka_broker, topic, "retrain-a", state, log)
    assert third.returncode == 0, third.stderr
    assert runs(log) == [] and "0 run, 2 duplicates skipped, 0 failed" in third.stderr
