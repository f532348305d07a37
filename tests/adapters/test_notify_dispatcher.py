"""AlertDispatcher: dedupe with a repeat interval, resolved-after-firing, routing, background delivery, config."""

from __future__ import annotations

import inspect
import threading

import httpx
import orjson
import pytest

from monitor.adapters.notify import (
    AlertDispatcher,
    DeliveryResult,
    Route,
    WebhookReceiver,
    build_dispatcher,
    build_dispatcher_from_config,
)
from monitor.ports import AlertNotifier
from tests.adapters.test_notify import T0, Recorder, alert, client


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def hook(rec, name="webhook", **kw):
    return WebhookReceiver(f"http://{name}", name=name, client=client(rec), backoff_s=0.0, sleep=lambda s: None, **kw)


def statuses(rec):
    return [(p["status"], [a["labels"]["feature"] for a in p["alerts"]]) for p in rec.bodies()]


def test_implements_the_port():
    """Wherever the pipeline expects an AlertNotifier the dispatcher fits: the port's one method, called
    through the port, delivers a firing alert (and, per the dispatcher's rules, no unmatched resolved one)."""
    assert list(inspect.signature(AlertDispatcher.notify).parameters) == list(
        inspect.signature(AlertNotifier.notify).parameters)
    rec = Recorder()
    d = AlertDispatcher([Route(hook(rec))]).start()
    port: AlertNotifier = d
    port.notify([alert(), alert(status="resolved", feature="age", ends=T0 + 600)])
    d.close(timeout=5)
    assert statuses(rec) == [("firing", ["amount"])] and d.counters()["webhook"]["sent"] == 1


def test_dedupe_within_repeat_interval_then_resend():
    rec, clock = Recorder(), Clock()
    d = AlertDispatcher([Route(hook(rec))], repeat_interval_s=3600, clock=clock)
    d.notify_sync([alert()])
    clock.now = 3599
    d.notify_sync([alert()])
    assert len(rec.requests) == 1 and d.counters()["webhook"]["deduped"] == 1
    clock.now = 3600
    d.notify_sync([alert()])
    assert len(rec.requests) == 2
    d.notify_sync([alert(), alert()])  # duplicates inside one batch count once
    assert len(rec.requests) == 2


def test_resolved_only_after_firing_and_only_once():
    rec, clock = Recorder(), Clock()
    d = AlertDispatcher([Route(hook(rec))], clock=clock)
    d.notify_sync([alert(status="resolved", ends=T0)])  # never fired here: nothing to resolve
    assert rec.requests == []
    d.notify_sync([alert()])
    d.notify_sync([alert(status="resolved", ends=T0 + 60)])
    d.notify_sync([alert(status="resolved", ends=T0 + 60)])
    assert statuses(rec) == [("firing", ["amount"]), ("resolved", ["amount"])]
    d.notify_sync([alert()])  # fires again after resolving: a new notification, not deduped
    assert len(rec.requests) == 3 and d.active() == 1


def test_failed_firing_is_not_remembered_so_it_is_retried_and_never_resolved():
    rec = Recorder([503, 503])
    d = AlertDispatcher([Route(hook(rec, max_retries=1))])
    d.notify_sync([alert()])
    assert d.counters()["webhook"] == {"sent": 0, "failed": 1, "retried": 1, "dropped_4xx": 0, "deduped": 0,
                                       "repeated": 0}
    d.notify_sync([alert(status="resolved", ends=T0)])
    assert len(rec.requests) == 2  # resolved not sent: the firing never arrived
    d.notify_sync([alert()])
    assert len(rec.requests) == 3 and d.counters()["webhook"]["sent"] == 1


def test_counters_for_prometheus():
    rec = Recorder([500, 400])
    d = AlertDispatcher([Route(hook(rec))])
    d.notify_sync([alert()])  # 500 then 400: rejected
    d.notify_sync([alert(feature="age")])
    d.notify_sync([alert(feature="age")])
    assert d.counters() == {"webhook": {"sent": 1, "failed": 1, "retried": 1, "dropped_4xx": 1, "deduped": 1,
                                        "repeated": 0}}


