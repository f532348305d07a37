"""Webhooks delivered to a real HTTP server on loopback: signed, retried, resolved, never stalling the caller."""

from __future__ import annotations

import threading
import time

import pytest

from monitor.adapters.notify import build_dispatcher, build_dispatcher_from_config
from monitor.adapters.receiver import WebhookServer
from tests.adapters.test_notify import T0, alert

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]
FAST = {"backoff_s": 0.01, "timeout_s": 2.0}


def wait_for(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_firing_then_resolved_with_valid_signatures():
    with WebhookServer(secret="k3y") as server:
        d = build_dispatcher_from_config(FAST, server.url, "k3y")
        assert d is not None
        d.notify([alert(), alert(feature="age")])
        d.notify([alert(status="resolved", ends=T0 + 600)])
        assert wait_for(lambda: len(server.payloads()) == 2)
        d.close(timeout=5)
        firing, resolved = server.payloads()
        assert server.rejected == 0 and server.requests == 2  # the server verified both signatures
        assert firing["status"] == "firing" and [a["labels"]["feature"] for a in firing["alerts"]] == ["amount", "age"]
        assert resolved["status"] == "resolved" and resolved["alerts"][0]["endsAt"] == "2026-01-01T00:15:00.000Z"
        assert firing["version"] == "4" and firing["receiver"] == "webhook"
        assert d.counters()["webhook"]["sent"] == 3


def test_503_three_times_then_delivered_exactly_once():
    with WebhookServer(secret="k3y", fail_first=3, status_on_fail=503) as server:
        d = build_dispatcher_from_config(FAST, server.url, "k3y")
        assert d is not None
        d.notify([alert()])
        d.close(timeout=10)
        assert server.requests == 4 and len(server.payloads()) == 1 and server.rejected == 0
        assert d.counters()["webhook"] == {"sent": 1, "failed": 0, "retried": 3, "dropped_4xx": 0, "deduped": 0,
                                           "repeated": 0}


def test_bad_signature_is_refused_with_401_and_not_retried():
    with WebhookServer(secret="right") as server:
        d = build_dispatcher_from_config(FAST, server.url, "wrong")
        assert d is not None
        d.notify_sync([alert()])
        assert server.rejected == 1 and server.requests == 1 and server.payloads() == []
        assert d.counters()["webhook"]["dropped_4xx"] == 1


def test_held_receiver_does_not_stall_the_caller():
    """No timing: the server holds the request until the caller has returned from notify."""
    hold = threading.Event()
    with WebhookServer(hold=hold) as server:
        d = build_dispatcher(webhook_url=server.url, timeout_s=20.0, max_retries=0)
        assert d is not None
        d.notify([alert()])
        counts_at_return = dict(d.counters()["webhook"])
        hold.set()
        d.close(timeout=20)
        assert counts_at_return["sent"] == counts_at_return["failed"] == 0
        assert d.counters()["webhook"]["sent"] == 1 and len(server.payloads()) == 1


def test_slow_receiver_times_out_and_is_retried():
    with WebhookServer(delay_s=1.0) as server:
        d = build_dispatcher(webhook_url=server.url, timeout_s=0.2, max_retries=1, backoff_s=0.01)
        assert d is not None
        d.notify([alert()])
        d.close(timeout=10)
        assert d.counters()["webhook"]["failed"] == 1 and d.counters()["webhook"]["retried"] == 1
