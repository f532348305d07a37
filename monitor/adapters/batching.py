"""Batched consumption under faust's lifecycle, and offset bookkeeping for acking in offset order.

faust hands records to agents one at a time: for every record it builds a ``Message``, races the
callback against the flow-control event (two tasks per record), builds an ``Event`` and passes it
through a channel queue into the stream iterator. Measured on the tansu broker that costs about
100 µs per record — ten times what Driftline's whole pipeline needs (docs/streaming.md, "Throughput").

:class:`BatchConsumer` keeps everything else of faust (group membership and rebalancing in its consumer
thread, assignment callbacks, the commit loop, seeking to committed offsets, flow control, web, timers)
and replaces only the per-record drain loop: each fetched batch of the input topics goes to one
``batch_handler(batch, generation)`` call as aiokafka ``ConsumerRecord`` lists; records of any other
subscribed topic still take faust's per-record path. Acks are offset ranges (:meth:`BatchConsumer.ack_range`)
fed into faust's own ack bookkeeping, so faust's commit loop commits them.

:class:`AckLedger` remembers, per input partition and fetched batch, what decides when its records may
be acked: per model the records whose window end is a new maximum (a few per window boundary) and the
rejections. The payload itself is not kept (a new owner re-reads it from Kafka), so the ledger does not
grow with the events per window. :meth:`AckLedger.ackable` returns, per partition, the longest prefix
whose every window is closed and flushed, so the committed offset never passes a record of an open
window.

These classes rely on faust-streaming internals (``_wait_next_records``, ``_read_offset``, ``_acked``,
``_acked_index``, ``_committed_offset``); pyproject.toml pins the faust-streaming versions they were
verified with, and the integration tests exercise them against a real broker.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, cast

import numpy as np
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaConsumer
from faust.types import TP

#: a batch as handed to the handler: per partition, its records in offset order
RecordBatch = list[tuple[TP, list[Any]]]
BatchHandler = Callable[[RecordBatch, int], Awaitable[None]]

#: model id of a record that is not attributed to a model (a rejection): done only when marked done
UNATTRIBUTED = -1


class _ConsumerThread(AIOKafkaConsumerThread):
    """faust's consumer thread with a shorter fetch long-poll (see :attr:`BatchConsumer.fetch_max_wait_ms`)."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = cast(BatchConsumer, self.consumer).fetch_max_wait_ms
        return consumer


