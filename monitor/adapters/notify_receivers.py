"""Alert receivers (docs/webhook-verification.md): generic webhook, Alertmanager API v2, Slack, PagerDuty Events v2.

Each receiver has a ``name`` and ``send(batch) -> DeliveryResult``; all POST through a
:class:`~monitor.adapters.notify_http.RetryingPoster` over an injectable ``httpx.Client``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import httpx
import orjson

from monitor.adapters.amformat import group_alerts, webhook_payload
from monitor.adapters.notify_http import EMPTY_RESULT, DeliveryResult, RetryingPoster, signed_headers
from monitor.types import Alert, rfc3339

_JSON = {"Content-Type": "application/json"}


class Receiver(Protocol):
    """Anything the dispatcher can route alerts to."""

    name: str

    def send(self, batch: Sequence[Alert]) -> DeliveryResult: ...


def _fingerprints(alerts: Sequence[Alert]) -> frozenset[str]:
    return frozenset(a.fingerprint for a in alerts)


class WebhookReceiver:
    """Generic webhook: one Alertmanager webhook v4 payload per (model, status) group, optionally signed.

    Parameters
    ----------
    url : str
        Receiver URL.
    secret : str or None
        HMAC secret; when set every request carries ``X-Driftline-Signature-256: t=<unix s>,v1=<hex>`` (the
        timestamp signed with the body), ``X-Driftline-Timestamp`` and the legacy ``X-Driftline-Signature:
        sha256=<hex>`` (docs/webhook-verification.md).
    name : str
        Receiver name (payload ``receiver``, stats key, logs).
    timeout_s, max_retries, backoff_s : float, int, float
        Retry policy, see :class:`RetryingPoster`.
    client : httpx.Client or None
        Injected HTTP client; None creates one.
    external_url : str
        Payload ``externalURL`` (e.g. the Grafana dashboard).
    sleep : callable
        Backoff sleep (injectable for tests).
    wall_clock : callable
        Signing time source (epoch seconds; injectable for tests).
    """

    def __init__(self, url: str, secret: str | bytes | None = None, name: str = "webhook", timeout_s: float = 5.0,
                 max_retries: int = 5, backoff_s: float = 0.5, *, client: httpx.Client | None = None,
                 external_url: str = "", sleep: Callable[[float], None] = time.sleep,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.url, self.secret, self.name, self.external_url = url, secret or None, name, external_url
        self.wall_clock = wall_clock
        self.http = RetryingPoster(client, timeout_s=timeout_s, max_retries=max_retries, backoff_s=backoff_s,
                                   sleep=sleep)

    def __repr__(self) -> str:  # never show the secret
        return f"WebhookReceiver(name={self.name!r}, signed={self.secret is not None})"

    def body(self, group: Sequence[Alert]) -> bytes:
        """The exact bytes POSTed for one (model, status) group."""
        return orjson.dumps(webhook_payload(group, self.name, self.external_url))

    def send(self, batch: Sequence[Alert]) -> DeliveryResult:
        """POST one payload per (model, status) group of ``batch``."""
        result = EMPTY_RESULT
        for group in group_alerts(batch):
            body = self.body(group)
            result = result.merge(self.http.post(self.name, self.url, body, self._headers(body)),
                                  _fingerprints(group))
        return result

    def _headers(self, body: bytes) -> Callable[[], dict[str, str]]:
        """Headers per attempt: the signatures are made at the attempt's own time."""
        secret = self.secret

        def make() -> dict[str, str]:
            if secret is None:
                return dict(_JSON)
            return {**_JSON, **signed_headers(secret, body, self.wall_clock())}

        return make

    def close(self) -> None:
        """Release the HTTP client if this receiver created it."""
        self.http.close()


def critical_first(batch: Sequence[Alert]) -> list[Alert]:
    """``batch`` with firing critical alerts first, otherwise in its order.

    >>> from monitor.types import Alert
    >>> a = [Alert({"alertname": "ErrorRate", "severity": s}, {}, "firing", 0.0) for s in ("warning", "critical")]
    >>> [x.severity for x in critical_first(a)]
    ['critical', 'warning']
    """
    return sorted(batch, key=lambda a: not (a.status == "firing" and a.severity == "critical"))


