"""The worker's I/O cycle — ingest, flush, deliver, ack, rebalance — as an object that works through ports.

Both stages of the pipeline live here for the partitions this worker owns (docs/streaming.md):

* **Stage 1**, one :class:`~monitor.source.SourceAggregator` per owned input partition: fetched records are
  decoded and observed; a flush closes partial windows and emits them, with the source's watermarks, for
  the ``partials`` topic.
* **Stage 2**, one :class:`~monitor.owner.ModelOwner` for the ``partials`` partitions this worker owns: it
  merges partials and finalizes windows into points, alerts and retraining requests.

The ports are plain protocols, so the invariant below is unit-tested with fakes (tests/adapters/test_cycle.py)
as well as with real servers: a :class:`~monitor.ports.MetricSink`, an :class:`~monitor.ports.AlertNotifier`,
a :class:`Bus` (send a record; the returned awaitable completes once the broker has it) and an :class:`Acker`
(offset ranges faust may commit).

**Invariant: never ack past what is not yet delivered.** An input record is acked only when every window
it falls in has closed at its source *and* the partials, dead letters and checkpoint that close it were
delivered; a partial record only when its window was finalized, its points flushed, its owner's checkpoint
delivered, and ``label_grace`` has passed (a new owner re-reads the partials of every window that late
labels may still change). A flush that fails at any step acks nothing and is retried whole.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
import numpy as np
import orjson
from faust.types import TP

from monitor.adapters.batching import UNATTRIBUTED, AckLedger, RecordBatch
from monitor.adapters.health import WorkerMetrics
from monitor.adapters.influx import BufferFull, SinkUnavailable
from monitor.config import MonitorSettings
from monitor.core.reference import ReferenceProfile
from monitor.events import DecodeOptions
from monitor.fastdecode import decode_batch
from monitor.owner import ModelOwner, ReferenceBook
from monitor.ports import AlertNotifier, MetricSink
from monitor.source import OBSERVED, SourceAggregator
from monitor.types import MetricPoint, Rejection, RetrainRequest
from monitor.wire import PartialRecord, decode, encode

log = logging.getLogger("driftline.worker")
_json = msgspec.json.Encoder()
#: ledger key of records that are done as soon as they are processed (watermarks, undecodable partials)
_DONE = "\x00done"
#: a source's watermark is re-sent at least this often even when it did not change (heartbeat)
HEARTBEAT_S = 5.0
#: a delivery the broker has not confirmed for this long is reported (log, driftline_broker_up 0)
DELIVERY_REPORT_S = 3.0


class Bus(Protocol):
    """Publishes records; ``send`` returns once the record is handed over, its result once it is durable."""

    async def send(self, topic: str, key: bytes | None, value: bytes,
                   partition: int | None = None) -> Awaitable[Any]: ...


class Acker(Protocol):
    """Marks input offsets as processed; the consumer commits them."""

    def ack_range(self, tp: TP, first: int, last: int) -> int: ...


class Positions(Protocol):
    """Where the consumer stands: the partition's high-water mark from the last fetch (None: unknown)."""

    def highwater(self, tp: TP) -> int | None: ...

    def committed(self, tp: TP) -> int | None: ...


@dataclass
class _Out:
    """Records waiting to be delivered (kept across failed flushes: never dropped)."""

    partials: list[tuple[bytes, bytes, int | None]] = field(default_factory=list)
    retrain: list[RetrainRequest] = field(default_factory=list)
    references: list[ReferenceProfile] = field(default_factory=list)
    #: dead letters: (record, input tp, offset) — the offset is marked done once it is delivered
    dlq: list[tuple[Rejection, TP, int]] = field(default_factory=list)
    points: list[MetricPoint] = field(default_factory=list)
    checkpoints: dict[tuple[int, str], bytes] = field(default_factory=dict)
    #: closed baseline blocks (key, value, checkpoint partition): sent before the checkpoints
    baselines: list[tuple[bytes, bytes, int | None]] = field(default_factory=list)


