"""``monitor run``: the faust-streaming worker around the pure pipeline.

Design (docs/streaming.md has the long form):

* One agent reads ``predictions`` and ``labels`` (key = model, so a model lives on one partition) with
  acks disabled, buffers raw events and decodes/observes them in batches (msgspec + vectorised window
  updates). State is bin counts in memory — no per-event table updates.
* A timer (``flush_interval``) advances the watermark (idle models close by wall clock), hands points
  to the sink and flushes it, sends alerts to the notifiers, publishes retraining CloudEvents and DLQ
  records and waits for their delivery, and only then acks the events whose every window is closed and
  flushed. faust commits the highest contiguous acked offset: **at-least-once**.
* After each flush, the per-model watermark (``closed_until``) is written to ``monitor.checkpoints`` on
  the same partition number as the model's input partition. A worker that gets a partition reads it
  first, so replayed events of already-closed windows count as late instead of rewriting good points
  with partial ones. Replayed open windows produce identical points (idempotent writes).
* InfluxDB down: flush fails, nothing is acked, points stay buffered; consumption pauses once the
  buffer passes 80 % of its bound and resumes when a flush succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

import faust
import orjson
from faust.types import TP

from monitor.adapters.health import WorkerMetrics
from monitor.adapters.influx import BufferFull, SinkUnavailable
from monitor.config import MonitorSettings, parse_duration
from monitor.core.reference import ReferenceProfile
from monitor.events import decode_any
from monitor.pipeline import Monitor
from monitor.ports import AlertNotifier, MetricSink
from monitor.types import LabelEvent, MetricPoint, PredictionEvent, Rejection, RetrainRequest

log = logging.getLogger("driftline.worker")


class _Pending:
    """One consumed event awaiting its ack: done when every window containing it is closed and flushed
    (``last_end <= closed_until(model)``), or ``done`` is set (DLQ record delivered)."""

    __slots__ = ("done", "event", "last_end", "model")

    def __init__(self, event: Any, model: str | None, last_end: float, done: bool = False) -> None:
        self.event = event
        self.model = model
        self.last_end = last_end
        self.done = done


@dataclass
class WorkerState:
    """Everything the agent and the timer share (one asyncio loop: no locks needed)."""

    settings: MonitorSettings
    monitor: Monitor
    sink: MetricSink
    notifier: AlertNotifier | None
    metrics: WorkerMetrics
    buffer: list[Any] = field(default_factory=list)
    #: per input partition (topic, partition), events in offset order; acked as a prefix only, so the
    #: committed offset never passes an event of an open window, whatever faust's own ack bookkeeping does
    pending: dict[tuple[str, int], deque[_Pending]] = field(default_factory=lambda: defaultdict(deque))
    dlq_out: list[tuple[Rejection, _Pending]] = field(default_factory=list)
    #: points advance() emitted that the sink has not accepted yet (BufferFull): never dropped
    points_out: list[MetricPoint] = field(default_factory=list)
    retrain_out: list[RetrainRequest] = field(default_factory=list)
    model_partition: dict[str, int] = field(default_factory=dict)
    checkpointed: dict[str, float] = field(default_factory=dict)
    #: highest offset read per input (topic, partition), for consumer lag
    read_offset: dict[tuple[str, int], int] = field(default_factory=dict)
    paused: bool = False
    last_flush_wall: float = field(default_factory=time.time)
    events_since_flush: int = 0
    windows_closed: int = 0
    declared: frozenset[str] | None = None
    flush_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: windows closed by advance() whose points are not yet flushed
    closed_pending: int = 0
    #: >0 while checkpoints of newly assigned partitions are being read: observe nothing until restored
    restoring: int = 0

    def process_buffer(self) -> None:
        """Decode and observe buffered events as one batch."""
        if not self.buffer or self.restoring:
            return
        batch, self.buffer = self.buffer, []
        s = self.settings
        decoded: list[PredictionEvent | LabelEvent] = []
        rejected: list[Rejection] = []
        now = time.time()
        for event in batch:
            msg = event.message
            raw = event.value if isinstance(event.value, bytes) else bytes(event.value or b"")
            out = decode_any(raw, topic=msg.topic, partition=msg.partition, offset=msg.offset,
                             max_bytes=s.max_event_bytes, models=self.declared)
            self.metrics.events.labels(msg.topic).inc()
            queue = self.pending[(msg.topic, msg.partition)]
            self.read_offset[(msg.topic, msg.partition)] = msg.offset
            if isinstance(out, Rejection):
                rejected.append(out)
                entry = _Pending(event, None, 0.0)
                self.dlq_out.append((out, entry))
                queue.append(entry)
                continue
            decoded.append(out)
            self.model_partition[out.model] = msg.partition
            # a label's windows are those of its prediction, which (labels follow predictions) end no later
            queue.append(_Pending(event, out.model, self.monitor.last_window_end(out.timestamp)))
        if rejected:
            self.monitor.reject(rejected)
            self.metrics.invalid.inc(len(rejected))
        if decoded:
            unknown = self.monitor.observe(decoded, now=now)
            if unknown:  # undeclared models are rejected at decode time; count any the pipeline still refuses
                self.metrics.invalid.inc(len(unknown))
        self.events_since_flush += len(batch)

    def ackable(self) -> list[Any]:
        """The done prefix of every partition's pending events (call only after a successful flush).

        Acking strictly in offset order keeps faust's committed offset (highest contiguous ack) below
        the first event of a still-open window, also when faust does not know the committed offset yet.
        """
        out: list[Any] = []
        closed_until = self.monitor.closed_until
        for queue in self.pending.values():
            while queue:
                head = queue[0]
                if not head.done:
                    if head.model is None:
                        break
                    closed = closed_until(head.model)
                    if closed is None or head.last_end > closed:
                        break
                out.append(queue.popleft().event)
        return out

    def pending_count(self) -> int:
        return sum(len(q) for q in self.pending.values())

    def freeze_idle_clocks(self, now: float) -> None:
        """While the worker is not consuming (backpressure, rebalance, checkpoint restore), its models are
        not idle: restart their idle clocks so the wall-clock watermark extrapolation does not close windows
        whose events are still waiting in Kafka."""
        for mm in self.monitor.models.values():
            if mm.last_wall is not None:
                mm.last_wall = now


def _security(settings: MonitorSettings) -> Any:
    if settings.security_protocol == "PLAINTEXT":
        return None
    import ssl

    ctx = None
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        ctx = ssl.create_default_context(cafile=settings.ssl_cafile)
        if settings.ssl_certfile:
            ctx.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile)
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(username=settings.sasl_username or "", password=settings.sasl_password or "",
                                     mechanism=settings.sasl_mechanism or "PLAIN", ssl_context=ctx)
    return faust.SSLCredentials(ctx)


def build_app(settings: MonitorSettings, references: dict[str, ReferenceProfile], sink: MetricSink,
              notifier: AlertNotifier | None = None, metrics: WorkerMetrics | None = None) -> faust.App:
    """The faust app: topics, the ingest agent, the flush timer, partition callbacks and /metrics."""
    metrics = metrics or WorkerMetrics()
    app = faust.App(
        settings.consumer_group,
        broker=";".join(f"kafka://{b}" for b in settings.bootstrap_servers.split(",")),
        broker_credentials=_security(settings),
        value_serializer="raw", key_serializer="raw",
        topic_partitions=settings.partitions, topic_replication_factor=settings.replication_factor,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=parse_duration(settings.session_timeout),
        broker_rebalance_timeout=parse_duration(settings.rebalance_timeout),
        broker_heartbeat_interval=parse_duration(settings.heartbeat_interval),
        broker_commit_interval=max(0.5, settings.flush_interval_s),
        web_enabled=True, web_host=settings.web_host, web_port=settings.web_port, web_bind=settings.web_host,
        store="memory://", table_cleanup_interval=3600.0,
        stream_buffer_maxsize=max(16_384, settings.batch_size * 4),
        broker_max_poll_records=5_000,
        consumer_max_fetch_size=8 * 1024 * 1024,
        producer_acks=-1,
        stream_wait_empty=False,  # unacked events of open windows are replayed by the next owner
    )
    state = WorkerState(settings, Monitor(settings, references), sink, notifier, metrics,
                        declared=frozenset(settings.models) if settings.models else None)
    app.driftline_state = state  # type: ignore[attr-defined]
    inputs = app.topic(settings.predictions_topic, settings.labels_topic, value_type=bytes, key_type=bytes,
                       partitions=settings.partitions)
    retraining = app.topic(settings.retraining_topic, value_type=bytes, key_type=bytes)
    dlq = app.topic(settings.dlq_topic, value_type=bytes, key_type=bytes)
    checkpoints = app.topic(settings.checkpoint_topic, value_type=bytes, key_type=bytes,
                            partitions=settings.partitions)

    @app.agent(inputs)
    async def ingest(stream: Any) -> None:
        async for event in stream.noack().events():
            if event.message.generation_id != app.consumer_generation_id:
                continue  # fetched before a rebalance: the partition's owner replays it from the committed offset
            state.buffer.append(event)
            if len(state.buffer) >= settings.batch_size:
                state.process_buffer()
            while state.paused:
                await asyncio.sleep(0.2)  # backpressure: stop pulling until the sink recovers

    async def flush() -> None:
        async with state.flush_lock:
            await _flush()

    async def _flush() -> None:
        now = time.time()
        if state.restoring:
            state.freeze_idle_clocks(now)
            return  # never close a window before the partition's checkpoint is applied
        state.process_buffer()
        if state.paused:
            state.freeze_idle_clocks(now)  # not consuming: do not extrapolate watermarks of waiting events
        em = state.monitor.advance(now=now)
        state.closed_pending += len(em.closed)
        state.points_out.extend(em.points)
        state.points_out.extend(_worker_points(state))
        state.retrain_out.extend(em.retrain)
        if em.alerts and state.notifier is not None:
            # the dispatcher queues and retries on its own; alerts are derived state, not acked input
            state.notifier.notify(em.alerts)
            for a in em.alerts:
                metrics.alerts.labels(a.status).inc()
        try:
            if state.points_out:
                state.sink.add(state.points_out)
                metrics.points.inc(len(state.points_out))
                state.points_out = []
            # a blocking flush (retries with backoff while InfluxDB is down) must not stall the event loop:
            # faust's heartbeats and the consumer keep running, and the group does not rebalance
            await asyncio.get_running_loop().run_in_executor(None, state.sink.flush)
        except (SinkUnavailable, BufferFull) as exc:
            metrics.sink_errors.inc()
            metrics.sink_up.set(0)
            state.paused = bool(getattr(state.sink, "backpressure", True)) or isinstance(exc, BufferFull)
            metrics.paused.set(1 if state.paused else 0)
            metrics.sink_buffered.set(getattr(state.sink, "buffered", 0) + len(state.points_out))
            log.warning("event=sink_unavailable paused=%s buffered=%d error=%r", state.paused,
                        getattr(state.sink, "buffered", 0) + len(state.points_out), str(exc)[:300])
            return
        metrics.sink_up.set(1)
        if state.paused:
            log.info("event=consumption_resumed")
            state.freeze_idle_clocks(time.time())
        state.paused = False
        metrics.paused.set(0)
        metrics.windows_closed.inc(state.closed_pending)  # including windows closed during an outage
        state.windows_closed += state.closed_pending
        state.closed_pending = 0
        try:
            await _deliver()
        except Exception as exc:  # broker trouble: nothing more is acked; the next flush retries the rest
            log.warning("event=publish_failed error=%r", f"{type(exc).__name__}: {exc}"[:300])
            return
        acked = state.ackable()
        for event in acked:
            event.ack()
        metrics.sink_buffered.set(getattr(state.sink, "buffered", 0))
        metrics.pending_acks.set(state.pending_count())
        metrics.open_windows.set(state.monitor.open_windows())
        _consumer_lag(app, state)
        state.last_flush_wall = time.time()
        state.events_since_flush = 0

    async def _deliver() -> None:
        """Retraining CloudEvents, DLQ records and checkpoints, each awaited until the broker has it."""
        while state.retrain_out:
            req = state.retrain_out[0]
            fut = await retraining.send(key=req.model.encode(), value=orjson.dumps(req.to_cloudevent(settings.source)))
            await fut
            state.retrain_out.pop(0)
            metrics.retraining.inc()
            log.info("event=retraining_requested model=%s reason=%s id=%s", req.model, req.reason, req.event_id)
        if state.dlq_out:
            items = state.dlq_out
            now = time.time()
            futs = [await dlq.send(key=r.model.encode() if r.model else None, value=orjson.dumps(r.to_dlq(now)))
                    for r, _ in items]
            for f in futs:
                await f
            state.dlq_out = []
            metrics.dlq.inc(len(items))
            for _, entry in items:
                entry.done = True
        await _checkpoint(state, checkpoints)

    @app.timer(interval=settings.flush_interval_s)  # type: ignore[untyped-decorator]
    async def flush_timer() -> None:
        await flush()

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        mine = {tp.partition for tp in assigned if tp.topic == settings.predictions_topic}
        if not mine:
            return
        loop = asyncio.get_running_loop()
        state.restoring += 1
        try:
            restored = await loop.run_in_executor(None, read_checkpoints, settings, mine)
            for model, closed_until in restored.items():
                state.monitor.restore(model, closed_until)
                state.checkpointed[model] = closed_until
        finally:
            state.restoring -= 1
        log.info("event=partitions_assigned partitions=%s checkpoints=%d", sorted(mine), len(restored))

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        gone = {tp.partition for tp in revoked if tp.topic in (settings.predictions_topic, settings.labels_topic)}
        if not gone:
            return
        # write the points of windows closed so far and their checkpoint; the acks themselves are void
        # (faust forgets a revoked partition's acks), so the next owner replays from the committed offset
        await flush()
        state.buffer = [e for e in state.buffer if e.message.partition not in gone]
        for key in [k for k in state.pending if k[1] in gone]:
            del state.pending[key]
            state.read_offset.pop(key, None)
        for model, part in list(state.model_partition.items()):
            if part in gone:
                state.monitor.forget(model)
                state.model_partition.pop(model, None)
                state.checkpointed.pop(model, None)
        log.info("event=partitions_revoked partitions=%s", sorted(gone))

    @app.page("/metrics")
    async def prometheus(web: Any, request: Any) -> Any:
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"ok": True, "sink_up": not state.paused, "paused": state.paused,
                         "open_windows": state.monitor.open_windows(), "pending_events": state.pending_count()})

    return app


async def _checkpoint(state: WorkerState, topic: Any) -> None:
    """Write changed per-model watermarks to the checkpoint topic, on the model's input partition."""
    futs = []
    for model, part in state.model_partition.items():
        closed = state.monitor.closed_until(model)
        if closed is None or state.checkpointed.get(model) == closed:
            continue
        futs.append(await topic.send(key=model.encode(), value=orjson.dumps({"closed_until": closed}),
                                     partition=part))
        state.checkpointed[model] = closed
    for f in futs:
        await f


