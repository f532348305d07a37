"""Receivers over injected transports: Alertmanager v4 payload shapes (docs/webhook-verification.md), signature, retries."""

from __future__ import annotations

import hashlib
import hmac
import logging

import httpx
import orjson
import pytest

from monitor.adapters.notify import (
    AlertmanagerReceiver,
    PagerDutyReceiver,
    RetryingPoster,
    SlackReceiver,
    WebhookReceiver,
    sign,
    sign_timestamped,
)
from monitor.adapters.receiver import verify_signature, verify_timestamped
from monitor.types import Alert

T0 = 1767225900.0  # 2026-01-01T00:05:00Z


def alert(status="firing", severity="critical", model="fraud", feature="amount", ends=None, alertname="FeatureDrift"):
    return Alert(labels={"alertname": alertname, "model": model, "feature": feature, "metric": "psi",
                         "severity": severity},
                 annotations={"summary": f"{model}: drift on {feature}", "description": "d", "value": "0.4",
                              "threshold": "0.1"},
                 status=status, starts_at=T0, ends_at=ends, generator_url="http://g/d")


class Recorder:
    """A MockTransport handler answering a scripted list of statuses (then 200)."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request):
        self.requests.append(request)
        status = self.statuses.pop(0) if self.statuses else 200
        if status == "timeout":
            raise httpx.ReadTimeout("slow", request=request)
        if status == "refused":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(status, text=f"error body {status}" if status >= 400 else "")

    def bodies(self):
        return [orjson.loads(r.content) for r in self.requests]


def client(rec):
    return httpx.Client(transport=httpx.MockTransport(rec))


def webhook(rec, **kw):
    kw.setdefault("backoff_s", 0.0)
    return WebhookReceiver("http://x/hook", client=client(rec), sleep=lambda s: None, **kw)


def test_webhook_payload_matches_contract_exactly():
    rec = Recorder()
    alerts = [alert(), alert(feature="age")]
    assert webhook(rec, name="oncall", external_url="http://grafana").send(alerts).ok
    (req,) = rec.requests
    assert req.method == "POST" and req.headers["Content-Type"] == "application/json"
    payload = orjson.loads(req.content)
    assert payload == {
        "version": "4",
        "groupKey": payload["groupKey"],
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "oncall",
        "groupLabels": {"model": "fraud"},
        "commonLabels": {"alertname": "FeatureDrift", "model": "fraud", "metric": "psi", "severity": "critical"},
        "commonAnnotations": {"description": "d", "value": "0.4", "threshold": "0.1"},
        "externalURL": "http://grafana",
        "alerts": [a.to_dict() for a in alerts],
    }
    assert isinstance(payload["groupKey"], str) and "fraud" in payload["groupKey"]
    entry = payload["alerts"][0]
    assert set(entry) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}
    assert set(entry["labels"]) == {"alertname", "model", "feature", "metric", "severity"}
    assert set(entry["annotations"]) == {"summary", "description", "value", "threshold"}
    assert entry["startsAt"] == "2026-01-01T00:05:00.000Z" and entry["fingerprint"] == alerts[0].fingerprint


def test_one_notification_per_model_and_status():
    rec = Recorder()
    batch = [alert(), alert(model="churn"), alert(status="resolved", feature="age", ends=T0 + 600), alert(feature="x")]
    assert webhook(rec).send(batch).ok
    groups = [(p["groupLabels"]["model"], p["status"], len(p["alerts"])) for p in rec.bodies()]
    assert groups == [("fraud", "firing", 2), ("churn", "firing", 1), ("fraud", "resolved", 1)]
    assert rec.bodies()[2]["alerts"][0]["endsAt"] == "2026-01-01T00:15:00.000Z"


def test_signature_is_hmac_sha256_of_exact_body():
    rec = Recorder()
    webhook(rec, secret="s3cret").send([alert()])
    req = rec.requests[0]
    expected = "sha256=" + hmac.new(b"s3cret", req.content, hashlib.sha256).hexdigest()
    assert req.headers["X-Driftline-Signature"] == expected == sign("s3cret", req.content)
    assert verify_signature("s3cret", req.content, expected)
    assert verify_signature(b"s3cret", req.content, expected)
    assert not verify_signature("other", req.content, expected)
    assert not verify_signature("s3cret", req.content + b" ", expected)
    assert not verify_signature("s3cret", req.content, None) and not verify_signature("s3cret", req.content, "")
    rec = Recorder()
    webhook(rec).send([alert()])
    assert not {"X-Driftline-Signature", "X-Driftline-Signature-256", "X-Driftline-Timestamp"} & set(
        rec.requests[0].headers)


def test_timestamped_signature_covers_time_and_body_and_is_renewed_per_attempt():
    rec = Recorder(statuses=[503, 503])
    clock = iter([T0, T0 + 7.9, T0 + 40.2])
    assert webhook(rec, secret="s3cret", wall_clock=lambda: next(clock)).send([alert()]).ok
    assert len(rec.requests) == 3 and len({r.content for r in rec.requests}) == 1  # same body every attempt
    for req, t in zip(rec.requests, (int(T0), int(T0 + 7.9), int(T0 + 40.2)), strict=True):
        expected = hmac.new(b"s3cret", f"{t}.".encode() + req.content, hashlib.sha256).hexdigest()
        assert req.headers["X-Driftline-Timestamp"] == str(t)
        assert req.headers["X-Driftline-Signature-256"] == f"t={t},v1={expected}" == sign_timestamped(
            "s3cret", req.content, t)
        assert req.headers["X-Driftline-Signature"] == sign("s3cret", req.content)  # legacy header kept
        assert verify_timestamped("s3cret", req.content, req.headers["X-Driftline-Signature-256"], now=t + 299)


@pytest.mark.parametrize("tamper", ["body", "secret", "old", "future", "timestamp", "missing", "garbage", "no_v1"])
def test_timestamped_verification_refuses(tamper):
    body, t = b'{"version":"4"}', int(T0)
    header = sign_timestamped("s3cret", body, t)
    secret, now = "s3cret", T0 + 5
    if tamper == "body":
        body += b" "
    elif tamper == "secret":
        secret = "other"
    elif tamper == "old":  # a captured request replayed six minutes later
        now = T0 + 301
    elif tamper == "future":
        now = T0 - 301
    elif tamper == "timestamp":  # the time changed without re-signing
        header = header.replace(f"t={t}", f"t={t + 60}")
    elif tamper == "missing":
        header = ""
    elif tamper == "garbage":
        header = "t=soon,v1=xyz"
    elif tamper == "no_v1":
        header = f"t={t}"
    assert not verify_timestamped(secret, body, header, now=now)


def test_an_empty_configured_secret_is_refused():
    from monitor.adapters.notify import build_dispatcher_from_config

    with pytest.raises(ValueError, match="secret is set but empty"):
        build_dispatcher_from_config({"webhooks": [{"url": "http://x", "secret": ""}]})


def test_5xx_five_times_then_ok_is_delivered_once_with_five_retries():
    rec = Recorder([500, 502, 503, 504, 500])
    res = webhook(rec).send([alert()])
    assert res.ok and res.attempts == 6 and res.retried == 5 and len(rec.requests) == 6
    assert len({r.content for r in rec.requests}) == 1  # the same bytes each time


def test_gives_up_after_max_retries():
    rec = Recorder([503] * 10)
    res = webhook(rec, max_retries=2).send([alert()])
    assert not res.ok and res.attempts == 3 and len(rec.requests) == 3 and res.status == 503
    assert res.failed == {alert().fingerprint} and not res.rejected


@pytest.mark.parametrize("status", [400, 401, 404, 413, 429])
def test_4xx_is_not_retried_and_is_logged_without_secrets(status, caplog):
    rec = Recorder([status])
    with caplog.at_level(logging.INFO, logger="driftline.notify"):
        res = webhook(rec, secret="top-secret-value").send([alert()])
    assert not res.ok and res.rejected and len(rec.requests) == 1 and res.status == status
    assert f"status={status}" in caplog.text and f"error body {status}" in caplog.text
    assert "top-secret-value" not in caplog.text and "sha256=" not in caplog.text


@pytest.mark.parametrize("failure", ["timeout", "refused"])
def test_timeouts_and_connection_errors_are_retried(failure):
    rec = Recorder([failure, failure])
    res = webhook(rec).send([alert()])
    assert res.ok and len(rec.requests) == 3 and res.retried == 2


def test_backoff_is_exponential_with_jitter_and_capped(monkeypatch):
    sleeps: list[float] = []
    rec = Recorder([503] * 6)
    poster = RetryingPoster(client(rec), max_retries=5, backoff_s=1.0, max_backoff_s=4.0, sleep=sleeps.append)
    assert not poster.post("t", "http://x", b"{}", {}).ok
    assert len(sleeps) == 5
    for s, base in zip(sleeps, [1, 2, 4, 4, 4], strict=True):
        assert 0.5 * base <= s < 1.5 * base


def test_per_receiver_timeout_is_passed_to_the_client():
    seen = []

    def handler(request):
        seen.append(request.extensions["timeout"])
        return httpx.Response(200)

    WebhookReceiver("http://x", timeout_s=0.25, client=client(handler)).send([alert()])
    assert seen[0]["read"] == 0.25 and seen[0]["connect"] == 0.25


def test_repr_hides_credentials():
    assert "k3y" not in repr(WebhookReceiver("http://x", secret="k3y"))
    assert "T000" not in repr(SlackReceiver("https://hooks.slack.com/services/T000/B000/XXX"))
    assert "rk-123" not in repr(PagerDutyReceiver("rk-123"))


def test_alertmanager_api_v2_body():
    rec = Recorder()
    am = AlertmanagerReceiver("http://am:9093/", client=client(rec), wall_clock=lambda: T0 + 3600)
    assert am.send([alert(), alert(status="resolved", feature="age", ends=T0 + 300)]).ok
    (req,) = rec.requests
    assert str(req.url) == "http://am:9093/api/v2/alerts"
    firing, resolved = orjson.loads(req.content)
    # a firing alert starts when it is sent (Alertmanager's group_wait, and so inhibition, time from it)
    assert firing == {"labels": dict(alert().labels), "annotations": dict(alert().annotations),
                      "startsAt": "2026-01-01T01:05:00.000Z", "generatorURL": "http://g/d"}
    assert resolved["startsAt"] == "2026-01-01T00:05:00.000Z"
    assert resolved["endsAt"] == "2026-01-01T00:10:00.000Z" and resolved["labels"]["feature"] == "age"
    # firing critical alerts go first
    rec = Recorder()
    AlertmanagerReceiver("http://am", client=client(rec)).send([alert(severity="warning"), alert()])
    assert [a["labels"]["severity"] for a in rec.bodies()[0]] == ["critical", "warning"]
    rec = Recorder()
    AlertmanagerReceiver("http://am", client=client(rec), firing_ttl_s=3600, wall_clock=lambda: T0).send([alert()])
    assert rec.bodies()[0][0]["endsAt"] == "2026-01-01T01:05:00.000Z"
    # a resolved alert whose window ends after Alertmanager's clock is resolved now, not in the future
    rec = Recorder()
    AlertmanagerReceiver("http://am", client=client(rec), wall_clock=lambda: T0 + 60).send(
        [alert(status="resolved", ends=T0 + 300)])
    assert rec.bodies()[0][0]["endsAt"] == "2026-01-01T00:06:00.000Z"


def test_slack_one_message_per_notification():
    rec = Recorder()
    batch = [alert(), alert(model="churn", severity="warning"), alert(status="resolved", feature="a<b>&", ends=T0)]
    assert SlackReceiver("https://hooks.slack.test/x", client=client(rec)).send(batch).ok
    (msg,) = rec.bodies()
    assert set(msg) == {"text", "blocks"}
    assert msg["text"].startswith("Driftline: 2 firing, 1 resolved") and "FeatureDrift" in msg["text"]
    sections = [b["text"]["text"] for b in msg["blocks"] if b["type"] == "section"]
    assert len(sections) == 4  # headline + (fraud, firing) + (churn, firing) + (fraud, resolved)
    assert ":rotating_light:" in sections[1] and ":warning:" in sections[2] and ":white_check_mark:" in sections[3]
    assert "a&lt;b&gt;&amp;" in sections[3] and "<b>" not in msg["text"]


def test_slack_429_is_retried():
    rec = Recorder([429])
    assert SlackReceiver("https://hooks.slack.test/x", client=client(rec), backoff_s=0.0).send([alert()]).ok
    assert len(rec.requests) == 2


def test_pagerduty_events_v2():
    rec = Recorder()
    pd = PagerDutyReceiver("rk", client=client(rec))
    assert pd.send([alert(), alert(severity="warning", feature="age"),
                    alert(status="resolved", ends=T0 + 60)]).ok
    assert all(str(r.url) == "https://events.pagerduty.com/v2/enqueue" for r in rec.requests)
    crit, warn, res = rec.bodies()
    assert crit["routing_key"] == "rk" and crit["event_action"] == "trigger"
    assert crit["dedup_key"] == alert().fingerprint
    p = crit["payload"]
    assert p["severity"] == "critical" and p["summary"] == "fraud: drift on amount" and p["source"] == "driftline/fraud"
    assert p["custom_details"] == {"labels": dict(alert().labels), "annotations": dict(alert().annotations)}
    assert crit["links"][0]["href"] == "http://g/d"
    assert warn["payload"]["severity"] == "warning" and warn["dedup_key"] != crit["dedup_key"]
    assert res == {"routing_key": "rk", "dedup_key": crit["dedup_key"], "event_action": "resolve"}


def test_pagerduty_partial_failure_names_the_failed_alert():
    rec = Recorder([200, 400])
    res = PagerDutyReceiver("rk", client=client(rec), backoff_s=0.0).send([alert(), alert(feature="age")])
    assert not res.ok and res.rejected and res.failed == {alert(feature="age").fingerprint}
