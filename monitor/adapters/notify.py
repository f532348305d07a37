"""Alert delivery (docs/webhook-verification.md): routing, dedupe with a repeat interval, background delivery.

:class:`AlertDispatcher` implements :class:`monitor.ports.AlertNotifier`. ``notify`` only enqueues onto a
bounded queue served by one worker thread, so a slow or dead receiver never stalls the pipeline;
``notify_sync`` delivers in the caller's thread (the offline replay path).

Per receiver, a firing alert (by fingerprint) is delivered once, then re-sent while it is still firing
no sooner than ``repeat_interval_s`` later — whether the pipeline emits it again or not (the background
worker re-sends due alerts, as Alertmanager's ``repeat_interval`` does). A resolved alert is delivered
once, and only to receivers that were sent the firing alert.

The receivers and the HTTP retry policy live in :mod:`monitor.adapters.notify_receivers` and
:mod:`monitor.adapters.notify_http`; everything public is re-exported here.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from monitor.adapters.notify_http import (
    SIGNATURE_256_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryResult,
    RetryingPoster,
    sign,
    sign_timestamped,
)
from monitor.adapters.notify_receivers import (
    AlertmanagerReceiver,
    PagerDutyReceiver,
    Receiver,
    SlackReceiver,
    WebhookReceiver,
)
from monitor.adapters.receiver import verify_signature, verify_timestamped
from monitor.types import Alert

__all__ = [
    "SIGNATURE_256_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "AlertDispatcher",
    "AlertmanagerReceiver",
    "DeliveryResult",
    "PagerDutyReceiver",
    "Receiver",
    "ReceiverStats",
    "RetryingPoster",
    "Route",
    "SlackReceiver",
    "WebhookReceiver",
    "build_dispatcher",
    "build_dispatcher_from_config",
    "sign",
    "sign_timestamped",
    "verify_signature",
    "verify_timestamped",
]

log = logging.getLogger("driftline.notify")
SEVERITIES = frozenset({"warning", "critical"})
DEFAULT_REPEAT_INTERVAL_S = 4 * 3600.0


@dataclass(frozen=True)
class Route:
    """Send alerts matching ``severities`` and ``models`` to ``receiver``.

    Parameters
    ----------
    receiver : Receiver
        Where matching alerts go.
    severities : set of str or None
        Severities to accept (``warning``, ``critical``); None accepts all.
    models : set of str or None
        Model names or glob patterns (``fraud-*``, case-sensitive); None accepts all.
    """

    receiver: Receiver
    severities: frozenset[str] | set[str] | None = None
    models: frozenset[str] | set[str] | Sequence[str] | None = None

    def __post_init__(self) -> None:
        if self.severities is not None and not set(self.severities) <= SEVERITIES:
            raise ValueError(f"severities must be a subset of {sorted(SEVERITIES)}")
        if isinstance(self.models, str):
            raise TypeError("models must be a collection of patterns, not a single string")

    def matches(self, a: Alert) -> bool:
        """Whether ``a`` goes to this route's receiver."""
        if self.severities is not None and a.severity not in self.severities:
            return False
        return self.models is None or any(fnmatch.fnmatchcase(a.model, p) for p in self.models)