class AlertmanagerReceiver:
    """Pushes to an Alertmanager's ``/api/v2/alerts`` so teams keep routing, silences and inhibition.

    Parameters
    ----------
    url : str
        Alertmanager base URL, e.g. ``http://alertmanager:9093``.
    name : str
        Receiver name.
    firing_ttl_s : float or None
        When set, firing alerts carry ``endsAt = now + firing_ttl_s`` (what Prometheus does) so Alertmanager
        keeps them active between re-sends instead of auto-resolving them after its ``resolve_timeout``
        (5 m by default). The dispatcher re-sends still-firing alerts every repeat interval, so a TTL above
        the repeat interval keeps them active. None omits ``endsAt`` for firing alerts.
    wall_clock : callable
        Epoch-seconds clock for ``firing_ttl_s``, and the latest ``endsAt`` a resolved alert is sent with
        (its window end is event time, which may be ahead of Alertmanager's clock).
    timeout_s, max_retries, backoff_s, client, sleep
        As for :class:`WebhookReceiver`.
    """

    def __init__(self, url: str, name: str = "alertmanager", *, firing_ttl_s: float | None = None,
                 timeout_s: float = 5.0, max_retries: int = 5, backoff_s: float = 0.5,
                 client: httpx.Client | None = None, wall_clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.url, self.name = url.rstrip("/") + "/api/v2/alerts", name
        self.firing_ttl_s, self.wall_clock = firing_ttl_s, wall_clock
        self.http = RetryingPoster(client, timeout_s=timeout_s, max_retries=max_retries, backoff_s=backoff_s,
                                   sleep=sleep)

    def entry(self, a: Alert) -> dict[str, Any]:
        """One postable alert of the Alertmanager API v2."""
        now = self.wall_clock()
        ends: float | None
        if a.status == "resolved":
            # never in Alertmanager's future: an endsAt after its clock does not resolve the alert, and it
            # keeps the firing alert's (later) TTL instead. Event time can run ahead of the wall clock.
            starts, ends = a.starts_at, now if a.ends_at is None else min(a.ends_at, now)
        else:
            # as Prometheus does: a firing alert starts when it is sent (Alertmanager keeps the earliest
            # startsAt of an alert it holds). Alertmanager times group_wait from startsAt and flushes at once
            # an alert that started longer ago than that — which a window's event time (behind the wall clock
            # by the allowed lateness at least) usually is — before its inhibitor has seen the critical
            # sibling posted with it (prometheus/alertmanager#4064): the warning would page. The window is
            # in the description.
            starts, ends = now, None if self.firing_ttl_s is None else now + self.firing_ttl_s
        out: dict[str, Any] = {"labels": dict(a.labels), "annotations": dict(a.annotations),
                               "startsAt": rfc3339(starts)}
        if ends is not None:
            out["endsAt"] = rfc3339(ends)
        out["generatorURL"] = a.generator_url
        return out

    def send(self, batch: Sequence[Alert]) -> DeliveryResult:
        """POST the whole batch as one list, firing critical alerts first (seen first by the inhibitor)."""
        if not batch:
            return EMPTY_RESULT
        body = orjson.dumps([self.entry(a) for a in critical_first(batch)])
        return EMPTY_RESULT.merge(self.http.post(self.name, self.url, body, _JSON), _fingerprints(batch))

    def close(self) -> None:
        """Release the HTTP client if this receiver created it."""
        self.http.close()


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


#: Slack limits: 50 blocks per message, 3000 characters per section text
_SLACK_MAX_BLOCKS = 50
_SLACK_MAX_SECTION = 3000


class SlackReceiver:
    """Slack incoming webhook: one message per notification (``send`` call), a section per (model, status).

    Parameters
    ----------
    webhook_url : str
        The incoming-webhook URL (a credential: never logged).
    name : str
        Receiver name.
    timeout_s, max_retries, backoff_s, client, sleep
        As for :class:`WebhookReceiver`; 429 (Slack's rate limit) is retried.
    """

    def __init__(self, webhook_url: str, name: str = "slack", *, timeout_s: float = 5.0, max_retries: int = 5,
                 backoff_s: float = 0.5, client: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.url, self.name = webhook_url, name
        self.http = RetryingPoster(client, timeout_s=timeout_s, max_retries=max_retries, backoff_s=backoff_s,
                                   retry_on_429=True, sleep=sleep)

    def __repr__(self) -> str:
        return f"SlackReceiver(name={self.name!r})"

    @staticmethod
    def message(batch: Sequence[Alert]) -> dict[str, Any]:
        """The incoming-webhook body: plain ``text`` fallback plus mrkdwn ``blocks``."""
        groups = group_alerts(batch)
        sections: list[str] = []
        for group in groups:
            status = group[0].status
            icon = ":white_check_mark:" if status == "resolved" else (
                ":rotating_light:" if any(a.severity == "critical" for a in group) else ":warning:")
            lines = [f"{icon} *{status.upper()}* {_slack_escape(group[0].model)}"]
            for a in group:
                lines.append(
                    f"• `{_slack_escape(a.labels.get('alertname', 'alert'))}` "
                    f"{_slack_escape(a.annotations.get('summary', ''))} "
                    f"(value {_slack_escape(a.annotations.get('value', '?'))}, "
                    f"threshold {_slack_escape(a.annotations.get('threshold', '?'))})")
            text = "\n".join(lines)
            if len(text) > _SLACK_MAX_SECTION:
                text = text[:_SLACK_MAX_SECTION - 1] + "…"
            sections.append(text)
        firing = sum(1 for a in batch if a.status == "firing")
        resolved = len(batch) - firing
        headline = f"Driftline: {firing} firing, {resolved} resolved"
        blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{headline}*"}}]
        shown = sections[:_SLACK_MAX_BLOCKS - 2]
        blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": s}} for s in shown]
        if len(sections) > len(shown):
            blocks.append({"type": "context", "elements": [
                {"type": "mrkdwn", "text": f"…and {len(sections) - len(shown)} more groups"}]})
        fallback = headline + "\n" + "\n".join(sections)
        return {"text": fallback[:_SLACK_MAX_SECTION], "blocks": blocks}

    def send(self, batch: Sequence[Alert]) -> DeliveryResult:
        """POST one message for the whole batch."""
        if not batch:
            return EMPTY_RESULT
        body = orjson.dumps(self.message(batch))
        return EMPTY_RESULT.merge(self.http.post(self.name, self.url, body, _JSON), _fingerprints(batch))

    def close(self) -> None:
        """Release the HTTP client if this receiver created it."""
        self.http.close()


#: Driftline severity → PagerDuty Events v2 severity
PAGERDUTY_SEVERITY = {"critical": "critical", "warning": "warning"}


class PagerDutyReceiver:
    """PagerDuty Events API v2: ``trigger``/``resolve`` with ``dedup_key`` = the alert fingerprint.

    Parameters
    ----------
    routing_key : str
        Integration (routing) key — a credential: never logged.
    url : str
        Events API endpoint.
    name : str
        Receiver name.
    timeout_s, max_retries, backoff_s, client, sleep
        As for :class:`WebhookReceiver`; 429 (PagerDuty's rate limit) is retried.
    """

    def __init__(self, routing_key: str, url: str = "https://events.pagerduty.com/v2/enqueue",
                 name: str = "pagerduty", *, timeout_s: float = 5.0, max_retries: int = 5, backoff_s: float = 0.5,
                 client: httpx.Client | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.routing_key, self.url, self.name = routing_key, url, name
        self.http = RetryingPoster(client, timeout_s=timeout_s, max_retries=max_retries, backoff_s=backoff_s,
                                   retry_on_429=True, sleep=sleep)

    def __repr__(self) -> str:
        return f"PagerDutyReceiver(name={self.name!r})"

    def event(self, a: Alert) -> dict[str, Any]:
        """The Events v2 body for one alert."""
        out: dict[str, Any] = {"routing_key": self.routing_key, "dedup_key": a.fingerprint,
                               "event_action": "trigger" if a.status == "firing" else "resolve"}
        if a.status == "firing":
            summary = a.annotations.get("summary") or a.labels.get("alertname", "Driftline alert")
            out["payload"] = {
                "summary": summary[:1024],
                "source": f"driftline/{a.model}" if a.model else "driftline",
                "severity": PAGERDUTY_SEVERITY.get(a.severity, "warning"),
                "timestamp": rfc3339(a.starts_at),
                "component": a.model,
                "group": a.labels.get("alertname", ""),
                "class": a.labels.get("metric", ""),
                "custom_details": {"labels": dict(a.labels), "annotations": dict(a.annotations)},
            }
            if a.generator_url:
                out["links"] = [{"href": a.generator_url, "text": "Driftline dashboard"}]
        return out

    def send(self, batch: Sequence[Alert]) -> DeliveryResult:
        """POST one event per alert (the Events API takes one event per request)."""
        result = EMPTY_RESULT
        for a in batch:
            r = self.http.post(self.name, self.url, orjson.dumps(self.event(a)), _JSON)
            result = result.merge(r, frozenset((a.fingerprint,)))
        return result

    def close(self) -> None:
        """Release the HTTP client if this receiver created it."""
        self.http.close()