def test_routing_by_severity_and_model_glob():
    crit, team, everything = Recorder(), Recorder(), Recorder()
    d = AlertDispatcher([
        Route(hook(crit, "crit"), severities={"critical"}),
        Route(hook(team, "team"), models={"fraud-*", "churn"}),
        Route(hook(everything, "all")),
    ])
    d.notify_sync([alert(severity="warning", model="fraud-eu"), alert(severity="critical", model="credit"),
                   alert(severity="warning", model="other")])
    assert [p["alerts"][0]["labels"]["model"] for p in crit.bodies()] == ["credit"]
    assert [p["alerts"][0]["labels"]["model"] for p in team.bodies()] == ["fraud-eu"]
    assert len(everything.requests) == 3


def test_a_receiver_on_several_matching_routes_gets_an_alert_once():
    rec = Recorder()
    r = hook(rec)
    d = AlertDispatcher([Route(r, severities={"critical"}), Route(r, models={"fraud*"})])
    d.notify_sync([alert()])
    assert len(rec.requests) == 1


def test_route_validation():
    with pytest.raises(ValueError):
        Route(hook(Recorder()), severities={"page"})
    with pytest.raises(ValueError):
        AlertDispatcher([Route(hook(Recorder())), Route(hook(Recorder()))])  # two receivers named "webhook"
    with pytest.raises(TypeError):
        Route(hook(Recorder()), models="fraud-*")


def test_tick_resends_still_firing_alerts_after_the_repeat_interval():
    rec, clock = Recorder(), Clock()
    d = AlertDispatcher([Route(hook(rec))], repeat_interval_s=100, clock=clock)
    d.notify_sync([alert(), alert(feature="age")])
    clock.now = 99
    d.tick()
    assert len(rec.requests) == 1
    d.notify_sync([alert(status="resolved", feature="age", ends=T0)])
    clock.now = 100
    d.tick()
    assert statuses(rec)[-1] == ("firing", ["amount"]) and len(rec.requests) == 3
    assert d.counters()["webhook"]["repeated"] == 1
    d.tick()  # just re-sent: not due again
    assert len(rec.requests) == 3


def test_crashing_receiver_does_not_stop_the_others():
    class Broken:
        name = "broken"

        def send(self, batch):
            raise RuntimeError("boom")

    rec = Recorder()
    d = AlertDispatcher([Route(Broken()), Route(hook(rec))])
    d.notify_sync([alert()])
    assert len(rec.requests) == 1 and d.counters()["broken"]["failed"] == 1


def test_slow_receiver_does_not_block_notify_and_close_drains():
    """No timing: the receiver is held until the caller has returned from all five notify calls, so a
    notify that waited for delivery would see its first alert delivered (after the 10 s hold) instead."""
    gate = threading.Event()

    def held(request):
        gate.wait(10)
        return httpx.Response(200)

    d = AlertDispatcher([Route(WebhookReceiver("http://x", client=client(held)))]).start()
    for i in range(5):
        d.notify([alert(feature=f"f{i}")])
    delivered_while_notifying = d.counters()["webhook"]["sent"]
    gate.set()
    d.close(timeout=10)
    assert delivered_while_notifying == 0 and d.counters()["webhook"]["sent"] == 5


def test_full_queue_drops_and_counts_instead_of_blocking():
    gate = threading.Event()

    released: list[bool] = []

    class Stuck:
        name = "stuck"

        def send(self, batch):
            released.append(gate.wait(10))  # False: the 10 s hold ran out (notify must have blocked)
            return DeliveryResult(True, 1)

    d = AlertDispatcher([Route(Stuck())], max_queue=1)
    for i in range(5):
        d.notify([alert(feature=f"f{i}")])
    assert released == []  # every call returned while the receiver was still held: none waited for a slot
    assert 3 <= d.queue_dropped <= 4  # one in the worker's hands (maybe), one queued
    gate.set()
    d.close(timeout=5)
    d.notify([alert()])  # after close: dropped, not a new thread
    assert d.queue_dropped >= 4


