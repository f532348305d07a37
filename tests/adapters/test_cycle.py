"""The worker's I/O cycle with fake ports: random interleavings of fetched batches, flushes that fail (sink
or broker), crashes and takeovers. Whatever happens, a new owner that starts from the committed offsets and
the checkpoints ends with the points of the single-process pipeline: the cycle never acks past a partial
that was not delivered or a window whose points were not flushed."""

from __future__ import annotations

import asyncio
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pandas as pd
from faust.types import TP
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.adapters.cycle import WorkerCycle
from monitor.adapters.influx import SinkUnavailable
from monitor.config import MonitorSettings
from monitor.core.reference import build_profile
from monitor.owner import ReferenceBook
from monitor.pipeline import Monitor
from monitor.types import MetricPoint, PredictionEvent

T0 = 1_767_225_600.0
P = 2  # input (and partials, checkpoint) partitions
REF = build_profile("m", pd.DataFrame({"x": np.random.default_rng(0).normal(0, 1, 2000),
                                       "c": np.random.default_rng(1).choice(["a", "b"], 2000)}),
                    built_at="2026-01-01T00:00:00Z")
SETTINGS = MonitorSettings(window="10s", allowed_lateness="1s", idle_timeout="30s", labels_topic="",
                           consumer_group="t", max_future_skew="1h")


@dataclass
class Record:
    offset: int
    value: bytes
    key: bytes | None = None


class Broker:
    """Topics as lists of records; sends may be told to fail (nothing of a failed send is written)."""

    def __init__(self) -> None:
        self.topics: dict[str, dict[int, list[Record]]] = defaultdict(lambda: defaultdict(list))
        self.committed: dict[TP, int] = {}
        self.fail_sends = False

    def partitions(self, topic: str) -> int:
        return 1 if topic == SETTINGS.references_topic else P

    def append(self, topic: str, key: bytes | None, value: bytes, partition: int | None) -> None:
        if partition is None:
            partition = zlib.crc32(key) % self.partitions(topic) if key is not None else 0
        log = self.topics[topic][partition]
        log.append(Record(len(log), value, key))


class Bus:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    async def send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> Any:
        if self.broker.fail_sends:
            raise ConnectionError("broker unreachable")
        self.broker.append(topic, key, value, partition)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


class Acker:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def ack_range(self, tp: TP, first: int, last: int) -> int:
        prev = self.broker.committed.get(tp, 0)
        assert first <= max(prev, first) and last + 1 >= prev, (tp, first, last, prev)
        self.broker.committed[tp] = max(prev, last + 1)
        return last + 1 - prev

    def highwater(self, tp: TP) -> int | None:
        return len(self.broker.topics[tp.topic][tp.partition])

    def committed(self, tp: TP) -> int | None:
        return self.broker.committed.get(tp)


@dataclass
class Sink:
    written: list[MetricPoint] = field(default_factory=list)
    buffer: list[MetricPoint] = field(default_factory=list)
    fail: bool = False

    def add(self, points: list[MetricPoint]) -> None:
        self.buffer.extend(points)

    def flush(self) -> None:
        if self.fail:
            raise SinkUnavailable("store down")
        self.written.extend(self.buffer)
        self.buffer = []


class Clock:
    def __init__(self) -> None:
        self.now = T0 + 3_600.0  # a wall clock after the events (the decoder rejects events far ahead of it)

    def __call__(self) -> float:
        return self.now


