"""``monitor run``: the faust-streaming worker around the two-stage pipeline.

Design (docs/streaming.md has the long form):

* faust's consumer drains ``predictions``, ``labels`` and ``monitor.partials`` in batches
  (:mod:`monitor.adapters.batching`); all three (and ``monitor.checkpoints``) have the same partition count,
  so faust's assignor gives partition *p* of each to the same worker.
* **Stage 1**: every fetched input batch is decoded and observed by the source of its partition; a timer
  (``flush_interval``) closes partial windows and publishes them, with the sources' watermarks, to
  ``monitor.partials`` (key = model, so each model has one owner).
* **Stage 2**: records of the ``monitor.partials`` partitions this worker owns go to its
  :class:`~monitor.owner.ModelOwner`, which finalizes a window once every source passed its end: points to
  the sink, alerts to the notifiers, retraining CloudEvents to Kafka.
* :class:`~monitor.adapters.cycle.WorkerCycle` delivers everything and acks only what is delivered:
  **at-least-once**, with exact windows (idempotent points, partials that replace by generation, checkpoints
  for the next owner of a partition).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable
from typing import Any, cast

import faust
import orjson
from faust.transport.drivers.aiokafka import Transport as AIOKafkaTransport
from faust.types import TP

from monitor.adapters.batching import BatchConsumer, RecordBatch
from monitor.adapters.cycle import WorkerCycle
from monitor.adapters.health import WorkerMetrics
from monitor.config import MonitorSettings, parse_duration, reveal
from monitor.core.reference import ReferenceProfile
from monitor.owner import ReferenceBook
from monitor.ports import AlertNotifier, MetricSink

log = logging.getLogger("driftline.worker")


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
        return faust.SASLCredentials(username=settings.sasl_username or "", password=reveal(settings.sasl_password) or "",
                                     mechanism=settings.sasl_mechanism or "PLAIN", ssl_context=ctx)
    return faust.SSLCredentials(ctx)


class _FaustBus:
    """:class:`~monitor.adapters.cycle.Bus` over faust's producer."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.topics: dict[str, Any] = {}

    async def send(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None) -> Awaitable[Any]:
        t = self.topics.get(topic)
        if t is None:
            t = self.topics[topic] = self.app.topic(topic, value_type=bytes, key_type=bytes)
        fut: Awaitable[Any] = await t.send(key=key, value=value, partition=partition)
        return fut


class _FaustAcker:
    """:class:`~monitor.adapters.cycle.Acker` and :class:`~monitor.adapters.cycle.Positions` over faust's
    consumer."""

    def __init__(self, app: faust.App) -> None:
        self.app = app

    def ack_range(self, tp: TP, first: int, last: int) -> int:
        return cast(BatchConsumer, self.app.consumer).ack_range(tp, first, last)

    def highwater(self, tp: TP) -> int | None:
        try:
            hw = self.app.consumer.highwater(tp)
        except Exception:  # not assigned, or no fetch yet
            return None
        return int(hw) if hw is not None and hw >= 0 else None

    def committed(self, tp: TP) -> int | None:
        value = cast(BatchConsumer, self.app.consumer)._committed_offset.get(tp)
        return int(value) if value is not None else None


def build_app(settings: MonitorSettings, references: dict[str, ReferenceProfile], sink: MetricSink,
              notifier: AlertNotifier | None = None, metrics: WorkerMetrics | None = None,
              sources: int | None = None, book: ReferenceBook | None = None) -> faust.App:
    """The faust app: topics, the batched ingest, the flush timer, partition callbacks and /metrics.

    ``sources``: the number of input partitions (every window waits for all of them); default
    ``settings.partitions``. ``book``: the shared reference book (a :class:`ReferenceWatcher` may feed it)."""
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
        consumer_max_fetch_size=4 * 1024 * 1024,
        producer_acks=-1,
        producer_max_request_size=16 * 1024 * 1024,
        stream_wait_empty=False,  # unacked events of open windows are replayed by the next owner
    )
    book = book or ReferenceBook(references.values())
    acker = _FaustAcker(app)
    cycle = WorkerCycle(settings, book, sources or settings.partitions, sink, notifier, _FaustBus(app), acker,
                        metrics, positions=acker)
    app.driftline_cycle = cycle  # type: ignore[attr-defined]
    consumed = [t for t in (settings.predictions_topic, settings.labels_topic, settings.partials_topic) if t]
    subscribed = app.topic(*consumed, value_type=bytes, key_type=bytes, partitions=settings.partitions)
    app.topics.add(subscribed)  # records arrive in batches through ingest(), not through an agent

    async def ingest(batch: RecordBatch, generation: int) -> None:
        """Called by the consumer's drain loop with every fetched batch of the consumed topics."""
        while cycle.restoring:  # never observe before the partitions' checkpoints are applied
            await asyncio.sleep(0.05)
        if app.consumer_generation_id != generation:
            return  # a rebalance happened meanwhile: faust seeks to the committed offsets and re-reads
        consumer = cast(BatchConsumer, app.consumer)
        hints = {tp: consumer._committed_offset[tp] for tp, _ in batch if tp not in cycle.read}
        cycle.ingest(batch, hints)
        while cycle.paused:
            await asyncio.sleep(0.2)  # backpressure: stop pulling until the sink recovers

    app.driftline_ingest = ingest  # type: ignore[attr-defined]
    app.driftline_topics = frozenset(consumed)  # type: ignore[attr-defined]

    @app.timer(interval=settings.flush_interval_s)  # type: ignore[untyped-decorator]
    async def flush_timer() -> None:
        await cycle.flush()
        _consumer_lag(app, cycle)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        inputs = {tp.partition for tp in assigned if tp.topic == settings.predictions_topic}
        partials = {tp.partition for tp in assigned if tp.topic == settings.partials_topic}
        if not (inputs or partials):
            return
        cycle.restoring += 1
        try:
            loop = asyncio.get_running_loop()
            checkpoints = await loop.run_in_executor(None, read_checkpoints, settings, inputs | partials)
            cycle.assign(inputs, partials, epoch=int(app.consumer_generation_id or 0), checkpoints=checkpoints)
        finally:
            cycle.restoring -= 1
        log.info("event=partitions_assigned inputs=%s partials=%s checkpoints=%d", sorted(inputs), sorted(partials),
                 len(checkpoints))

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        inputs = {tp.partition for tp in revoked if tp.topic == settings.predictions_topic}
        partials = {tp.partition for tp in revoked if tp.topic == settings.partials_topic}
        if not (inputs or partials):
            return
        # deliver what is closed so far; the acks themselves are void (faust forgets a revoked partition's
        # acks), so the next owner replays from the committed offset
        await cycle.flush()
        cycle.revoke(inputs, partials)
        log.info("event=partitions_revoked inputs=%s partials=%s", sorted(inputs), sorted(partials))

    @app.page("/metrics")
    async def prometheus(web: Any, request: Any) -> Any:
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"ok": True, "sink_up": not cycle.paused, "paused": cycle.paused,
                         "sources": sorted(cycle.sources), "partials": sorted(cycle.owned_partials),
                         "pending_windows": cycle.owner.pending_windows(), "pending_events": cycle.pending_count()})

    return app