class BatchConsumer(AIOKafkaConsumer):
    """faust's aiokafka consumer with a batched drain loop for ``batch_topics``."""

    batch_handler: BatchHandler | None = None
    batch_topics: frozenset[str] = frozenset()
    #: faust hard-codes a 1.5 s fetch long-poll. aiokafka keeps one fetch in flight per broker and leaves
    #: partitions with buffered records out of it, so while caught-up partitions long-poll, a partition
    #: with a backlog waits: with models unevenly spread over partitions that capped a worker at ~10k
    #: events/s. 100 ms keeps the backlog flowing at the cost of more idle fetches.
    fetch_max_wait_ms: int = 100

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: per partition, the offset to commit next (every offset below it is processed)
        self._ack_upto: dict[TP, int] = {}

    def _new_consumer_thread(self) -> Any:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:  # the faust Fetcher service runs this
        handler = self.batch_handler
        if handler is None:
            await super()._drain_messages(fetcher)
            return
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        read_offset = self._read_offset
        topics = self.batch_topics
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records, active = await self._wait_next_records(1.0)
                # as in faust's getmany: the generation the records belong to is the one current when they
                # arrive (the wait above includes waiting for the flow to resume after a rebalance)
                generation = self.app.consumer_generation_id
                await asyncio.sleep(0)
                if not records or self.should_stop:
                    self.diag.unset_flag(CONSUMER_FETCHING)
                    continue
                if not self.flow_active:
                    await self.perform_seek()  # what faust's getmany does with records fetched while paused
                    continue
                if self.app.consumer_generation_id != generation:
                    continue  # a rebalance began meanwhile: faust seeks to the committed offsets and re-reads
                batch: RecordBatch = []
                others: RecordBatch = []
                for tp, recs in records.items():
                    if not recs or (active is not None and tp not in active
                                    and tp not in self._buffered_partitions):
                        continue
                    r_offset = read_offset[tp]
                    if r_offset is not None and recs[0].offset < r_offset:
                        recs = [r for r in recs if r.offset >= r_offset]  # stale records from before a seek
                        if not recs:
                            continue
                    read_offset[tp] = recs[-1].offset
                    (batch if tp.topic in topics else others).append((TP(tp.topic, tp.partition), recs))
                if batch:
                    await handler(batch, generation)
                for tp, recs in others:
                    for record in recs:
                        await callback(self._to_message(tp, record))
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise

    def ack_range(self, tp: TP, first: int, last: int) -> int:
        """Mark offsets up to ``last`` (inclusive) of ``tp`` as processed; faust's commit loop commits
        ``last + 1``. Offsets are acked only as a prefix (the ledger guarantees it), so one number per
        partition is the whole bookkeeping — faust's own per-offset lists would hold an int per event
        (~70 bytes each) until the commit. Returns how many offsets were newly acked."""
        upto = self._ack_upto
        committed = self._committed_offset[tp]
        prev = upto.get(tp) if tp in self._acked else None  # faust pops _acked[tp] when tp is revoked
        floor = max(first, committed if committed is not None else first, prev if prev is not None else first)
        if last + 1 <= floor:
            return 0
        upto[tp] = last + 1
        self._acked[tp]  # noqa: B018 - registers tp with faust's commit loop (a defaultdict entry)
        return last + 1 - floor

    def _new_offset(self, tp: TP) -> int | None:
        """The offset faust's commit loop commits for ``tp``: ours for the batch topics."""
        if tp not in self._ack_upto:
            offset: int | None = super()._new_offset(tp)
            return offset
        if tp not in self._acked:  # revoked since: the next owner commits
            del self._ack_upto[tp]
            return None
        return self._ack_upto[tp]


class _Chunk:
    """One fetched batch of one partition, reduced to what decides when its records may be acked.

    Record ``i`` is done when ``last_end[i] <= closed_until(model[i])`` (or, for a rejection, once it is
    marked done). Only the first record that is not done matters, and per model only the records whose
    ``last_end`` is a new maximum from the left can be that record (an earlier record of the same model
    with a later or equal window end blocks first). So a chunk keeps, per model, those left-to-right
    maxima — a few per window boundary — plus its rejections: its size does not grow with its records.
    """

    __slots__ = ("ack_from", "blockers", "first", "n", "offsets", "pos", "rejects")

    def __init__(self, ack_from: int, offsets: np.ndarray, model_ids: np.ndarray, last_end: np.ndarray) -> None:
        self.ack_from = ack_from  # first offset the next ack of this chunk covers (gaps included)
        self.n = int(offsets.size)
        self.first = int(offsets[0])
        # offsets are kept only when they are not contiguous (transaction markers, compaction)
        self.offsets = None if int(offsets[-1]) - self.first + 1 == self.n else offsets
        self.pos = 0  # records before pos are acked
        unattributed = model_ids == UNATTRIBUTED
        self.rejects: set[int] = set(np.flatnonzero(unattributed).tolist())
        self.blockers: list[tuple[int, np.ndarray, np.ndarray]] = []
        for mid in np.unique(model_ids[~unattributed]).tolist():
            idx = np.flatnonzero(model_ids == mid)
            ends = last_end[idx]
            keep = np.empty(ends.size, dtype=bool)
            keep[0] = True
            np.greater(ends[1:], np.maximum.accumulate(ends)[:-1], out=keep[1:])
            self.blockers.append((int(mid), idx[keep], ends[keep]))  # ends strictly increasing

    def offset(self, index: int) -> int:
        return self.first + index if self.offsets is None else int(self.offsets[index])

    def index(self, offset: int) -> int | None:
        """Position of ``offset`` in this chunk, or None."""
        if self.offsets is None:
            i = offset - self.first
            return i if 0 <= i < self.n else None
        i = int(np.searchsorted(self.offsets, offset))
        return i if i < self.n and int(self.offsets[i]) == offset else None

    def first_blocked(self, closed: np.ndarray) -> int:
        """Index of the first record that is not done (``n`` when all are)."""
        k = min(self.rejects, default=self.n)
        for mid, idx, ends in self.blockers:
            j = int(np.searchsorted(ends, closed[mid], side="right"))
            if j < idx.size and idx[j] < k:
                k = int(idx[j])
        return k