class World:
    def __init__(self, events: list[PredictionEvent], keying: str, settings: MonitorSettings = SETTINGS) -> None:
        self.settings = settings
        self.broker = Broker()
        self.sink = Sink()
        self.clock = Clock()
        for e in events:
            key = e.request_id.encode() if keying == "request_id" else None
            part = zlib.crc32(key) % P if key is not None else int(e.timestamp * 7) % P
            self.broker.append(settings.predictions_topic, key, orjson.dumps(
                {"model": e.model, "request_id": e.request_id, "timestamp": e.timestamp, "features": dict(e.features),
                 "prediction": e.prediction, "score": e.score, "latency_ms": e.latency_ms}), part)
        self.epoch = 0
        self.cycle = self._start()

    def _start(self) -> WorkerCycle:
        self.epoch += 1
        acker = Acker(self.broker)
        cycle = WorkerCycle(self.settings, ReferenceBook([REF]), P, self.sink, None, Bus(self.broker), acker,
                            clock=self.clock, positions=acker)
        checkpoints: dict[str, Any] = {}
        for part in range(P):
            for r in self.broker.topics[self.settings.checkpoint_topic][part]:
                checkpoints[r.key.decode()] = orjson.loads(r.value)  # type: ignore[union-attr]
        cycle.assign(set(range(P)), set(range(P)), epoch=self.epoch, checkpoints=checkpoints)
        # a new owner reads from the committed offsets
        self.position = {TP(t, p): self.broker.committed.get(TP(t, p), 0)
                         for t in (SETTINGS.predictions_topic, SETTINGS.partials_topic) for p in range(P)}
        return cycle

    def crash(self) -> None:
        self.sink.buffer = []  # a crashed worker's buffered points are lost
        self.cycle = self._start()

    def fetch(self, topic: str, partition: int, n: int) -> None:
        tp = TP(topic, partition)
        log = self.broker.topics[topic][partition]
        start = self.position[tp]
        batch = log[start:start + n]
        if batch:
            hint = self.broker.committed.get(tp, 0)
            self.cycle.ingest([(tp, batch)], {tp: hint})
            self.position[tp] = start + len(batch)

    def flush(self, sink_fails: bool = False, bus_fails: bool = False) -> None:
        self.sink.fail, self.broker.fail_sends = sink_fails, bus_fails
        asyncio.run(self.cycle.flush())
        self.sink.fail = self.broker.fail_sends = False
        self.cycle.paused = False

    def play(self, steps: list[tuple[str, Any, Any]]) -> None:
        """Run :data:`Step` s (fetches, partial fetches, flushes that may fail, clock ticks, crashes), then
        :meth:`drain`."""
        for kind, a, b in steps:
            if kind == "fetch":
                self.fetch(self.settings.predictions_topic, a, b)
            elif kind == "partials":
                self.fetch(self.settings.partials_topic, a, b)
            elif kind == "flush":
                self.flush(sink_fails=a and not b, bus_fails=b and not a)
            elif kind == "tick":
                self.clock.now += a
            else:
                self.crash()
        self.drain()

    def drain(self) -> None:
        """Read everything, flush, then let the idle watermarks close the last windows."""
        for _ in range(4):
            for topic in (SETTINGS.predictions_topic, SETTINGS.partials_topic):
                for part in range(P):
                    self.fetch(topic, part, 10**9)
            self.flush()
        self.clock.now += 600.0
        for _ in range(6):
            self.flush()
            for part in range(P):
                self.fetch(SETTINGS.partials_topic, part, 10**9)


def _events(seed: int, n: int) -> list[PredictionEvent]:
    rng = np.random.default_rng(seed)
    ts = np.sort(T0 + rng.uniform(0, 60, n))
    return [PredictionEvent("m", f"r{seed}-{i}", float(t), {"x": float(rng.normal(0.3 if t > T0 + 30 else 0, 1)),
                                                             "c": str(rng.choice(["a", "b", "z"]))},
                            prediction=int(rng.integers(2)), score=float(rng.uniform()),
                            latency_ms=float(rng.lognormal(3, 0.3)))
            for i, t in enumerate(ts)]


def _final(points: list[MetricPoint]) -> dict[tuple, tuple]:
    out: dict[tuple, tuple] = {}
    for p in points:
        if p.measurement in ("throughput", "drift", "latency", "errors"):
            out[p.series_key()] = p.fields
    return out


Step = st.one_of(
    st.tuples(st.just("fetch"), st.integers(0, P - 1), st.integers(1, 60)),
    st.tuples(st.just("partials"), st.integers(0, P - 1), st.integers(1, 20)),
    st.tuples(st.just("flush"), st.booleans(), st.booleans()),
    st.tuples(st.just("tick"), st.floats(0.1, 3.0), st.just(0)),
    st.tuples(st.just("crash"), st.just(0), st.just(0)),
)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 1000), st.sampled_from(["request_id", "none"]), st.lists(Step, min_size=5, max_size=60))
def test_crashes_and_failures_never_lose_or_double_count_a_window(seed, keying, steps):
    events = _events(seed, 240)
    mon = Monitor(SETTINGS, {"m": REF})
    mon.observe(events)
    expected = _final(list(mon.close_all().points))
    world = World(events, keying)
    world.play(steps)
    written: dict[tuple, set[tuple]] = defaultdict(set)
    for p in world.sink.written:
        if p.measurement in ("throughput", "drift", "latency", "errors"):
            written[p.series_key()].add(p.fields)
    twice = {k: v for k, v in written.items() if len(v) > 1}
    assert not twice, f"windows written twice with different values: {list(twice.items())[:2]}"
    got = {k: next(iter(v)) for k, v in written.items()}
    assert got.keys() == expected.keys(), sorted(set(got) ^ set(expected))[:4]
    assert got == expected
