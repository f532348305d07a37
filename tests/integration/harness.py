"""Helpers for integration tests that run real `monitor run` workers against the real broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from monitor.adapters.health import metric_sum
from monitor.devservices import free_port


def wait_for(cond: Callable[[], Any], timeout: float = 60.0, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"condition not met within {timeout} s")


class Worker:
    """A `python -m monitor run` subprocess with its own web port and log file."""

    def __init__(self, workdir: Path, bootstrap: str, name: str, **env: str) -> None:
        self.port = free_port()
        self.log = workdir / f"{name}.log"
        self.env = dict(os.environ)
        self.env.update({
            "MONITOR_BROKER": f"kafka://{bootstrap}", "MONITOR_WORKER_NAME": name,
            "MONITOR_WEB_PORT": str(self.port), "MONITOR_SESSION_TIMEOUT": "6s",
            "MONITOR_REBALANCE_TIMEOUT": "6s", "MONITOR_HEARTBEAT_INTERVAL": "1s",
            "MONITOR_FLUSH_INTERVAL": "0.5s", "MONITOR_WINDOW": "10s", "MONITOR_ALLOWED_LATENESS": "2s",
            "MONITOR_IDLE_TIMEOUT": "2s", "MONITOR_LABEL_GRACE": "1m",
        })
        self.env.update(env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        fh = self.log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "monitor", "run"], env=self.env, stdout=fh,
                                     stderr=subprocess.STDOUT)
        wait_for(lambda: self.metric("driftline_up") >= 1 or self._dead(), timeout=60)
        if self._dead():
            raise RuntimeError(f"worker exited: {self.log.read_text()[-3000:]}")
        return self

    def _dead(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def metrics_text(self) -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                return r.read().decode()
        except OSError:
            return ""

    def metric(self, name: str) -> float:
        return metric_sum(self.metrics_text(), name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def consume_all(bootstrap: str, topic: str, group: str, expect: int, timeout: float = 30.0) -> list[Any]:
    """Read ``topic`` from the beginning in a fresh consumer group until ``expect`` records or timeout."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                             session_timeout_ms=6000, heartbeat_interval_ms=1000)
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < expect and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=300).values():
                out.extend(records)
    finally:
        consumer.close()
    return out


def read_topic(bootstrap: str, topic: str, idle_s: float = 2.0, timeout: float = 60.0) -> list[Any]:
    """Every record of ``topic`` from the beginning to its end (no consumer group; the end is when nothing
    new arrives for ``idle_s``, because some brokers' end offsets are not reliable)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        parts = wait_for(lambda: consumer.partitions_for_topic(topic), timeout=20)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        # the idle clock starts once the consumer knows its fetch positions (connecting and the first fetch of
        # a large record can take longer than ``idle_s`` on a loaded machine)
        wait_for(lambda: all(consumer.position(tp) is not None for tp in tps), timeout=20)
        quiet = time.monotonic()
        while time.monotonic() - quiet < idle_s and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=200)
            if batch:
                quiet = time.monotonic()
            for records in batch.values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def vm_export(url: str, match: str) -> list[dict[str, Any]]:
    """Series from VictoriaMetrics' /api/v1/export (after a force flush)."""
    urllib.request.urlopen(f"{url}/internal/force_flush", timeout=10).read()
    q = urllib.parse.urlencode({"match[]": match})
    with urllib.request.urlopen(f"{url}/api/v1/export?{q}", timeout=10) as r:
        return [orjson.loads(line) for line in r.read().splitlines() if line.strip()]