@dataclass
class ReceiverStats:
    """Per-receiver delivery counters (alerts, except ``retried`` which counts HTTP attempts)."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    dropped_4xx: int = 0
    deduped: int = 0
    repeated: int = 0


_STOP = object()


class AlertDispatcher:
    """Routes, deduplicates and delivers alerts; implements :class:`monitor.ports.AlertNotifier`.

    Parameters
    ----------
    routes : sequence of Route
        Every matching route's receiver gets the alert (once per receiver even if several routes match).
    repeat_interval_s : float
        Minimum time between two deliveries of the same firing alert to the same receiver.
    clock : callable
        Monotonic seconds (injectable so dedupe is unit-testable).
    max_queue : int
        Capacity of the queue between ``notify`` and the worker; when full, batches are dropped and counted.
    resend_firing : bool
        Re-send still-firing alerts every ``repeat_interval_s`` from the worker thread (see :meth:`tick`).
    tick_s : float
        How often the worker checks for alerts due a re-send.

    Examples
    --------
    >>> d = AlertDispatcher([])
    >>> d.notify_sync([])
    >>> d.counters()
    {}
    """

    def __init__(self, routes: Sequence[Route], repeat_interval_s: float = DEFAULT_REPEAT_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic, max_queue: int = 10_000, *,
                 resend_firing: bool = True, tick_s: float = 60.0) -> None:
        if repeat_interval_s < 0:
            raise ValueError("repeat_interval_s must be >= 0")
        if max_queue < 1 or tick_s <= 0:
            raise ValueError("max_queue must be >= 1 and tick_s > 0")
        self.routes = list(routes)
        self.repeat_interval_s, self.clock, self.max_queue = repeat_interval_s, clock, max_queue
        self.resend_firing, self.tick_s = resend_firing, tick_s
        self.receivers: dict[str, Receiver] = {}
        for r in self.routes:
            known = self.receivers.setdefault(r.receiver.name, r.receiver)
            if known is not r.receiver:
                raise ValueError(f"two different receivers are named {r.receiver.name!r}")
        self.stats: dict[str, ReceiverStats] = {name: ReceiverStats() for name in self.receivers}
        #: alerts dropped because the queue was full (or notify was called after close)
        self.queue_dropped = 0
        self._firing: dict[tuple[str, str], tuple[Alert, float]] = {}
        self._queue: queue.Queue[object] = queue.Queue(max_queue)
        self._state_lock = threading.Lock()
        self._deliver_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- the AlertNotifier port ------------------------------------------------------------------
    def notify(self, alerts: Sequence[Alert]) -> None:
        """Enqueue ``alerts`` for background delivery; never blocks (starts the worker if needed)."""
        if not alerts:
            return
        if self._closed:
            self._drop(len(alerts), "closed")
            return
        if self._thread is None:
            self.start()
        try:
            self._queue.put_nowait(list(alerts))
        except queue.Full:
            self._drop(len(alerts), "queue_full")

    def _drop(self, n: int, why: str) -> None:
        with self._state_lock:
            self.queue_dropped += n
        log.error("event=notify_dropped reason=%s alerts=%d", why, n)

    def notify_sync(self, alerts: Sequence[Alert]) -> None:
        """Route, dedupe and deliver ``alerts`` in the caller's thread (retries included).

        A batch can hold an alert's firing *and* its resolved transition (a backlog closes several windows
        in one flush): it is delivered in segments, in order, so the resolved is sent after its firing.
        """
        with self._deliver_lock:
            for segment in _segments(alerts):
                now = self.clock()
                for name, receiver in self.receivers.items():
                    due = self._due(name, [a for a in segment if self._routed(name, a)], now)
                    if due:
                        self._deliver(name, receiver, due, repeat=False)

    def tick(self) -> None:
        """Re-send firing alerts whose last delivery is at least ``repeat_interval_s`` old."""
        with self._deliver_lock:
            now = self.clock()
            with self._state_lock:
                due: dict[str, list[Alert]] = {}
                for (name, _), (a, last) in self._firing.items():
                    if now - last >= self.repeat_interval_s:
                        due.setdefault(name, []).append(a)
            for name, alerts in due.items():
                self._deliver(name, self.receivers[name], alerts, repeat=True)

    # -- routing and dedupe ------------------------------------------------------------------------
    def _routed(self, name: str, a: Alert) -> bool:
        return any(r.receiver.name == name and r.matches(a) for r in self.routes)

    def _due(self, name: str, alerts: Iterable[Alert], now: float) -> list[Alert]:
        out: list[Alert] = []
        seen: set[tuple[str, str]] = set()
        with self._state_lock:
            for a in alerts:
                key = (name, a.fingerprint)
                if (a.status, a.fingerprint) in seen:
                    continue
                seen.add((a.status, a.fingerprint))
                sent = self._firing.get(key)
                if a.status == "resolved":
                    if sent is not None:  # resolve only what the receiver was told is firing
                        out.append(a)
                elif sent is not None and now - sent[1] < self.repeat_interval_s:
                    self.stats[name].deduped += 1
                else:
                    out.append(a)
        return out

    def _deliver(self, name: str, receiver: Receiver, alerts: list[Alert], *, repeat: bool) -> None:
        try:
            result = receiver.send(alerts)
        except Exception as exc:  # a broken receiver must not kill delivery to the others
            log.error("event=notify_crashed receiver=%s error=%s", name, type(exc).__name__)
            result = DeliveryResult(False, 0, error=type(exc).__name__,
                                    failed=frozenset(a.fingerprint for a in alerts))
        failed = result.failed if result.failed or result.ok else frozenset(a.fingerprint for a in alerts)
        now = self.clock()
        with self._state_lock:
            st = self.stats[name]
            st.retried += result.retried
            for a in alerts:
                key = (name, a.fingerprint)
                ok = a.fingerprint not in failed
                if a.status == "resolved":
                    self._firing.pop(key, None)  # delivered or given up after retries: stop re-sending
                elif ok:
                    self._firing[key] = (a, now)
                if ok:
                    st.sent += 1
                    st.repeated += repeat
                else:
                    st.failed += 1
                    st.dropped_4xx += result.rejected
            if repeat and failed:
                # try again at the next interval rather than every tick
                for a in alerts:
                    if a.fingerprint in failed and (name, a.fingerprint) in self._firing:
                        self._firing[(name, a.fingerprint)] = (a, now)

    # -- observability -----------------------------------------------------------------------------
    def counters(self) -> dict[str, dict[str, int]]:
        """Per-receiver counters (``sent``, ``failed``, ``retried``, ``dropped_4xx``, ``deduped``, ``repeated``).

        A snapshot safe to read from another thread, e.g. a Prometheus collector.
        """
        with self._state_lock:
            return {name: asdict(st) for name, st in self.stats.items()}

    def active(self) -> int:
        """Firing alerts delivered and not yet resolved (over all receivers)."""
        with self._state_lock:
            return len(self._firing)

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> AlertDispatcher:
        """Start the background worker (idempotent)."""
        with self._start_lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name="alert-dispatcher", daemon=True)
                self._thread.start()
        return self

    def _run(self) -> None:
        last_tick = self.clock()
        while True:
            try:
                item = self._queue.get(timeout=self.tick_s if self.resend_firing else None)
            except queue.Empty:
                item = None
            if item is _STOP:
                return
            try:
                if isinstance(item, list):
                    self.notify_sync(item)
                if self.resend_firing and self.clock() - last_tick >= self.tick_s:
                    last_tick = self.clock()
                    self.tick()
            except Exception as exc:
                log.error("event=notify_worker_error error=%s", type(exc).__name__)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (within ``timeout`` seconds), stop the worker, release HTTP clients."""
        self._closed = True
        deadline = time.monotonic() + timeout
        if self._thread is not None:
            with contextlib.suppress(queue.Full):
                self._queue.put(_STOP, timeout=max(timeout, 0.001))
            self._thread.join(max(deadline - time.monotonic(), 0.0))
            if self._thread.is_alive():
                log.error("event=notify_close_timeout pending=%d", self._queue.qsize())
                return  # the daemon thread still uses the clients
            self._thread = None
        for receiver in self.receivers.values():
            closer = getattr(receiver, "close", None)
            if callable(closer):
                closer()

    def __enter__(self) -> AlertDispatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()