def read_checkpoints(settings: MonitorSettings, partitions: set[int], idle_s: float = 1.0) -> dict[str, float]:
    """The newest ``closed_until`` per model in the given checkpoint partitions (kafka-python, blocking)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False,
                             group_id=None, **settings.kafka_python_security())
    try:
        available = consumer.partitions_for_topic(settings.checkpoint_topic) or set()
        tps = [TopicPartition(settings.checkpoint_topic, p) for p in partitions if p in available]
        if not tps:
            return {}
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: dict[str, float] = {}
        quiet_since = time.monotonic()
        deadline = time.monotonic() + 30
        while time.monotonic() - quiet_since < idle_s and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=200)
            if batch:
                quiet_since = time.monotonic()
            for records in batch.values():
                for r in records:
                    try:
                        model = r.key.decode()
                        value = float(orjson.loads(r.value)["closed_until"])
                    except (ValueError, KeyError, TypeError, AttributeError):
                        continue
                    out[model] = max(value, out.get(model, value))
        return out
    finally:
        consumer.close()


def _consumer_lag(app: faust.App, state: WorkerState) -> None:
    """Per-partition lag from the high-water mark of the last fetch (approximate on tansu, see INFRA.md)."""
    for (topic, partition), offset in state.read_offset.items():
        try:
            hw = app.consumer.highwater(TP(topic, partition))
        except Exception:  # not assigned any more, or no fetch yet
            continue
        if hw is not None and hw >= 0:
            state.metrics.consumer_lag.labels(topic, str(partition)).set(max(0, hw - offset - 1))


def _worker_points(state: WorkerState) -> list[MetricPoint]:
    now = time.time()
    elapsed = max(now - state.last_flush_wall, 1e-6)
    watermarks = [m.watermark(now) for m in state.monitor.models.values()]
    wms = [w for w in watermarks if w is not None]
    lag = max(0.0, now - min(wms)) if wms else 0.0
    state.metrics.window_lag.set(lag)
    fields = (("events", state.events_since_flush), ("events_per_s", state.events_since_flush / elapsed),
              ("window_lag_s", float(lag)), ("sink_queue", int(getattr(state.sink, "buffered", 0))),
              ("dlq", len(state.dlq_out)), ("windows_closed", state.windows_closed))
    return [MetricPoint("driftline_worker", (("worker", state.settings.worker_name),), fields,
                        int(now * 1e9))]
