"""Alert notifiers (CONTRACT §5): generic webhook (Alertmanager v4 payload, HMAC-signed), Alertmanager's
``/api/v2/alerts``, Slack incoming webhooks and PagerDuty Events v2 — routed by severity and model,
deduplicated by fingerprint with a repeat interval, delivered off the pipeline's thread.

Retries: 5xx, 429, timeouts and connection errors are retried with exponential backoff and jitter;
other 4xx are not (logged with the status and a body excerpt). Secrets are never logged.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import orjson

from monitor.adapters.amformat import group_alerts, webhook_payload
from monitor.types import Alert, rfc3339

log = logging.getLogger("driftline.notify")
SIGNATURE_HEADER = "X-Driftline-Signature"


def sign(secret: str | bytes, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the body>`` — the value of ``X-Driftline-Signature``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """Constant-time check of an ``X-Driftline-Signature`` header (what a receiver does)."""
    return bool(header) and hmac.compare_digest(sign(secret, body), header or "")


@dataclass
class DeliveryResult:
    ok: bool
    attempts: int
    status: int | None = None
    error: str = ""


class Receiver(Protocol):
    name: str

    def send(self, alerts: Sequence[Alert]) -> DeliveryResult: ...


@dataclass
class _Http:
    """POST with retries on 5xx/429/timeouts/connection errors, none on other 4xx."""

    client: httpx.Client
    max_retries: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def post(self, name: str, url: str, body: bytes, headers: Mapping[str, str]) -> DeliveryResult:
        delay = self.backoff_s
        status: int | None = None
        error = ""
        for attempt in range(1, self.max_retries + 2):
            try:
                resp = self.client.post(url, content=body, headers=dict(headers))
                status = resp.status_code
                if status < 300:
                    return DeliveryResult(True, attempt, status)
                error = resp.text[:200]
                if 400 <= status < 500 and status != 429:
                    log.warning("event=notify_rejected receiver=%s status=%d body=%r", name, status, error)
                    return DeliveryResult(False, attempt, status, error)
            except httpx.HTTPError as exc:  # timeouts, refused connections, protocol errors
                status, error = None, f"{type(exc).__name__}: {exc}"[:200]
            if attempt <= self.max_retries:
                log.info("event=notify_retry receiver=%s attempt=%d status=%s", name, attempt, status)
                self.sleep(min(delay, self.max_backoff_s) * (0.5 + random.random()))
                delay *= 2
        log.error("event=notify_failed receiver=%s status=%s error=%r", name, status, error)
        return DeliveryResult(False, self.max_retries + 1, status, error)


class WebhookReceiver:
    """Generic webhook: one Alertmanager webhook v4 payload per (model, status) group."""

    def __init__(self, url: str, http: _Http, secret: str | None = None, name: str = "webhook",
                 external_url: str = "") -> None:
        self.url, self.http, self.secret, self.name, self.external_url = url, http, secret, name, external_url

    def send(self, alerts: Sequence[Alert]) -> DeliveryResult:
        result = DeliveryResult(True, 0)
        for group in group_alerts(alerts):
            body = orjson.dumps(webhook_payload(group, self.name, self.external_url))
            headers = {"Content-Type": "application/json"}
            if self.secret:
                headers[SIGNATURE_HEADER] = sign(self.secret, body)
            r = self.http.post(self.name, self.url, body, headers)
            result = DeliveryResult(result.ok and r.ok, result.attempts + r.attempts, r.status, r.error or result.error)
        return result


class AlertmanagerReceiver:
    """Pushes to an Alertmanager's ``/api/v2/alerts`` so teams keep routing, silences and inhibition."""

    def __init__(self, url: str, http: _Http, name: str = "alertmanager") -> None:
        self.url, self.http, self.name = url.rstrip("/") + "/api/v2/alerts", http, name

    def send(self, alerts: Sequence[Alert]) -> DeliveryResult:
        body = orjson.dumps([{
            "labels": dict(a.labels), "annotations": dict(a.annotations), "startsAt": rfc3339(a.starts_at),
            **({"endsAt": rfc3339(a.ends_at)} if a.ends_at is not None else {}),
            "generatorURL": a.generator_url,
        } for a in alerts])
        return self.http.post(self.name, self.url, body, {"Content-Type": "application/json"})