# -- composition from configuration -----------------------------------------------------------------
_ROUTE_KEYS = {"name", "severities", "models"}
_RETRY_KEYS = {"timeout_s", "max_retries", "backoff_s"}
_KINDS: dict[str, tuple[str, set[str]]] = {
    # kind: (default name, accepted keys besides routing and retry keys)
    "webhooks": ("webhook", {"url", "secret"}),
    "alertmanager": ("alertmanager", {"url", "firing_ttl_s"}),
    "slack": ("slack", {"webhook_url", "url"}),
    "pagerduty": ("pagerduty", {"routing_key", "url"}),
}
_TOP_KEYS = {*_KINDS, *_RETRY_KEYS, "repeat_interval_s", "external_url", "max_queue", "resend_firing", "tick_s"}


def _entries(cfg: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    raw = cfg.get(kind) or []
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(e, Mapping) for e in raw):
        raise ValueError(f"{kind}: expected a list of mappings")
    default_name, keys = _KINDS[kind]
    for i, e in enumerate(raw):
        unknown = set(e) - keys - _ROUTE_KEYS - _RETRY_KEYS
        if unknown:
            raise ValueError(f"{kind}[{i}]: unknown keys {sorted(unknown)}")
    return list(raw)


def _unique(name: str, taken: set[str]) -> str:
    out, i = name, 1
    while out in taken:
        i += 1
        out = f"{name}-{i}"
    taken.add(out)
    return out


