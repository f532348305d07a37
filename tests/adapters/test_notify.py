"""Notifiers with injected transports: payload shape, signature, retries, dedupe, routing, non-blocking."""

import time

import httpx
import orjson
import pytest

from monitor.adapters.notify import (
    AlertDispatcher,
    AlertmanagerReceiver,
    PagerDutyReceiver,
    Route,
    SlackReceiver,
    WebhookReceiver,
    _Http,
    build_dispatcher,
    sign,
    verify_signature,
)
from monitor.types import Alert


def alert(status="firing", severity="critical", model="fraud", feature="amount", ends=None):
    return Alert(labels={"alertname": "FeatureDrift", "model": model, "feature": feature, "metric": "psi",
                         "severity": severity},
                 annotations={"summary": "s", "description": "d", "value": "0.4", "threshold": "0.1"},
                 status=status, starts_at=1767225900.0, ends_at=ends, generator_url="http://g/d")


class Recorder:
    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        status = self.statuses.pop(0) if self.statuses else 200
        if status == "timeout":
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(status, text="nope" if status >= 400 else "")


def http(rec, retries=5):
    return _Http(httpx.Client(transport=httpx.MockTransport(rec)), max_retries=retries, backoff_s=0.0,
                 sleep=lambda s: None)


def test_webhook_payload_is_alertmanager_v4_and_signed():
    rec = Recorder()
    r = WebhookReceiver("http://x/hook", http(rec), secret="s3cret", external_url="http://grafana")
    assert r.send([alert(), alert(feature="age")]).ok
    (req,) = rec.requests
    body = req.content
    payload = orjson.loads(body)
    assert set(payload) == {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
                            "commonLabels", "commonAnnotations", "externalURL", "alerts"}
    assert payload["version"] == "4" and payload["status"] == "firing" and payload["externalURL"] == "http://grafana"
    assert payload["commonLabels"]["model"] == "fraud" and "feature" not in payload["commonLabels"]
    a = payload["alerts"][0]
    assert set(a) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
    assert req.headers["X-Driftline-Signature"] == sign("s3cret", body)
    assert verify_signature("s3cret", body, req.headers["X-Driftline-Signature"])
    assert not verify_signature("other", body, req.headers["X-Driftline-Signature"])


def test_5xx_five_times_then_ok_is_delivered_once():
    rec = Recorder([500, 502, 503, 504, 500, 200])
    res = WebhookReceiver("http://x", http(rec)).send([alert()])
    assert res.ok and res.attempts == 6 and len(rec.requests) == 6


def test_4xx_is_not_retried_but_timeouts_are():
    rec = Recorder([400])
    res = WebhookReceiver("http://x", http(rec)).send([alert()])
    assert not res.ok and len(rec.requests) == 1 and res.status == 400
    rec = Recorder(["timeout", "timeout", 200])
    assert WebhookReceiver("http://x", http(rec)).send([alert()]).ok and len(rec.requests) == 3


def test_dedupe_repeat_interval_and_resolved_only_after_firing():
    rec = Recorder()
    now = [0.0]
    d = AlertDispatcher([Route(WebhookReceiver("http://x", http(rec)))], repeat_interval_s=3600,
                        clock=lambda: now[0])
    d.notify_sync([alert(status="resolved", ends=1.0)])  # never fired: nothing to resolve
    assert rec.requests == []
    d.notify_sync([alert()])
    d.notify_sync([alert()])
    assert len(rec.requests) == 1 and d.stats["webhook"].deduped == 1
    now[0] = 3601
    d.notify_sync([alert()])
    assert len(rec.requests) == 2
    d.notify_sync([alert(status="resolved", ends=2.0)])
    assert len(rec.requests) == 3 and orjson.loads(rec.requests[-1].content)["status"] == "resolved"
    d.notify_sync([alert(status="resolved", ends=2.0)])
    assert len(rec.requests) == 3


def test_routing_by_severity_and_model_glob():
    crit, team = Recorder(), Recorder()
    d = AlertDispatcher([
        Route(WebhookReceiver("http://crit", http(crit), name="crit"), severities={"critical"}),
        Route(WebhookReceiver("http://team", http(team), name="team"), models=["fraud-*"]),
    ])
    d.notify_sync([alert(severity="warning", model="fraud-eu")])
    d.notify_sync([alert(severity="critical", model="churn")])
    assert len(crit.requests) == 1 and len(team.requests) == 1
    assert orjson.loads(team.requests[0].content)["alerts"][0]["labels"]["model"] == "fraud-eu"


def test_slow_receiver_does_not_block_notify():
    def slow(request):
        time.sleep(0.5)
        return httpx.Response(200)

    d = AlertDispatcher([Route(WebhookReceiver("http://x", http(slow)))]).start()
    t = time.perf_counter()
    d.notify([alert()])
    d.notify([alert(feature="age")])
    assert time.perf_counter() - t < 0.05
    d.close(timeout=5)
    assert d.stats["webhook"].sent == 2


def test_alertmanager_slack_pagerduty_bodies():
    rec = Recorder()
    AlertmanagerReceiver("http://am:9093", http(rec)).send([alert(), alert(status="resolved", ends=1767226200.0)])
    req = rec.requests[0]
    assert str(req.url) == "http://am:9093/api/v2/alerts"
    body = orjson.loads(req.content)
    assert body[0]["labels"]["alertname"] == "FeatureDrift" and "endsAt" not in body[0]
    assert body[1]["endsAt"] == "2026-01-01T00:10:00.000Z"
    rec = Recorder()
    SlackReceiver("http://slack", http(rec)).send([alert()])
    assert "FeatureDrift" in orjson.loads(rec.requests[0].content)["text"]
    rec = Recorder()
    PagerDutyReceiver("rk", http(rec)).send([alert(), alert(status="resolved", ends=1.0)])
    trig, res = (orjson.loads(r.content) for r in rec.requests)
    assert trig["event_action"] == "trigger" and trig["payload"]["severity"] == "critical"
    assert res["event_action"] == "resolve" and res["dedup_key"] == trig["dedup_key"] == alert().fingerprint


@pytest.mark.parametrize("kwargs, names", [
    ({}, None),
    ({"webhook_url": "http://w", "pagerduty_routing_key": "k"}, ["webhook", "pagerduty"]),
])
def test_build_dispatcher(kwargs, names):
    d = build_dispatcher(**kwargs)
    assert (d is None) if names is None else [r.receiver.name for r in d.routes] == names