class WorkerCycle:
    """Both stages for the partitions a worker owns, and the cycle that delivers their output safely."""

    def __init__(self, settings: MonitorSettings, book: ReferenceBook, sources: int, sink: MetricSink,
                 notifier: AlertNotifier | None, bus: Bus, acker: Acker, metrics: WorkerMetrics | None = None,
                 clock: Callable[[], float] = time.time, positions: Positions | None = None) -> None:
        self.settings = settings
        self.book = book
        self.n_sources = sources
        self.sink = sink
        self.notifier = notifier
        self.bus = bus
        self.acker = acker
        self.metrics = metrics or WorkerMetrics()
        self.clock = clock
        self.positions = positions
        self.inputs = frozenset(t for t in (settings.predictions_topic, settings.labels_topic) if t)
        self.declared = frozenset(settings.models) if settings.models else None
        #: what decode accepts and how it reads producers' events, built once from the settings
        self.decode_options = DecodeOptions.from_settings(settings)
        self.sources: dict[int, SourceAggregator] = {}
        self.ledgers: dict[int, AckLedger] = {}
        self.read: dict[TP, int] = {}
        self.released: list[tuple[TP, int, int, str, float]] = []  # (tp, offset, source, model, last end)
        self.owner = ModelOwner(settings, book, sources=range(sources), publish_reference=self._publish_reference)
        self.partials_ledger = AckLedger()
        self.owned_partials: set[int] = set()
        self.out = _Out()
        self.last_marks: dict[int, tuple[Any, float]] = {}
        self.checkpointed: dict[tuple[int, str], bytes] = {}
        self.paused = False
        self.restoring = 0
        self.closed_pending = 0
        self.windows_closed = 0
        self.events_since_flush = 0
        self.last_flush_wall = clock()
        self.flush_lock = asyncio.Lock()

    # -- ingest ----------------------------------------------------------------------------------------
    def ingest(self, batch: RecordBatch, start_hints: dict[TP, int | None] | None = None) -> None:
        """Decode and observe one fetched batch (per partition, records in offset order)."""
        now = self.clock()
        for tp, records in batch:
            if tp.topic in self.inputs:
                self._ingest_input(tp, records, now, (start_hints or {}).get(tp))
            elif tp.topic == self.settings.partials_topic:
                self._ingest_partials(tp, records, (start_hints or {}).get(tp))
        self.events_since_flush += sum(len(r) for tp, r in batch if tp.topic in self.inputs)

    def _source(self, p: int) -> SourceAggregator:
        src = self.sources.get(p)
        if src is None:  # a partition faust assigned without telling us first (should not happen)
            src = self.sources[p] = SourceAggregator(p, self.settings, self.book.get, now=self.clock())
            self.ledgers[p] = AckLedger()
        return src

    def _ingest_input(self, tp: TP, records: Sequence[Any], now: float, hint: int | None) -> None:
        src = self._source(tp.partition)
        ledger = self.ledgers[tp.partition]
        n = len(records)
        offset_list = [r.offset for r in records]
        offsets = np.array(offset_list, dtype=np.int64)
        options = self.decode_options
        stamps = [r.timestamp for r in records] if options.timestamp_source == "record" else None
        decoded = decode_batch([r.value or b"" for r in records], binner_of=src.binner_for, options=options, now=now,
                               record_timestamps_ms=stamps, topic=tp.topic, partition=tp.partition,
                               offsets=offset_list)
        status = src.observe_rows(decoded.groups, decoded.labels, n, now, lambda p: (tp, offset_list[p]), tp.topic,
                                  offsets)
        # the ledger: per record its model and the end of the last window it falls in; held or refused ones,
        # and rejections, are done once they are released or dead-lettered
        ids = np.full(n, UNATTRIBUTED, dtype=np.int64)
        ends = np.full(n, math.inf)
        step, size = src.spec.step, src.spec.size
        for model, (rows, pos) in decoded.groups.items():
            ok = status[pos] == OBSERVED
            ids[pos[ok]] = ledger.model_id(model)
            ends[pos[ok]] = np.floor(rows.ts[ok] / step) * step + size  # WindowSpec.last_end, vectorised
        last_end = src.spec.last_end
        for p, lab in decoded.labels:
            if status[p] == OBSERVED:
                ids[p] = ledger.model_id(lab.model)
                ends[p] = last_end(lab.timestamp)
        if decoded.rejected:
            rejected = [r for _, r in decoded.rejected]
            src.reject(rejected, now)
            self.metrics.invalid.inc(len(rejected))
            self.out.dlq.extend((r, tp, r.offset) for r in rejected)
        ledger.add(tp, offsets, ids, ends, hint)
        self._collect_dead(src)
        self.metrics.events.labels(tp.topic).inc(n)
        self.read[tp] = offset_list[-1]

    def _collect_dead(self, src: SourceAggregator) -> None:
        for origin, ev, reason in src.dead:
            tp, offset = origin
            self.out.dlq.append((Rejection(reason, _json.encode(ev), topic=tp.topic, partition=tp.partition,
                                           offset=offset, model=ev.model, timestamp=ev.timestamp), tp, offset))
            self.metrics.invalid.inc()
        src.dead.clear()
        for origin, model, end in src.released:
            tp, offset = origin
            self.released.append((tp, offset, src.source, model, end))
        src.released.clear()

    def _ingest_partials(self, tp: TP, records: Sequence[Any], hint: int | None) -> None:
        decoded = []
        ids, ends = [], []
        ledger = self.partials_ledger
        grace = self.settings.label_grace_s
        for record in records:
            try:
                r = decode(record.value or b"")
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.warning("event=partial_undecodable partition=%d offset=%d error=%r", tp.partition, record.offset,
                            str(exc)[:200])
                ids.append(ledger.model_id(_DONE))
                ends.append(-math.inf)
                continue
            decoded.append(r)
            if isinstance(r, PartialRecord):
                ids.append(ledger.model_id(r.model))
                ends.append(r.start + r.size + grace)
                self.metrics.partials_received.inc()
            else:
                ids.append(ledger.model_id(_DONE))
                ends.append(-math.inf)
        self.owner.receive(decoded, tp.partition)
        ledger.add(tp, [r.offset for r in records], ids, ends, hint)
        self.read[tp] = records[-1].offset

    # -- flush ------------------------------------------------------------------------------------------
    async def flush(self) -> None:
        async with self.flush_lock:
            await self._flush()

    async def _flush(self) -> None:
        now = self.clock()
        if self.restoring:
            self.freeze_idle_clocks(now)
            return  # never close a window before the partitions' checkpoints are applied
        if self.paused:
            self.freeze_idle_clocks(now)  # not consuming: do not extrapolate watermarks of waiting events
        self._stage1(now)
        em = self.owner.advance()
        self.closed_pending += len(em.closed)
        self.out.points.extend(em.points)
        self.out.points.extend(self._worker_points(now))
        self.out.retrain.extend(em.retrain)
        for model, _, _ in em.closed:
            self._checkpoint_owner(model)
        if em.alerts and self.notifier is not None:
            # the dispatcher queues and retries on its own; alerts are derived state, not acked input
            self.notifier.notify(em.alerts)
            for a in em.alerts:
                self.metrics.alerts.labels(a.status).inc()
        if not await self._flush_sink():
            return
        try:
            await self._deliver()
        except Exception as exc:  # broker trouble: nothing more is acked; the next flush retries the rest
            log.warning("event=publish_failed error=%r", f"{type(exc).__name__}: {exc}"[:300])
            return
        self._ack()
        self._gauges()
        self.last_flush_wall = self.clock()
        self.events_since_flush = 0

    def _caught_up(self, p: int) -> bool:
        """Every input partition ``p`` read to its high-water mark (an empty partition: hw 0); False while a
        high-water mark is unknown (no fetch answered yet)."""
        if self.positions is None:
            return False
        for topic in self.inputs:
            tp = TP(topic, p)
            hw = self.positions.highwater(tp)
            if hw is None:
                return False
            at = self.read[tp] + 1 if tp in self.read else (self.positions.committed(tp) or 0)
            if at < hw:
                return False
        return True

    def _stage1(self, now: float) -> None:
        for p, src in self.sources.items():
            caught_up = self._caught_up(p) if self.positions is not None else True
            if caught_up and not src.empty and src.top.value is None and src.overall_closed is None:
                src.drained()
            if not caught_up:
                # a partition with records still to read is not idle, however long it waits for its turn:
                # extrapolating its watermark by wall time would close windows its records still fill
                src.freeze_idle_clocks(now)
            records = src.advance(now)
            closed_any = False
            for r in records:
                self.out.partials.append((r.model.encode(), encode(r), None))
                closed_any |= r.state is not None
            self.metrics.partials_sent.inc(len(records))
            self._collect_dead(src)
            mark = src.watermark_record(now)
            sig = (mark.overall, mark.idle, tuple(sorted(mark.models.items())))
            last = self.last_marks.get(p)
            if records or last is None or last[0] != sig or now - last[1] >= HEARTBEAT_S:
                value = encode(mark)
                key = f"source:{p}".encode()
                self.out.partials.extend((key, value, q) for q in range(self.n_sources))
                self.last_marks[p] = (sig, now)
            if closed_any:
                read = {tp.topic: off + 1 for tp, off in self.read.items() if tp.partition == p and tp.topic in self.inputs}
                self.out.checkpoints[(p, f"source:{p}")] = orjson.dumps(src.checkpoint(read))

    def _checkpoint_owner(self, model: str) -> None:
        home = self.owner.home.get(model)
        if home is not None:
            self.out.baselines.extend((key.encode(), orjson.dumps(value), home)
                                      for key, value in self.owner.baseline_records(model))
            cp = {**self.owner.checkpoint(model), "partition": home}
            self.out.checkpoints[(home, f"owner:{model}")] = orjson.dumps(cp)

    def _publish_reference(self, profile: ReferenceProfile) -> None:
        self.out.references.append(profile)

    async def _flush_sink(self) -> bool:
        metrics = self.metrics
        try:
            if self.out.points:
                self.sink.add(self.out.points)
                metrics.points.inc(len(self.out.points))
                self.out.points = []
            # a blocking flush (retries with backoff while InfluxDB is down) must not stall the event loop:
            # faust's heartbeats and the consumer keep running, and the group does not rebalance
            await asyncio.get_running_loop().run_in_executor(None, self.sink.flush)
        except (SinkUnavailable, BufferFull) as exc:
            metrics.sink_errors.inc()
            metrics.sink_up.set(0)
            self.paused = bool(getattr(self.sink, "backpressure", True)) or isinstance(exc, BufferFull)
            metrics.paused.set(1 if self.paused else 0)
            buffered = getattr(self.sink, "buffered", 0) + len(self.out.points)
            metrics.sink_buffered.set(buffered)
            log.warning("event=sink_unavailable paused=%s buffered=%d error=%r", self.paused, buffered, str(exc)[:300])
            return False
        metrics.sink_up.set(1)
        if self.paused:
            log.info("event=consumption_resumed")
            self.freeze_idle_clocks(self.clock())
        self.paused = False
        metrics.paused.set(0)
        metrics.windows_closed.inc(self.closed_pending)  # including windows closed during an outage
        self.windows_closed += self.closed_pending
        self.closed_pending = 0
        return True

    async def _deliver(self) -> None:
        """Partials and watermarks, retraining CloudEvents, warm-up references, dead letters, then
        checkpoints — each awaited until the broker has it. What was not delivered is sent again."""
        s = self.settings
        await self._send_all(s.partials_topic, self.out.partials)
        self.out.partials = []
        while self.out.retrain:
            req = self.out.retrain[0]
            fut = await self.bus.send(s.retraining_topic, req.model.encode(), orjson.dumps(req.to_cloudevent(s.source)))
            await fut
            self.out.retrain.pop(0)
            self.metrics.retraining.inc()
            log.info("event=retraining_requested model=%s reason=%s id=%s", req.model, req.reason, req.event_id)
        refs = [(p.model.encode(), orjson.dumps(p.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY), None)
                for p in self.out.references]
        await self._send_all(s.references_topic, refs)
        self.out.references = []
        if self.out.dlq:
            now = self.clock()
            items = self.out.dlq
            await self._send_all(s.dlq_topic, [(r.model.encode() if r.model else None, orjson.dumps(r.to_dlq(now)), None)
                                               for r, _, _ in items])
            self.out.dlq = []
            self.metrics.dlq.inc(len(items))
            for _, tp, offset in items:
                ledger = self.ledgers.get(tp.partition)
                if ledger is not None:
                    ledger.mark_done_at(tp, offset)
        await self._send_all(s.checkpoint_topic, self.out.baselines)  # before the checkpoints naming later blocks
        self.out.baselines = []
        changed = [(part, key, v) for (part, key), v in self.out.checkpoints.items()
                   if self.checkpointed.get((part, key)) != v]
        await self._send_all(s.checkpoint_topic, [(key.encode(), v, part) for part, key, v in changed])
        for part, key, v in changed:
            self.checkpointed[(part, key)] = v
        self.out.checkpoints = {}

    async def _send_all(self, topic: str, items: Sequence[tuple[bytes | None, bytes, int | None]]) -> None:
        futs = [await self.bus.send(topic, key, value, part) for key, value, part in items]
        for f in futs:
            await self._delivered(topic, f)

    async def _delivered(self, topic: str, fut: Awaitable[Any]) -> None:
        """Wait for the broker to confirm a record; while it does not, say so every DELIVERY_REPORT_S (the
        producer keeps retrying; nothing is acked meanwhile)."""
        waited = 0.0
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(fut), timeout=DELIVERY_REPORT_S)
                break
            except TimeoutError:
                waited += DELIVERY_REPORT_S
                self.metrics.broker_up.set(0)
                log.warning("event=delivery_waiting topic=%s waited_s=%.0f (the broker does not confirm; nothing is "
                            "acked until it does)", topic, waited)
        if waited:
            log.info("event=delivery_resumed topic=%s waited_s=%.0f", topic, waited)
        self.metrics.broker_up.set(1)

    def _ack(self) -> None:
        for p, ledger in self.ledgers.items():
            src = self.sources.get(p)
            if src is None:
                continue
            for tp, first, last in ledger.ackable(src.closed_until):
                self.acker.ack_range(tp, first, last)
        if self.released:
            still = []
            for tp, offset, p, model, end in self.released:
                src = self.sources.get(p)
                cu = src.closed_until(model) if src is not None else None
                if src is None:
                    continue
                if cu is not None and end <= cu:
                    self.ledgers[p].mark_done_at(tp, offset)
                else:
                    still.append((tp, offset, p, model, end))
            self.released = still
        owner = self.owner

        def expired(model: str) -> float | None:
            return math.inf if model == _DONE else owner.closed_until(model)

        for tp, first, last in self.partials_ledger.ackable(expired):
            self.acker.ack_range(tp, first, last)

    # -- rebalance ---------------------------------------------------------------------------------------
    def assign(self, partitions: set[int], partials: set[int], epoch: int, checkpoints: dict[str, Any]) -> None:
        """New partitions: a source per input partition (restored from its checkpoint), and the owners'
        state of the models homed on the new partials partitions."""
        now = self.clock()
        for p in partitions:
            if p not in self.sources:
                src = SourceAggregator(p, self.settings, self.book.get, epoch=epoch, now=now)
                cp = checkpoints.get(f"source:{p}")
                if isinstance(cp, dict):
                    _restore(src.restore, cp, f"source:{p}")
                self.sources[p] = src
                self.ledgers[p] = AckLedger()
        for key, cp in checkpoints.items():
            if key.startswith("owner:") and isinstance(cp, dict) and _restore(self.owner.restore, cp, key):
                home = cp.get("partition")
                if isinstance(home, int):
                    self.owner.home.setdefault(key.removeprefix("owner:"), home)
            elif key.startswith("baseline:") and isinstance(cp, dict):
                _restore(self.owner.restore_baseline, cp, key)
        self.owned_partials |= partials

    def revoke(self, partitions: set[int], partials: set[int]) -> None:
        """Forget revoked partitions: their next owners re-read them from the committed offsets."""
        for p in partitions:
            self.sources.pop(p, None)
            self.ledgers.pop(p, None)
            self.last_marks.pop(p, None)
        self.released = [r for r in self.released if r[2] not in partitions]
        self.out.dlq = [d for d in self.out.dlq if d[1].partition not in partitions]
        self.read = {tp: o for tp, o in self.read.items()
                     if not ((tp.topic in self.inputs and tp.partition in partitions)
                             or (tp.topic == self.settings.partials_topic and tp.partition in partials))}
        gone = [tp for tp in self.partials_ledger.queues if tp.partition in partials]
        self.partials_ledger.drop(gone)
        for q in partials:
            self.owner.forget_partition(q)
        self.owned_partials -= partials

    def freeze_idle_clocks(self, now: float) -> None:
        for src in self.sources.values():
            src.freeze_idle_clocks(now)

    # -- observability ------------------------------------------------------------------------------------
    def pending_count(self) -> int:
        return sum(ledger.pending() for ledger in self.ledgers.values())

    def _gauges(self) -> None:
        m = self.metrics
        m.sink_buffered.set(getattr(self.sink, "buffered", 0))
        m.pending_acks.set(self.pending_count())
        m.open_windows.set(sum(s.open_windows() for s in self.sources.values()))
        m.late.set(sum(s.late_events() for s in self.sources.values()))
        m.pending_labels.set(sum(s.pending_labels() for s in self.sources.values()))
        m.held_bytes.set(sum(s.held_bytes() for s in self.sources.values()))
        m.unmatched_labels.set(sum(s.unmatched_labels for s in self.sources.values()))
        m.pending_windows.set(self.owner.pending_windows())
        m.late_partials.set(self.owner.late_partials())
        m.sources.set(len(self.sources))

    def _worker_points(self, now: float) -> list[MetricPoint]:
        elapsed = max(now - self.last_flush_wall, 1e-6)
        wms = [w for s in self.sources.values() if (w := s.overall_watermark(now)) is not None]
        lag = max(0.0, now - min(wms)) if wms else 0.0
        self.metrics.window_lag.set(lag)
        fields = (("events", self.events_since_flush), ("events_per_s", self.events_since_flush / elapsed),
                  ("window_lag_s", float(lag)), ("sink_queue", int(getattr(self.sink, "buffered", 0))),
                  ("dlq", len(self.out.dlq)), ("windows_closed", self.windows_closed),
                  ("sources", len(self.sources)), ("pending_windows", self.owner.pending_windows()))
        return [MetricPoint("driftline_worker", (("worker", self.settings.worker_name),), fields, int(now * 1e9))]


def _restore(apply: Callable[[dict[str, Any]], None], cp: dict[str, Any], key: str) -> bool:
    """Apply a checkpoint; one that cannot be read is skipped (its partition is then re-read from the
    committed offsets as if new) instead of stopping the worker."""
    try:
        apply(cp)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        log.warning("event=checkpoint_unreadable key=%s error=%r", key, f"{type(exc).__name__}: {exc}"[:300])
        return False
    return True
