"""InfluxDB sink over influxdb-client: line-protocol strings, synchronous batched writes at flush,
retries with exponential backoff and jitter, a bounded buffer and a backpressure signal.

Nothing is lost while InfluxDB is down: unwritten lines stay buffered (up to ``max_buffer_points``);
``flush`` raises :class:`SinkUnavailable` after its retry budget and the next ``flush`` tries again.
The worker pauses consumption while :attr:`InfluxSink.backpressure` is set, and acknowledges events
only after a successful flush. Line protocol identifies a point by measurement, tags and time, so
re-writing a window's points after a crash or a late label overwrites them (idempotent).

Error classes of a write:

* 5xx, 408, 429, connection errors and timeouts: retried (``Retry-After`` is honoured, capped by
  ``max_backoff_s``); after ``max_retries`` retries :class:`SinkUnavailable`, points kept.
* 400 / 422 (InfluxDB refuses the data itself, e.g. a field type conflict): not retried; the batch is
  dropped (retrying could never succeed and would block every later point), the other batches are
  written, then :class:`SinkRejected` carries InfluxDB's message.
* 413: the batch is split in halves and each half is written.
* other 4xx (401/403 bad token, 404 unknown bucket or no ``/api/v2/write``): not retried, points kept
  (they are fine, the configuration is not), :class:`SinkRejected` with InfluxDB's message.
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

from monitor.redact import redact_url
from monitor.types import MetricPoint

log = logging.getLogger("driftline.influx")

#: statuses that mean "the data is bad": drop the batch instead of blocking the buffer forever
_DATA_REJECTED = frozenset({400, 422})
#: 4xx statuses that are worth retrying
_RETRYABLE_4XX = frozenset({408, 429})


class SinkUnavailable(RuntimeError):
    """InfluxDB could not be written after the retry budget; the points stay buffered."""


class SinkRejected(SinkUnavailable):
    """InfluxDB answered 4xx: retrying cannot help. ``dropped`` points of rejected data were discarded
    (400/422); on other 4xx (auth, unknown bucket) nothing was discarded and the points stay buffered."""

    def __init__(self, message: str, status: int, dropped: int) -> None:
        super().__init__(message)
        self.status = status
        self.dropped = dropped


class BufferFull(RuntimeError):
    """More points than ``max_buffer_points`` are waiting: the caller must stop producing."""


@dataclass
class SinkStats:
    """Counters for ``/metrics`` and ``/health``."""

    points_written: int = 0
    #: failed write attempts (every HTTP error or connection failure, retried or not)
    write_errors: int = 0
    #: attempts repeated after a retryable failure
    retries: int = 0
    rejected_batches: int = 0
    points_dropped: int = 0
    last_error: str = ""
    #: False after a flush failed for a reason other than rejected data, until a write succeeds
    up: bool = True


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(exc: ApiException) -> float | None:
    value = getattr(exc, "retry_after", None)
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None  # an HTTP date: fall back to our own backoff


def _message(exc: ApiException) -> str:
    msg = getattr(exc, "message", None) or exc.body or exc.reason or ""
    if isinstance(msg, bytes):
        msg = msg.decode("utf-8", errors="replace")
    return str(msg)[:500]


class InfluxSink:
    """Implements :class:`monitor.ports.MetricSink` for InfluxDB 2.x (and 1.8+ through its v2 API).

    ``add`` only buffers line-protocol strings (cheap, no I/O); ``flush`` writes them synchronously in
    batches of ``batch_size`` with nanosecond precision and returns only when all are stored.
    Not thread-safe: call it from one task (the worker's flush lock).
    """

    def __init__(self, url: str, token: str | None, org: str, bucket: str, *, timeout_s: float = 10.0,
                 max_retries: int = 5, backoff_s: float = 0.5, max_backoff_s: float = 30.0,
                 max_buffer_points: int = 200_000, batch_size: int = 5_000,
                 client: InfluxDBClient | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        if max_buffer_points <= 0 or batch_size <= 0 or max_retries < 0:
            raise ValueError("max_buffer_points and batch_size must be > 0, max_retries >= 0")
        self.org, self.bucket = org, bucket
        #: the URL as shown in messages and logs: userinfo and secret-looking parameters masked
        self.url = redact_url(url)
        self.max_retries, self.backoff_s, self.max_backoff_s = max_retries, backoff_s, max_backoff_s
        self.max_buffer_points, self.batch_size = max_buffer_points, batch_size
        self._client = client or InfluxDBClient(url=url, token=token or "", org=org, timeout=int(timeout_s * 1000))
        self._write = self._client.write_api(write_options=SYNCHRONOUS)
        self._buffer: deque[str] = deque()
        self._sleep = sleep
        self.stats = SinkStats()

    def add(self, points: Sequence[MetricPoint]) -> None:
        """Buffer ``points`` as line protocol; :class:`BufferFull` (nothing added) past ``max_buffer_points``."""
        if len(self._buffer) + len(points) > self.max_buffer_points:
            raise BufferFull(f"{len(self._buffer)} points buffered, {len(points)} more refused "
                             f"(max {self.max_buffer_points})")
        self._buffer.extend(p.to_line() for p in points)

    @property
    def buffered(self) -> int:
        """Points waiting to be written."""
        return len(self._buffer)

    @property
    def backpressure(self) -> bool:
        """True when the buffer is ≥ 80 % full or InfluxDB is down (last flush failed): stop producing."""
        return len(self._buffer) >= 0.8 * self.max_buffer_points or not self.stats.up

    def _post(self, lines: list[str]) -> None:
        """One write attempt: returns, raises :class:`_Retryable`, or raises ApiException for a 4xx."""
        try:
            self._write.write(bucket=self.bucket, org=self.org, record=lines,
                              write_precision=cast(WritePrecision, WritePrecision.NS))
        except ApiException as exc:
            status = int(exc.status or 0)
            self.stats.write_errors += 1
            self.stats.last_error = f"HTTP {status}: {_message(exc)}"
            if 400 <= status < 500 and status not in _RETRYABLE_4XX:
                raise
            raise _Retryable(self.stats.last_error, _retry_after(exc)) from None
        except Exception as exc:  # connection refused, reset, timeouts, DNS: all retryable
            self.stats.write_errors += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"[:500]
            raise _Retryable(self.stats.last_error, None) from None

    def _write_batch(self, lines: list[str]) -> None:
        """Write ``lines`` with retries; :class:`SinkUnavailable` when the budget is spent."""
        delay = self.backoff_s
        for attempt in range(self.max_retries + 1):
            try:
                self._post(lines)
                return
            except _Retryable as exc:
                if attempt == self.max_retries:
                    break
                self.stats.retries += 1
                pause = min(delay, self.max_backoff_s) * (0.5 + random.random())  # full jitter around delay
                if exc.retry_after is not None:
                    pause = max(pause, min(exc.retry_after, self.max_backoff_s))
                log.debug("event=influx_retry attempt=%d pause=%.3f error=%r", attempt + 1, pause, str(exc))
                self._sleep(pause)
                delay *= 2
        self.stats.up = False
        raise SinkUnavailable(f"InfluxDB at {self.url} unavailable after {self.max_retries + 1} attempts: "
                              f"{self.stats.last_error}")

    def _write_or_split(self, lines: list[str]) -> None:
        """Write ``lines``; on 413 write each half (recursively) instead."""
        try:
            self._write_batch(lines)
        except ApiException as exc:
            if int(exc.status or 0) == 413 and len(lines) > 1:
                half = len(lines) // 2
                self._write_or_split(lines[:half])
                self._write_or_split(lines[half:])
                return
            raise

    def flush(self) -> None:
        """Write everything buffered; returns when all of it is stored.

        Raises :class:`SinkUnavailable` (points kept, next flush retries) or :class:`SinkRejected`.
        """
        rejected: list[SinkRejected] = []
        while self._buffer:
            n = min(self.batch_size, len(self._buffer))
            batch = [self._buffer[i] for i in range(n)]
            try:
                self._write_or_split(batch)
            except ApiException as exc:
                status = int(exc.status or 0)
                if status not in _DATA_REJECTED and status != 413:
                    self.stats.up = False  # auth / bucket / endpoint problem: keep the points, stop here
                    raise SinkRejected(f"InfluxDB at {self.url} refused the write ({self.stats.last_error}); "
                                       f"{len(self._buffer)} points kept", status, 0) from None
                # the data itself is refused: retrying can never succeed, so drop this batch loudly
                log.error("event=influx_batch_rejected points=%d error=%r", n, self.stats.last_error)
                self.stats.rejected_batches += 1
                self.stats.points_dropped += n
                rejected.append(SinkRejected(f"InfluxDB rejected {n} points: {self.stats.last_error}", status, n))
                for _ in range(n):
                    self._buffer.popleft()
                continue
            for _ in range(n):
                self._buffer.popleft()
            self.stats.points_written += n
            if not self.stats.up:
                log.info("event=influx_recovered url=%s", self.url)
            self.stats.up = True
        if rejected:
            dropped = sum(r.dropped for r in rejected)
            raise SinkRejected(f"{rejected[0]} ({len(rejected)} batches, {dropped} points dropped)",
                               rejected[0].status, dropped)

    def ping(self) -> bool:
        """Health check: True when the server answers ``/ping``."""
        try:
            return bool(self._client.ping())
        except Exception:
            return False

    def close(self) -> None:
        """Release the HTTP connections (buffered points are not flushed: call :meth:`flush` first)."""
        self._client.close()