class SlackReceiver:
    """Slack incoming webhook: one message per (model, status) group."""

    def __init__(self, webhook_url: str, http: _Http, name: str = "slack") -> None:
        self.url, self.http, self.name = webhook_url, http, name

    def send(self, alerts: Sequence[Alert]) -> DeliveryResult:
        result = DeliveryResult(True, 0)
        for group in group_alerts(alerts):
            status = group[0].status
            icon = ":white_check_mark:" if status == "resolved" else (
                ":rotating_light:" if any(a.severity == "critical" for a in group) else ":warning:")
            lines = [f"{icon} *{status.upper()}* — {group[0].model}"]
            lines += [f"• `{a.labels.get('alertname')}` {a.annotations.get('summary', '')} "
                      f"(value {a.annotations.get('value')}, threshold {a.annotations.get('threshold')})"
                      for a in group]
            text = "\n".join(lines)
            body = orjson.dumps({"text": text, "blocks": [{"type": "section",
                                                           "text": {"type": "mrkdwn", "text": text}}]})
            r = self.http.post(self.name, self.url, body, {"Content-Type": "application/json"})
            result = DeliveryResult(result.ok and r.ok, result.attempts + r.attempts, r.status, r.error)
        return result


class PagerDutyReceiver:
    """PagerDuty Events API v2: trigger/resolve with ``dedup_key`` = the alert fingerprint."""

    def __init__(self, routing_key: str, http: _Http, url: str = "https://events.pagerduty.com/v2/enqueue",
                 name: str = "pagerduty") -> None:
        self.routing_key, self.http, self.url, self.name = routing_key, http, url, name

    def send(self, alerts: Sequence[Alert]) -> DeliveryResult:
        result = DeliveryResult(True, 0)
        for a in alerts:
            event: dict[str, Any] = {"routing_key": self.routing_key, "dedup_key": a.fingerprint,
                                     "event_action": "trigger" if a.status == "firing" else "resolve"}
            if a.status == "firing":
                event["payload"] = {
                    "summary": a.annotations.get("summary", a.labels.get("alertname", "driftline alert"))[:1024],
                    "source": f"driftline/{a.model}", "severity": a.severity if a.severity in (
                        "critical", "warning") else "warning",
                    "timestamp": rfc3339(a.starts_at), "component": a.model,
                    "group": a.labels.get("alertname", ""), "custom_details": {**a.labels, **a.annotations}}
                if a.generator_url:
                    event["links"] = [{"href": a.generator_url, "text": "Grafana"}]
            r = self.http.post(self.name, self.url, orjson.dumps(event), {"Content-Type": "application/json"})
            result = DeliveryResult(result.ok and r.ok, result.attempts + r.attempts, r.status, r.error)
        return result


@dataclass
class Route:
    """Send alerts matching ``severities`` and ``models`` (glob patterns; None = any) to ``receiver``."""

    receiver: Receiver
    severities: set[str] | None = None
    models: list[str] | None = None

    def matches(self, a: Alert) -> bool:
        if self.severities is not None and a.severity not in self.severities:
            return False
        return self.models is None or any(fnmatch.fnmatchcase(a.model, p) for p in self.models)


@dataclass
class ReceiverStats:
    sent: int = 0
    failed: int = 0
    attempts: int = 0
    deduped: int = 0