def read_checkpoints(settings: MonitorSettings, partitions: set[int], idle_s: float = 1.0) -> dict[str, Any]:
    """The newest checkpoint per key (``source:<p>``, ``owner:<model>``, ``baseline:<slot>:<model>``) in the
    given partitions of the checkpoint topic (kafka-python, blocking)."""
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
        out: dict[str, Any] = {}
        for r in _drain(consumer, idle_s):
            try:
                key = r.key.decode()
                value = orjson.loads(r.value)
            except (ValueError, AttributeError):
                continue
            if key.startswith(("source:", "owner:", "baseline:")) and isinstance(value, dict):
                out[key] = value  # records of a key are in one partition, in order: the last one wins
        return out
    finally:
        consumer.close()


def _drain(consumer: Any, idle_s: float, deadline_s: float = 30.0) -> list[Any]:
    out: list[Any] = []
    quiet_since = time.monotonic()
    deadline = time.monotonic() + deadline_s
    while time.monotonic() - quiet_since < idle_s and time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=200)
        if batch:
            quiet_since = time.monotonic()
        for records in batch.values():
            out.extend(records)
    return out


class ReferenceWatcher(threading.Thread):
    """Reads warm-up profiles that models' owners publish to the references topic into the shared book, so
    every source bins with them. Configured profiles win over published ones."""

    def __init__(self, settings: MonitorSettings, book: ReferenceBook, configured: set[str]) -> None:
        super().__init__(daemon=True, name="driftline-references")
        self.settings, self.book, self.configured = settings, book, configured
        self._stop = threading.Event()
        self.consumer: Any = None

    def catch_up(self) -> int:
        """Read what is there now (blocking); returns how many profiles were read."""
        from kafka import KafkaConsumer, TopicPartition

        s = self.settings
        self.consumer = KafkaConsumer(bootstrap_servers=s.bootstrap_servers, enable_auto_commit=False, group_id=None,
                                      **s.kafka_python_security())
        parts = self.consumer.partitions_for_topic(s.references_topic) or set()
        tps = [TopicPartition(s.references_topic, p) for p in parts]
        if not tps:
            return 0
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        return self._apply(_drain(self.consumer, 1.0))

    def _apply(self, records: list[Any]) -> int:
        n = 0
        for r in records:
            try:
                profile = ReferenceProfile.from_dict(orjson.loads(r.value))
            except ValueError as exc:
                log.warning("event=reference_unreadable offset=%s error=%r", r.offset, str(exc)[:200])
                continue
            if profile.model not in self.configured:
                self.book.add(profile)
                n += 1
        return n

    def run(self) -> None:
        while not self._stop.is_set():
            if self.consumer is None or not self.consumer.assignment():
                try:
                    self.catch_up()
                except Exception as exc:  # broker away: try again
                    log.warning("event=reference_watch_failed error=%r", str(exc)[:200])
                self._stop.wait(2.0)
                continue
            try:
                batch = self.consumer.poll(timeout_ms=500)
            except Exception as exc:
                log.warning("event=reference_watch_failed error=%r", str(exc)[:200])
                self._stop.wait(2.0)
                continue
            for records in batch.values():
                self._apply(records)

    def stop(self) -> None:
        self._stop.set()


def _consumer_lag(app: faust.App, cycle: WorkerCycle) -> None:
    """Per-partition lag from the high-water mark of the last fetch (approximate on brokers whose end offsets
    are wrong when a batch holds several records, such as tansu)."""
    for tp, offset in cycle.read.items():
        try:
            hw = app.consumer.highwater(tp)
        except Exception:  # not assigned any more, or no fetch yet
            continue
        if hw is not None and hw >= 0:
            cycle.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, hw - offset - 1))