class AckLedger:
    """Per-partition record of consumed offsets and when each may be acked (see module docstring)."""

    def __init__(self) -> None:
        self.models: list[str] = []
        self._ids: dict[str, int] = {}
        self.queues: dict[TP, deque[_Chunk]] = defaultdict(deque)
        self._next: dict[TP, int] = {}

    def model_id(self, model: str) -> int:
        mid = self._ids.get(model)
        if mid is None:
            mid = self._ids[model] = len(self.models)
            self.models.append(model)
        return mid

    def add(self, tp: TP, offsets: Sequence[int] | np.ndarray, model_ids: Sequence[int] | np.ndarray,
            last_end: Sequence[float] | np.ndarray, start_hint: int | None = None) -> _Chunk:
        """Remember a batch of ``tp`` (offsets ascending). Records with model id ``UNATTRIBUTED`` wait for
        :meth:`mark_done`. The first batch of a partition acks from ``start_hint`` (the offset the consumer
        was positioned at) when given, so offsets without a record before it (transaction markers) do not
        stall commits."""
        first = int(offsets[0])
        ack_from = self._next.get(tp)
        if ack_from is None or ack_from > first:
            ack_from = start_hint if start_hint is not None and start_hint <= first else first
        chunk = _Chunk(ack_from, np.asarray(offsets, dtype=np.int64), np.asarray(model_ids, dtype=np.int64),
                       np.asarray(last_end, dtype=np.float64))
        self.queues[tp].append(chunk)
        self._next[tp] = int(offsets[-1]) + 1
        return chunk

    @staticmethod
    def mark_done(chunk: _Chunk, index: int) -> None:
        """The record at ``index`` of ``chunk`` needs nothing more (e.g. its dead-letter record is written)."""
        chunk.rejects.discard(index)

    def mark_done_at(self, tp: TP, offset: int) -> bool:
        """:meth:`mark_done` for the record at ``offset`` of ``tp`` (False: not in the ledger any more)."""
        for chunk in self.queues.get(tp, ()):
            index = chunk.index(offset)
            if index is not None:
                chunk.rejects.discard(index)
                return True
        return False

    def ackable(self, closed_until: Callable[[str], float | None]) -> list[tuple[TP, int, int]]:
        """``(tp, first, last)`` offset ranges that may be acked now, consuming them from the ledger."""
        closed = np.array([c if (c := closed_until(m)) is not None else -math.inf for m in self.models],
                          dtype=np.float64)
        out: list[tuple[TP, int, int]] = []
        for tp, queue in self.queues.items():
            first: int | None = None
            last: int | None = None
            while queue:
                chunk = queue[0]
                k = chunk.first_blocked(closed)
                if k > chunk.pos:
                    if first is None:
                        first = chunk.ack_from
                    chunk.pos = k
                    last = chunk.offset(k - 1)
                    chunk.ack_from = last + 1
                if chunk.pos < chunk.n:
                    break
                queue.popleft()
            if first is not None and last is not None:
                out.append((tp, first, last))
        return out

    def drop(self, tps: Iterable[TP]) -> None:
        """Forget partitions (revoked: their records are re-read by the next owner)."""
        for tp in tps:
            self.queues.pop(tp, None)
            self._next.pop(tp, None)

    def pending(self) -> int:
        return sum(c.n - c.pos for q in self.queues.values() for c in q)

    def nbytes(self) -> int:
        """Approximate memory held by the ledger's arrays."""
        return sum(sum(i.nbytes + e.nbytes for _, i, e in c.blockers) + 8 * len(c.rejects)
                   + (c.offsets.nbytes if c.offsets is not None else 0) for q in self.queues.values() for c in q)
