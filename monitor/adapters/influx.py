"""InfluxDB sink over influxdb-client: line-protocol strings, synchronous batched writes at flush,
retries with exponential backoff, a bounded buffer and a backpressure signal.

Nothing is lost while InfluxDB is down: unwritten lines stay buffered (up to ``max_buffer_points``);
``flush`` raises :class:`SinkUnavailable` after its retry budget and the next ``flush`` tries again.
The worker pauses consumption while :attr:`InfluxSink.backpressure` is set, and commits offsets only
after a successful flush. Line protocol identifies a point by measurement, tags and time, so
re-writing a window's points after a crash or a late label overwrites them (idempotent).
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from monitor.types import MetricPoint

log = logging.getLogger("driftline.influx")


class SinkUnavailable(RuntimeError):
    """InfluxDB could not be written after the retry budget; points stay buffered."""


class BufferFull(RuntimeError):
    """More points than ``max_buffer_points`` are waiting: the caller must stop producing."""


class SinkRejected(RuntimeError):
    """InfluxDB refused the data (4xx): retrying cannot help."""


@dataclass
class SinkStats:
    points_written: int = 0
    write_errors: int = 0
    retries: int = 0
    rejected_batches: int = 0
    last_error: str = ""
    up: bool = True


class InfluxSink:
    """Implements :class:`monitor.ports.MetricSink` for InfluxDB 2.x (and 1.8+ through its v2 API)."""

    def __init__(self, url: str, token: str | None, org: str, bucket: str, *, timeout_s: float = 10.0,
                 max_retries: int = 5, backoff_s: float = 0.5, max_backoff_s: float = 30.0,
                 max_buffer_points: int = 500_000, batch_size: int = 5_000,
                 client: InfluxDBClient | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        if max_buffer_points <= 0 or batch_size <= 0:
            raise ValueError("max_buffer_points and batch_size must be > 0")
        self.url, self.org, self.bucket = url, org, bucket
        self.max_retries, self.backoff_s, self.max_backoff_s = max_retries, backoff_s, max_backoff_s
        self.max_buffer_points, self.batch_size = max_buffer_points, batch_size
        self._client = client or InfluxDBClient(url=url, token=token or "", org=org, timeout=int(timeout_s * 1000))
        self._write = self._client.write_api(write_options=SYNCHRONOUS)
        self._buffer: deque[str] = deque()
        self._sleep = sleep
        self.stats = SinkStats()

    def add(self, points: Sequence[MetricPoint]) -> None:
        if len(self._buffer) + len(points) > self.max_buffer_points:
            raise BufferFull(f"{len(self._buffer)} points buffered (max {self.max_buffer_points})")
        self._buffer.extend(p.to_line() for p in points)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    @property
    def backpressure(self) -> bool:
        return len(self._buffer) >= 0.8 * self.max_buffer_points or not self.stats.up

    def _write_batch(self, lines: list[str]) -> None:
        delay = self.backoff_s
        for attempt in range(self.max_retries + 1):
            try:
                self._write.write(bucket=self.bucket, org=self.org, record=lines,
                                  write_precision=cast(WritePrecision, WritePrecision.NS))
                return
            except ApiException as exc:
                status = int(exc.status or 0)
                if 400 <= status < 500 and status not in (408, 429):
                    self.stats.rejected_batches += 1
                    self.stats.last_error = f"HTTP {status}: {str(exc.body)[:300]}"
                    raise SinkRejected(f"InfluxDB rejected a batch: {self.stats.last_error}") from None
                self.stats.last_error = f"HTTP {status}: {str(exc.body)[:300]}"
            except Exception as exc:  # connection refused, timeouts, DNS: all retryable
                self.stats.last_error = f"{type(exc).__name__}: {exc}"[:300]
            self.stats.write_errors += 1
            if attempt == self.max_retries:
                break
            self.stats.retries += 1
            self._sleep(min(delay, self.max_backoff_s) * (0.5 + random.random()))
            delay *= 2
        self.stats.up = False
        raise SinkUnavailable(f"InfluxDB at {self.url} unavailable after {self.max_retries + 1} attempts: "
                              f"{self.stats.last_error}")

    def flush(self) -> None:
        """Write everything buffered; on failure the unwritten points stay buffered."""
        while self._buffer:
            n = min(self.batch_size, len(self._buffer))
            batch = [self._buffer[i] for i in range(n)]
            try:
                self._write_batch(batch)
            except SinkRejected:
                # a malformed batch would block the buffer forever: drop it, loudly
                log.error("event=influx_batch_rejected points=%d error=%r", n, self.stats.last_error)
                for _ in range(n):
                    self._buffer.popleft()
                continue
            for _ in range(n):
                self._buffer.popleft()
            self.stats.points_written += n
            if not self.stats.up:
                log.info("event=influx_recovered url=%s", self.url)
            self.stats.up = True

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except Exception:
            return False

    def close(self) -> None:
        self._client.close()