def build_dispatcher_from_config(
    cfg: Mapping[str, Any],
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    *,
    client: httpx.Client | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> AlertDispatcher | None:
    """Build a dispatcher from a plain mapping (the ``notify`` section of the configuration).

    Parameters
    ----------
    cfg : mapping
        ``{"webhooks": [{"url", "secret", "severities", "models", "name", ...}], "alertmanager": [{"url"}],
        "slack": [{"webhook_url"}], "pagerduty": [{"routing_key"}], "repeat_interval_s": 14400,
        "external_url": ..., "timeout_s": 5, "max_retries": 5, "backoff_s": 0.5}``. Every receiver entry
        takes optional ``name``, ``severities``, ``models`` (globs) and ``timeout_s``/``max_retries``/
        ``backoff_s`` overrides. Unknown keys raise ``ValueError`` (a typo must not silence a pager).
    webhook_url, webhook_secret : str or None
        ``MONITOR_WEBHOOK_URL``/``MONITOR_WEBHOOK_SECRET`` as read by the caller: a generic webhook for
        every alert, named ``webhook``, added before the configured ones.
    client : httpx.Client or None
        Shared HTTP client (tests inject a ``MockTransport``); None gives each receiver its own.
    clock, sleep : callable
        Dispatcher clock and retry sleep (injectable for tests).

    Returns
    -------
    AlertDispatcher or None
        None when no receiver is configured.
    """
    unknown = set(cfg) - _TOP_KEYS
    if unknown:
        raise ValueError(f"notify config: unknown keys {sorted(unknown)}")
    defaults = {k: cfg[k] for k in _RETRY_KEYS if k in cfg}
    external_url = str(cfg.get("external_url", ""))
    repeat = float(cfg.get("repeat_interval_s", DEFAULT_REPEAT_INTERVAL_S))
    resend = bool(cfg.get("resend_firing", True))
    tick_s = float(cfg.get("tick_s", 60.0))
    taken: set[str] = set()
    routes: list[Route] = []

    def add(receiver: Receiver, e: Mapping[str, Any]) -> None:
        sev, models = e.get("severities"), e.get("models")
        routes.append(Route(receiver, severities=frozenset(sev) if sev else None,
                            models=frozenset([models] if isinstance(models, str) else models) if models else None))

    def retry(e: Mapping[str, Any]) -> dict[str, Any]:
        merged = {**defaults, **{k: e[k] for k in _RETRY_KEYS if k in e}}
        return {"timeout_s": float(merged.get("timeout_s", 5.0)), "max_retries": int(merged.get("max_retries", 5)),
                "backoff_s": float(merged.get("backoff_s", 0.5)), "client": client, "sleep": sleep}

    hooks = list(_entries(cfg, "webhooks"))
    if webhook_url:
        hooks.insert(0, {"url": webhook_url, "secret": webhook_secret, "name": "webhook"})
    for i, e in enumerate(hooks):
        if not e.get("url"):
            raise ValueError(f"webhooks[{i}]: url is required")
        if e.get("secret") is not None and not str(e["secret"]).strip():
            raise ValueError(f"webhooks[{i}]: secret is set but empty (it would send unsigned webhooks)")
        add(WebhookReceiver(str(e["url"]), e.get("secret") or None, _unique(str(e.get("name", "webhook")), taken),
                            external_url=external_url, **retry(e)), e)
    for i, e in enumerate(_entries(cfg, "alertmanager")):
        if not e.get("url"):
            raise ValueError(f"alertmanager[{i}]: url is required")
        ttl = e.get("firing_ttl_s", 2 * repeat + tick_s if resend else None)
        add(AlertmanagerReceiver(str(e["url"]), _unique(str(e.get("name", "alertmanager")), taken),
                                 firing_ttl_s=None if ttl is None else float(ttl), **retry(e)), e)
    for i, e in enumerate(_entries(cfg, "slack")):
        url = e.get("webhook_url") or e.get("url")
        if not url:
            raise ValueError(f"slack[{i}]: webhook_url is required")
        add(SlackReceiver(str(url), _unique(str(e.get("name", "slack")), taken), **retry(e)), e)
    for i, e in enumerate(_entries(cfg, "pagerduty")):
        if not e.get("routing_key"):
            raise ValueError(f"pagerduty[{i}]: routing_key is required")
        kw: dict[str, Any] = {"url": str(e["url"])} if e.get("url") else {}
        add(PagerDutyReceiver(str(e["routing_key"]), name=_unique(str(e.get("name", "pagerduty")), taken), **kw,
                              **retry(e)), e)
    if not routes:
        return None
    return AlertDispatcher(routes, repeat_interval_s=repeat, clock=clock, max_queue=int(cfg.get("max_queue", 10_000)),
                           resend_firing=resend, tick_s=tick_s)


def build_dispatcher(
    *,
    webhook_url: str | None = None,
    webhook_secret: str | None = None,
    alertmanager_url: str | None = None,
    slack_webhook_url: str | None = None,
    pagerduty_routing_key: str | None = None,
    extra_webhooks: Iterable[Mapping[str, Any]] = (),
    repeat_interval_s: float = DEFAULT_REPEAT_INTERVAL_S,
    external_url: str = "",
    client: httpx.Client | None = None,
    timeout_s: float = 5.0,
    max_retries: int = 5,
    backoff_s: float = 0.5,
) -> AlertDispatcher | None:
    """Build a dispatcher from flat settings (``monitor run``'s ``MONITOR_*`` variables).

    A thin wrapper over :func:`build_dispatcher_from_config`. PagerDuty gets ``critical`` alerts only
    (warnings should not wake anyone); every other receiver gets all alerts.

    Returns
    -------
    AlertDispatcher or None
        None when no receiver is configured.
    """
    cfg: dict[str, Any] = {"webhooks": list(extra_webhooks), "repeat_interval_s": repeat_interval_s,
                           "external_url": external_url, "timeout_s": timeout_s, "max_retries": max_retries,
                           "backoff_s": backoff_s}
    if alertmanager_url:
        cfg["alertmanager"] = [{"url": alertmanager_url}]
    if slack_webhook_url:
        cfg["slack"] = [{"webhook_url": slack_webhook_url}]
    if pagerduty_routing_key:
        cfg["pagerduty"] = [{"routing_key": pagerduty_routing_key, "severities": ["critical"]}]
    return build_dispatcher_from_config(cfg, webhook_url, webhook_secret, client=client)


def _segments(alerts: Sequence[Alert]) -> list[list[Alert]]:
    """Split a batch so that no segment holds two transitions of the same fingerprint (order kept)."""
    out: list[list[Alert]] = [[]]
    seen: set[str] = set()
    for a in alerts:
        if a.fingerprint in seen:
            out.append([])
            seen = set()
        out[-1].append(a)
        seen.add(a.fingerprint)
    return [seg for seg in out if seg]