@dataclass
class AlertDispatcher:
    """Implements :class:`monitor.ports.AlertNotifier`: dedupe, repeat interval, routing, background delivery.

    A firing alert is delivered once and re-sent no sooner than ``repeat_interval_s``; a resolved alert
    is delivered once, and only if its firing notification was. ``notify`` only enqueues (a slow
    receiver never stalls the pipeline); ``notify_sync`` delivers in the caller's thread.
    """

    routes: list[Route]
    repeat_interval_s: float = 4 * 3600.0
    clock: Callable[[], float] = time.monotonic
    max_queue: int = 10_000
    stats: dict[str, ReceiverStats] = field(default_factory=dict)
    _sent: dict[tuple[str, str], float] = field(default_factory=dict)
    _queue: queue.Queue[list[Alert] | None] = field(init=False)
    _thread: threading.Thread | None = None
    dropped: int = 0

    def __post_init__(self) -> None:
        self._queue = queue.Queue(self.max_queue)
        for r in self.routes:
            self.stats.setdefault(r.receiver.name, ReceiverStats())

    def start(self) -> AlertDispatcher:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="alert-dispatcher", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self.notify_sync(item)
            except Exception:  # a broken receiver must not kill delivery for the others
                log.exception("event=notify_crashed")

    def notify(self, alerts: Sequence[Alert]) -> None:
        if not alerts:
            return
        if self._thread is None:
            self.start()
        try:
            self._queue.put_nowait(list(alerts))
        except queue.Full:
            self.dropped += len(alerts)
            log.error("event=notify_queue_full dropped=%d", len(alerts))

    def _due(self, route: Route, a: Alert) -> bool:
        key = (route.receiver.name, a.fingerprint)
        now = self.clock()
        if a.status == "resolved":
            return self._sent.pop(key, None) is not None
        last = self._sent.get(key)
        if last is not None and now - last < self.repeat_interval_s:
            self.stats[route.receiver.name].deduped += 1
            return False
        return True

    def notify_sync(self, alerts: Sequence[Alert]) -> None:
        for route in self.routes:
            due = [a for a in alerts if route.matches(a) and self._due(route, a)]
            if not due:
                continue
            result = route.receiver.send(due)
            st = self.stats[route.receiver.name]
            st.attempts += result.attempts
            if result.ok:
                st.sent += len(due)
                now = self.clock()
                for a in due:
                    if a.status == "firing":
                        self._sent[(route.receiver.name, a.fingerprint)] = now
            else:
                st.failed += len(due)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued, then stop the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None


def build_dispatcher(
    *,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    alertmanager_url: str | None = None,
    slack_webhook_url: str | None = None,
    pagerduty_routing_key: str | None = None,
    extra_webhooks: Iterable[Mapping[str, Any]] = (),
    repeat_interval_s: float = 4 * 3600.0,
    external_url: str = "",
    client: httpx.Client | None = None,
    timeout_s: float = 5.0,
    max_retries: int = 5,
    backoff_s: float = 0.5,
) -> AlertDispatcher | None:
    """A dispatcher for the configured receivers (None when there are none)."""
    http = _Http(client or httpx.Client(timeout=timeout_s), max_retries=max_retries, backoff_s=backoff_s)
    routes: list[Route] = []
    if webhook_url:
        routes.append(Route(WebhookReceiver(webhook_url, http, webhook_secret, external_url=external_url)))
    for i, w in enumerate(extra_webhooks):
        sev = w.get("severities")
        routes.append(Route(WebhookReceiver(str(w["url"]), http, w.get("secret"), name=str(w.get("name", f"webhook-{i}")),
                                            external_url=external_url),
                            severities=set(sev) if sev else None, models=w.get("models")))
    if alertmanager_url:
        routes.append(Route(AlertmanagerReceiver(alertmanager_url, http)))
    if slack_webhook_url:
        routes.append(Route(SlackReceiver(slack_webhook_url, http)))
    if pagerduty_routing_key:
        routes.append(Route(PagerDutyReceiver(pagerduty_routing_key, http), severities={"critical"}))
    if not routes:
        return None
    return AlertDispatcher(routes, repeat_interval_s=repeat_interval_s)
