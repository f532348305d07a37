"""Webhooks delivered to a real HTTP server on loopback, signed, retried, resolved."""

import time

import pytest

from monitor.adapters.notify import build_dispatcher
from monitor.adapters.receiver import WebhookServer
from tests.adapters.test_notify import alert

pytestmark = pytest.mark.integration


def wait_for(cond, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_firing_then_resolved_with_valid_signatures():
    with WebhookServer(secret="k3y") as server:
        d = build_dispatcher(webhook_url=server.url, webhook_secret="k3y", backoff_s=0.01)
        d.notify([alert()])
        d.notify([alert(status="resolved", ends=1767226500.0)])
        assert wait_for(lambda: len(server.received) == 2)
        d.close()
        assert [p["status"] for p in server.received] == ["firing", "resolved"]
        assert server.rejected == 0


def test_bad_signature_is_refused_and_not_retried():
    with WebhookServer(secret="right") as server:
        d = build_dispatcher(webhook_url=server.url, webhook_secret="wrong", backoff_s=0.01)
        d.notify_sync([alert()])
        assert server.rejected == 1 and server.requests == 1 and server.received == []


def test_503_three_times_then_delivered_exactly_once():
    with WebhookServer(fail_first=3) as server:
        d = build_dispatcher(webhook_url=server.url, backoff_s=0.01)
        d.notify_sync([alert()])
        assert server.requests == 4 and len(server.received) == 1
        d.notify_sync([alert()])  # same fingerprint inside the repeat interval: not sent again
        assert len(server.received) == 1


def test_slow_receiver_times_out_without_stalling():
    with WebhookServer(delay_s=1.0) as server:
        d = build_dispatcher(webhook_url=server.url, timeout_s=0.2, max_retries=1, backoff_s=0.01)
        t = time.perf_counter()
        d.notify([alert()])
        assert time.perf_counter() - t < 0.05
        d.close(timeout=10)
        assert d.stats["webhook"].failed == 1
