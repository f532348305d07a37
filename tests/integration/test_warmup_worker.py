"""No reference profile: the owner of each model builds one from its first events (the same profile however the
events are keyed and spread), publishes it, and every worker bins with it from then on — the drift of the
windows after the warm-up equals the single-process pipeline's, with two workers sharing the partitions."""

from __future__ import annotations

import orjson
import pytest

from monitor.config import MonitorSettings
from monitor.core.reference import ReferenceProfile
from monitor.devservices import create_topics
from monitor.events import decode_any, parse_timestamp
from monitor.lineprotocol import read_lp
from monitor.pipeline import Monitor
from monitor.scenarios import get_scenario
from monitor.types import PredictionEvent
from monitor.wire import profile_id
from tests.integration.harness import Worker, read_topic, wait_for

pytestmark = pytest.mark.integration
T0 = 1_767_225_600.0
W = 10.0
WARMUP = 300


@pytest.mark.parametrize("segments", ["", "country,device"], ids=["model", "segments"])
def test_warm_up_profiles_are_shared_by_every_worker(kafka_broker, tmp_path, segments):
    """With segments, the warm-up profile carries nested segment profiles (a large record on the references
    topic) and every worker's segment points equal one process's too."""
    spec = get_scenario("multi_model")
    events = [e for e in spec.events(seed=8, windows=10, window_s=W, rate=10.0, start=T0)
              if isinstance(e, dict) and "label" not in e]
    mon = Monitor(MonitorSettings(window="10s", allowed_lateness="2s", warmup_events=WARMUP, labels_topic="",
                                  segments=segments), {})
    mon.observe([e for e in (decode_any(orjson.dumps(x)) for x in events) if isinstance(e, PredictionEvent)])
    expected = {(p.tag("model"), p.tag("feature"), p.tag("method"), p.time_ns, p.tag("segment")): p.field("score")
                for p in mon.close_all().points if p.measurement == "drift"}
    assert bool(segments) == any(k[4] for k in expected)
    group = "wu-seg" if segments else "wu"
    topic = f"{group}-predictions"
    create_topics(kafka_broker, {topic: 4})
    env = dict(MONITOR_PREDICTIONS_TOPIC=topic, MONITOR_LABELS_TOPIC="", MONITOR_CONSUMER_GROUP=group,
               MONITOR_RETRAINING_TOPIC=f"{group}-retraining", MONITOR_DLQ_TOPIC=f"{group}-dlq",
               MONITOR_WARMUP_EVENTS=str(WARMUP), MONITOR_SEGMENTS=segments)
    a = Worker(tmp_path, kafka_broker, "a", MONITOR_LP_FILE=str(tmp_path / "a.lp"), **env).start()
    b = Worker(tmp_path, kafka_broker, "b", MONITOR_LP_FILE=str(tmp_path / "b.lp"), **env).start()
    try:
        wait_for(lambda: a.metric("driftline_sources") + b.metric("driftline_sources") >= 4, 60)
        from kafka import KafkaProducer

        p = KafkaProducer(bootstrap_servers=kafka_broker, acks="all")
        # the first half: warm-up completes and the owners publish the profiles; then the rest
        first = [e for e in events if parse_timestamp(e["timestamp"]) < T0 + 50]
        for e in first:
            p.send(topic, key=e["request_id"].encode(), value=orjson.dumps(e))
        p.flush()
        try:
            wait_for(lambda: {orjson.loads(r.value)["model"] for r in read_topic(
                kafka_broker, f"{group}.references", idle_s=2.0)} >= {"churn", "ranker"}, 150)
        except TimeoutError:
            raise AssertionError("no warm-up profiles on the references topic; worker logs:\n"
                                 + a.log.read_text()[-4000:] + "\n---\n" + b.log.read_text()[-4000:]) from None
        for e in (e for e in events if parse_timestamp(e["timestamp"]) >= T0 + 50):
            p.send(topic, key=e["request_id"].encode(), value=orjson.dumps(e))
        p.flush()
        p.close()

        def drift() -> dict[tuple, object]:
            out = {}
            for f in ("a.lp", "b.lp"):
                if (tmp_path / f).exists():
                    for pt in read_lp(tmp_path / f):
                        if pt.measurement == "drift":
                            out[(pt.tag("model"), pt.tag("feature"), pt.tag("method"), pt.time_ns,
                                 pt.tag("segment"))] = pt.field("score")
            return out

        last = max(k[3] for k in expected)
        warmed = {m for (m, _, _, t, _) in expected if t == last}  # fraud sends fewer than WARMUP events
        assert warmed == {"churn", "ranker"}
        wait_for(lambda: {m for (m, _, _, t, _) in drift() if t == last} == warmed, 120)
    finally:
        a.stop()
        b.stop()
    published = [ReferenceProfile.from_dict(orjson.loads(r.value))
                 for r in read_topic(kafka_broker, f"{group}.references")]
    assert all(bool(p.segments) == bool(segments) for p in published)
    assert {p.model for p in published} >= warmed
    assert {profile_id(p) for p in published} <= set(mon.book.by_id)  # the same profiles as one process builds
    got = drift()
    # every window that opened after the profiles were published has drift, equal to one process's
    after = {k for k in expected if k[0] in warmed and k[3] > (T0 + 60) * 1e9}
    assert after and after <= got.keys(), sorted(after - got.keys())[:5]
    both = set(got) & set(expected)
    assert {k: got[k] for k in both} == {k: expected[k] for k in both}
