"""``monitor run``: the faust-streaming worker around the pure pipeline.

Design (docs/streaming.md has the long form):

* ``predictions`` and ``labels`` (key = model, so a model lives on one partition) are consumed by faust's
  consumer with a batched drain (:mod:`monitor.adapters.batching`): every fetched batch is decoded and
  observed in one call (msgspec + vectorised window updates). State is bin counts in memory — no
  per-event table updates, and consumed records are not kept (only offset, model and window end).
* A timer (``flush_interval``) advances the watermark (idle models close by wall clock), hands points
  to the sink and flushes it, sends alerts to the notifiers, publishes retraining CloudEvents and DLQ
  records and waits for their delivery, and only then acks, per partition in offset order, the records
  whose every window is closed and flushed. faust commits the acked prefix: **at-least-once**.
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
import math
import time
from dataclasses import dataclass, field
from typing import Any, cast

import faust
import numpy as np
import orjson
from faust.transport.drivers.aiokafka import Transport as AIOKafkaTransport
from faust.types import TP

from monitor.adapters.batching import UNATTRIBUTED, AckLedger, BatchConsumer, RecordBatch
from monitor.adapters.health import WorkerMetrics
from monitor.adapters.influx import BufferFull, SinkUnavailable
from monitor.config import MonitorSettings, parse_duration
from monitor.core.reference import ReferenceProfile
from monitor.events import decode_any
from monitor.pipeline import Monitor
from monitor.ports import AlertNotifier, MetricSink
from monitor.types import LabelEvent, MetricPoint, PredictionEvent, Rejection, RetrainRequest

log = logging.getLogger("driftline.worker")


@dataclass
class WorkerState:
    """Everything the drain loop and the timer share (one asyncio loop: no locks needed)."""

    settings: MonitorSettings
    monitor: Monitor
    sink: MetricSink
    notifier: AlertNotifier | None
    metrics: WorkerMetrics
    #: per input partition, consumed offsets awaiting their ack (acked as an offset-ordered prefix only,
    #: so the committed offset never passes a record of an open window)
    ledger: AckLedger = field(default_factory=AckLedger)
    #: rejections whose dead-letter record is not delivered yet, with their ledger slot
    dlq_out: list[tuple[Rejection, Any, int]] = field(default_factory=list)
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

    def process_records(self, batch: RecordBatch, start_hints: dict[TP, int | None] | None = None) -> None:
        """Decode and observe one fetched batch (per partition, records in offset order)."""
        s = self.settings
        decoded: list[PredictionEvent | LabelEvent] = []
        rejected: list[Rejection] = []
        now = time.time()
        ledger = self.ledger
        model_id = ledger.model_id
        max_bytes, declared = s.max_event_bytes, self.declared
        inf = math.inf
        model_partition = self.model_partition
        for tp, records in batch:
            topic, partition = tp.topic, tp.partition
            offsets: list[int] = []
            ids: list[int] = []
            stamps: list[float] = []
            dead: list[tuple[Rejection, int]] = []
            for i, record in enumerate(records):
                offset = record.offset
                offsets.append(offset)
                out = decode_any(record.value or b"", topic=topic, partition=partition, offset=offset,
                                 max_bytes=max_bytes, models=declared)
                if isinstance(out, Rejection):
                    rejected.append(out)
                    dead.append((out, i))
                    ids.append(UNATTRIBUTED)
                    stamps.append(inf)  # done once its dead-letter record is delivered
                    continue
                decoded.append(out)
                ids.append(model_id(out.model))
                model_partition[out.model] = partition
                stamps.append(out.timestamp)
            # a label's windows are those of its prediction, which (labels follow predictions) end no later
            ends = self.monitor.last_window_ends(np.array(stamps, dtype=np.float64))
            chunk = ledger.add(tp, offsets, ids, ends, (start_hints or {}).get(tp))
            self.dlq_out.extend((rej, chunk, i) for rej, i in dead)
            self.metrics.events.labels(topic).inc(len(records))
            self.read_offset[(topic, partition)] = offsets[-1]
        if rejected:
            self.monitor.reject(rejected)
            self.metrics.invalid.inc(len(rejected))
        if decoded:
            unknown = self.monitor.observe(decoded, now=now)
            if unknown:  # undeclared models are rejected at decode time; count any the pipeline still refuses
                self.metrics.invalid.inc(len(unknown))
        self.events_since_flush += sum(len(r) for _, r in batch)

    def pending_count(self) -> int:
        return self.ledger.pending()

    def freeze_idle_clocks(self, now: float) -> None:
        """While the worker is not consuming (backpressure, rebalance, checkpoint restore), its models are
        not idle: restart their idle clocks so the wall-clock watermark extrapolation does not close windows
        whose events are still waiting in Kafka."""
        for mm in self.monitor.models.values():
            if mm.last_wall is not None:
                mm.last_wall = now


class _App(faust.App):
    """faust.App whose consumer drains input topics in batches (:class:`BatchConsumer`)."""

    def _new_consumer(self) -> Any:
        transport = self.transport
        if not isinstance(transport, AIOKafkaTransport):  # build_app always uses kafka:// (aiokafka)
            raise TypeError(f"the Driftline worker needs faust's aiokafka transport, not {type(transport)!r}")
        consumer = BatchConsumer(transport, callback=self.topics.on_message,
                                 on_partitions_revoked=self._on_partitions_revoked,
                                 on_partitions_assigned=self._on_partitions_assigned,
                                 beacon=self.beacon, loop=transport.loop)
        consumer.batch_handler = getattr(self, "driftline_ingest", None)
        consumer.batch_topics = getattr(self, "driftline_topics", frozenset())
        return consumer


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
    app = _App(
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
        broker_max_poll_records=max(settings.batch_size, 1),
        consumer_max_fetch_size=1024 * 1024,
        producer_acks=-1,
        stream_wait_empty=False,  # unacked events of open windows are replayed by the next owner
    )
    state = WorkerState(settings, Monitor(settings, references), sink, notifier, metrics,
                        declared=frozenset(settings.models) if settings.models else None)
    app.driftline_state = state  # type: ignore[attr-defined]
    input_topics = [t for t in (settings.predictions_topic, settings.labels_topic) if t]
    inputs = app.topic(*input_topics, value_type=bytes, key_type=bytes,
                       partitions=settings.partitions)
    retraining = app.topic(settings.retraining_topic, value_type=bytes, key_type=bytes)
    dlq = app.topic(settings.dlq_topic, value_type=bytes, key_type=bytes)
    checkpoints = app.topic(settings.checkpoint_topic, value_type=bytes, key_type=bytes,
                            partitions=settings.partitions)

    app.topics.add(inputs)  # subscribed; records arrive in batches through ingest(), not through an agent

    async def ingest(batch: RecordBatch, generation: int) -> None:
        """Called by the consumer's drain loop with every fetched batch of the input topics."""
        while state.restoring:  # never observe before the partition's checkpoint is applied
            await asyncio.sleep(0.05)

        if app.consumer_generation_id != generation:
            return  # a rebalance happened meanwhile: faust seeks to the committed offsets and re-reads
        consumer = cast(BatchConsumer, app.consumer)
        hints = {tp: consumer._committed_offset[tp] for tp, _ in batch if tp not in state.ledger.queues}
        state.process_records(batch, hints)
        while state.paused:
            await asyncio.sleep(0.2)  # backpressure: stop pulling until the sink recovers

    app.driftline_ingest = ingest  # type: ignore[attr-defined]
    app.driftline_topics = frozenset(input_topics)  # type: ignore[attr-defined]

    async def flush() -> None:
        async with state.flush_lock:
            await _flush()

    async def _flush() -> None:
        now = time.time()
        if state.restoring:
            state.freeze_idle_clocks(now)
            return  # never close a window before the partition's checkpoint is applied
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
        consumer = cast(BatchConsumer, app.consumer)
        for tp, first, last in state.ledger.ackable(state.monitor.closed_until):
            consumer.ack_range(tp, first, last)
        metrics.sink_buffered.set(getattr(state.sink, "buffered", 0))
        metrics.pending_acks.set(state.pending_count())
        metrics.open_windows.set(state.monitor.open_windows())
        metrics.late.set(state.monitor.late_events())
        metrics.pending_labels.set(state.monitor.pending_labels())
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
            items, state.dlq_out = state.dlq_out, []
            now = time.time()
            try:
                futs = [await dlq.send(key=r.model.encode() if r.model else None,
                                       value=orjson.dumps(r.to_dlq(now))) for r, _, _ in items]
                for f in futs:
                    await f
            except BaseException:
                state.dlq_out[:0] = items  # not delivered (or not known to be): sent again next flush
                raise
            metrics.dlq.inc(len(items))
            for _, chunk, index in items:
                AckLedger.mark_done(chunk, index)
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
        gone = {tp.partition for tp in revoked if tp.topic in input_topics}
        if not gone:
            return
        # write the points of windows closed so far and their checkpoint; the acks themselves are void
        # (faust forgets a revoked partition's acks), so the next owner replays from the committed offset
        await flush()
        inputs_gone = [tp for tp in state.ledger.queues if tp.partition in gone]
        state.ledger.drop(inputs_gone)
        state.dlq_out = [item for item in state.dlq_out if item[0].partition not in gone]
        for key in [k for k in state.read_offset if k[1] in gone]:
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