def test_build_dispatcher_from_config():
    rec = Recorder()
    d = build_dispatcher_from_config({
        "webhooks": [{"url": "http://team", "secret": "t", "severities": ["critical"], "models": ["fraud-*"]},
                     {"url": "http://audit", "name": "audit"}],
        "alertmanager": [{"url": "http://am:9093"}],
        "slack": [{"webhook_url": "https://hooks.slack.test/x", "severities": ["critical"]}],
        "pagerduty": [{"routing_key": "rk", "severities": ["critical"]}],
        "repeat_interval_s": 600, "backoff_s": 0.0,
    }, "http://env-hook", "env-secret", client=client(rec))
    assert d is not None and d.repeat_interval_s == 600
    assert list(d.receivers) == ["webhook", "webhook-2", "audit", "alertmanager", "slack", "pagerduty"]
    d.notify_sync([alert(model="fraud-eu"), alert(model="churn", severity="warning")])
    hosts = [r.url.host for r in rec.requests]
    assert hosts.count("env-hook") == 2 and hosts.count("team") == 1 and hosts.count("audit") == 2
    assert hosts.count("am") == 1 and hosts.count("hooks.slack.test") == 1 and hosts.count("events.pagerduty.com") == 1
    env = next(r for r in rec.requests if r.url.host == "env-hook")
    assert env.headers["X-Driftline-Signature"].startswith("sha256=")
    assert "X-Driftline-Signature" not in next(r for r in rec.requests if r.url.host == "audit").headers
    am = next(r for r in rec.requests if r.url.host == "am")
    assert all("endsAt" in a for a in orjson.loads(am.content))  # firing TTL keeps Alertmanager from auto-resolving


@pytest.mark.parametrize("cfg", [
    {"webhook": [{"url": "http://x", "secret": "hunter2"}]},  # typo in the section name
    {"webhooks": [{"url": "http://x", "secret": "hunter2", "severity": ["critical"]}]},  # typo in a key
    {"webhooks": [{"secret": "hunter2"}]},
    {"pagerduty": [{"url": "http://pd"}]},
    {"webhooks": [{"url": "http://x", "secret": "hunter2", "severities": ["page"]}]},
])
def test_config_errors_are_loud_and_do_not_echo_secrets(cfg):
    with pytest.raises(ValueError) as exc:
        build_dispatcher_from_config(cfg)
    assert "hunter2" not in str(exc.value)


def test_no_receivers_means_no_dispatcher():
    assert build_dispatcher_from_config({}) is None
    assert build_dispatcher_from_config({}, webhook_url="") is None
    assert build_dispatcher() is None


def test_build_dispatcher_flat_settings():
    d = build_dispatcher(webhook_url="http://w", webhook_secret="s", pagerduty_routing_key="k",
                         repeat_interval_s=60)
    assert d is not None and [r.receiver.name for r in d.routes] == ["webhook", "pagerduty"]
    assert d.routes[1].severities == {"critical"} and d.repeat_interval_s == 60
    d.close()


def test_firing_and_resolved_in_one_batch_are_both_delivered_in_order():
    """A backlog can close the window that fires an alert and the one that resolves it in one flush."""
    import httpx
    import orjson

    from monitor.adapters.notify import AlertDispatcher, Route, WebhookReceiver
    from monitor.types import Alert

    bodies = []

    def handler(request):
        bodies.append(orjson.loads(request.content))
        return httpx.Response(200)

    labels = {"alertname": "LatencyRegression", "model": "m", "metric": "p95", "severity": "critical"}
    ann = {"summary": "s", "description": "d", "value": "1", "threshold": "1"}
    firing = Alert(labels, ann, "firing", 70.0)
    resolved = Alert(labels, ann, "resolved", 70.0, 100.0)
    d = AlertDispatcher([Route(WebhookReceiver("http://x", client=httpx.Client(transport=httpx.MockTransport(handler))))])
    d.notify_sync([firing, resolved])
    assert [b["status"] for b in bodies] == ["firing", "resolved"]
