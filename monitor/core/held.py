"""Predictions held for the label join and duplicate detection, in numpy arrays keyed by a 64-bit hash.

A source keeps, per model, every observed prediction for a while: with a labels topic until ``label_grace``
after its window (a label may still join it), without one for the duplicate horizon. A Python dict of
request id → tuple cost ~200 bytes per prediction; this table holds, per prediction, its key (a 64-bit
hash of the request id), event time and prediction (8 bytes and a 1-byte kind) in parallel arrays:
**25 bytes** (16 without labels), plus an index of 5 bytes per slot at 35–65 % load (8–14 bytes) and the
arrays' growth slack (≤ 20 %).

Layout:

* the entries are stored in arrival order (entry *s* is the *s*-th ever added), so expiry drops a
  prefix. Arrivals are grouped in *segments* (one per :meth:`HeldPredictions.add` call, one model version
  each) with their latest event time; a segment is dropped once that time is past the horizon
  (:meth:`HeldPredictions.expire`). When the arrays fill up, the live entries move to the front (or to
  larger arrays); their arrival numbers do not change;
* an open-addressing index of 8-slot buckets (a key's bucket is ``fastrange`` of its high bits; a full
  bucket overflows into the next) maps a key to its arrival number (``uint32``, modulo 2³²) and a 7-bit
  tag of the key (0: empty slot), so nearly every key is resolved by one vectorised probe of a bucket's
  8 tag bytes, which reads stored keys only where the tag matches. Slots fill in order within a bucket
  (a new key takes the first empty one). Dropped entries leave stale slots (their arrival number is no
  longer live); the index is rebuilt from the live entries when live and stale slots fill 65 % of it.

A 64-bit hash can collide: two different request ids of one model in one source, held at the same time,
are then taken for duplicates — with a million held predictions the chance of any collision is ~3·10⁻⁸.

>>> h = HeldPredictions(with_predictions=True)
>>> h.contains(np.array([11, 22, 33], dtype=np.uint64)).tolist()
[False, False, False]
>>> h.add(np.array([11, 22, 33], dtype=np.uint64), np.array([1.0, 2.0, 3.0]), [1, 0.5, "cat"], version=7)
>>> h.contains(np.array([22, 44], dtype=np.uint64)).tolist()
[True, False]
>>> found, ts, predictions, versions, groups = h.take(np.array([33, 44, 33], dtype=np.uint64))
>>> found.tolist(), ts.tolist(), predictions, versions.tolist(), groups.tolist()
([True, False, False], [3.0], ['cat'], [7], [-1])
>>> h.expire(watermark=10.0, horizon=5.0), len(h)  # the segment's latest time 3.0 + 5 < 10: dropped
(3, 0)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np

EMPTY = np.uint32(0xFFFFFFFF)
WIDTH = 8  # slots per bucket
#: prediction kinds; OBJECT: the value is an index into the table's object list
NONE, FLOAT, INT, OBJECT, JOINED = 0, 1, 2, 3, 4
#: index load that triggers a rebuild, and the load right after one
MAX_LOAD, REBUILD_LOAD = 0.65, 0.35
MIN_RING = 64
#: keys still unplaced after the vectorised rounds are placed one by one below this many
SCALAR_TAIL = 16
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def hash_keys(request_ids: Sequence[str]) -> np.ndarray:
    """64-bit keys of request ids (Python's string hash, SipHash, randomised per process: the table lives
    in one process only)."""
    return np.fromiter(map(hash, request_ids), dtype=np.int64, count=len(request_ids)).view(np.uint64)


def _buckets(keys: np.ndarray, n: int) -> np.ndarray:
    """``fastrange``: the key's high 32 bits scaled to ``[0, n)``."""
    return ((keys >> np.uint64(32)) * np.uint64(n) >> np.uint64(32)).astype(np.int64)


class HeldPredictions:
    """See the module docstring. ``with_predictions`` False keeps only keys and times (duplicate detection
    without a labels topic)."""

    def __init__(self, with_predictions: bool = True) -> None:
        self.with_predictions = with_predictions
        self.first = 0  # arrival number of the oldest live entry
        self.n = 0  # live entries
        self.base = 0  # arrival number stored at array position 0
        self.key = np.empty(0, dtype=np.uint64)
        self.ts = np.empty(0, dtype=np.float64)
        self.value = np.empty(0, dtype=np.int64)  # float64 bits (FLOAT), int64 (INT), object index (OBJECT)
        self.kind = np.empty(0, dtype=np.uint8)
        #: a code the caller gives each entry (e.g. its segments), -1 when none; allocated on first use
        self.group: np.ndarray | None = None
        self.objects: list[object] = []  # predictions that are neither float nor int64 (strings, huge ints)
        self._object_ids: dict[object, int] = {}
        #: (first arrival number, entries, latest event time, version) in arrival order
        self.segments: deque[tuple[int, int, float, int]] = deque()
        self.index = np.full((1, WIDTH), EMPTY, dtype=np.uint32)
        self.tags = np.zeros((1, WIDTH), dtype=np.uint8)
        self.used = 0  # index slots written since the last rebuild (live and stale)

    def __len__(self) -> int:
        return self.n

    @property
    def capacity(self) -> int:
        return int(self.key.size)

    def nbytes(self) -> int:
        """Bytes held by the table's arrays (growth slack and index included)."""
        arrays: list[np.ndarray] = [self.key, self.ts, self.value, self.kind, self.index, self.tags]
        if self.group is not None:
            arrays.append(self.group)
        return sum(int(a.nbytes) for a in arrays) + 48 * len(self.segments)

    # -- lookups -----------------------------------------------------------------------------------------
    def _find(self, keys: np.ndarray) -> np.ndarray:
        """Array position of each key's entry, -1 where absent."""
        out = np.full(keys.size, -1, dtype=np.int64)
        if self.n == 0 or keys.size == 0:
            return out
        index, tags, stored = self.index, self.tags, self.key
        nb = index.shape[0]
        first32, n, head = self.first & 0xFFFFFFFF, self.n, self.first - self.base
        bucket = _buckets(keys, nb)
        tag = _tags(keys)
        pending = np.arange(keys.size)
        while pending.size:
            row = tags[bucket]  # a slot's tag is 0 while it is empty (tags are never 0)
            ki, col = np.nonzero(row == tag[pending, None])
            hit = np.zeros(0, dtype=np.int64)
            if ki.size:
                off = (index[bucket[ki], col].astype(np.int64) - first32) & 0xFFFFFFFF
                live = off < n
                pos = head + off
                match = live & (stored[np.where(live, pos, 0)] == keys[pending[ki]])
                hit = ki[match]
                out[pending[hit]] = pos[match]
            go = row[:, WIDTH - 1] != 0  # a full bucket may have overflowed into the next one
            go[hit] = False
            pending = pending[go]
            bucket = bucket[go] + 1
            bucket[bucket == nb] = 0
        return out

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Which keys are held."""
        return self._find(np.asarray(keys, dtype=np.uint64)) >= 0

    def take(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[object], np.ndarray, np.ndarray]:
        """Join labels: ``(found, ts, predictions, versions, groups)`` for the keys (in order) whose prediction
        is held and not yet taken; those are marked taken (a second label for the same request finds nothing).
        ``ts``/``predictions``/``versions``/``groups`` list the found keys only. A prediction held without a
        value (an error) is not found."""
        if not self.with_predictions:
            raise ValueError("this table holds no predictions (with_predictions=False)")
        keys = np.asarray(keys, dtype=np.uint64)
        pos = self._find(keys)
        found = pos >= 0
        if found.any():
            kind = self.kind[np.where(found, pos, 0)]
            found &= (kind != NONE) & (kind != JOINED)
        idx = np.flatnonzero(found)
        if idx.size > 1:  # the same key twice in one call: only its first occurrence joins
            _, first = np.unique(pos[idx], return_index=True)
            if first.size != idx.size:
                first.sort()
                found[:] = False
                idx = idx[first]
                found[idx] = True
        p = pos[idx]
        predictions = self._values(p)
        versions = self._versions(p + self.base)
        self.kind[p] = JOINED
        groups = self.group[p] if self.group is not None else np.full(p.size, -1, dtype=np.int32)
        return found, self.ts[p], predictions, versions, groups

    def _values(self, pos: np.ndarray) -> list[object]:
        kind = self.kind[pos].tolist()
        bits = self.value[pos]
        floats = bits.view(np.float64).tolist()
        ints = bits.tolist()
        objects = self.objects
        return [floats[i] if k == FLOAT else ints[i] if k == INT else objects[ints[i]] if k == OBJECT else None
                for i, k in enumerate(kind)]

    def _versions(self, seq: np.ndarray) -> np.ndarray:
        if not self.segments or seq.size == 0:
            return np.zeros(seq.size, dtype=np.int64)
        starts = np.fromiter((s[0] for s in self.segments), dtype=np.int64, count=len(self.segments))
        versions = np.fromiter((s[3] for s in self.segments), dtype=np.int64, count=len(self.segments))
        return versions[np.searchsorted(starts, seq, side="right") - 1]  # type: ignore[no-any-return]

    # -- inserts -----------------------------------------------------------------------------------------
    def add(self, keys: np.ndarray, ts: np.ndarray, predictions: Sequence[object] | None = None,
            version: int = 0, groups: np.ndarray | None = None) -> None:
        """Hold new entries of one model version (keys distinct and not held: callers check
        :meth:`contains` first), as one arrival segment."""
        keys = np.asarray(keys, dtype=np.uint64)
        m = keys.size
        if m == 0:
            return
        end = self.first - self.base + self.n
        if end + m > self.capacity:
            self._make_room(m)
            end = self.n
        self.key[end:end + m] = keys
        self.ts[end:end + m] = ts
        if self.with_predictions:
            bits, kind = self._encode(predictions if predictions is not None else [None] * m)
            self.value[end:end + m] = bits
            self.kind[end:end + m] = kind
            if groups is not None and self.group is None:
                self.group = np.full(self.capacity, -1, dtype=np.int32)
            if self.group is not None:
                self.group[end:end + m] = groups if groups is not None else -1
        seq = self.first + self.n
        self.segments.append((seq, m, float(np.max(ts)), version))
        self.n += m
        if self.used + m > MAX_LOAD * self.index.size:
            self._rebuild()
        else:
            self._insert(keys, np.arange(seq, seq + m))

    def _make_room(self, m: int) -> None:
        """Move the live entries to the front, into arrays with room for ``m`` more and 25 % slack."""
        need = self.n + m
        cap = self.capacity
        if not need <= cap <= 4 * need:  # grow, or shrink what an earlier peak left
            cap = max(MIN_RING, math.ceil(need * 1.2))
        head = self.first - self.base
        names = ("key", "ts", "value", "kind", *(("group",) if self.group is not None else ()))
        for name in names if self.with_predictions else ("key", "ts"):
            a = getattr(self, name)
            if cap == a.size:
                a[:self.n] = a[head:head + self.n]
            else:
                out = np.empty(cap, dtype=a.dtype)
                out[:self.n] = a[head:head + self.n]
                setattr(self, name, out)
        self.base = self.first

    def _encode(self, predictions: Sequence[object]) -> tuple[np.ndarray, np.ndarray]:
        m = len(predictions)
        kinds = set(map(type, predictions))
        if kinds == {int}:
            try:
                return np.array(predictions, dtype=np.int64), np.full(m, INT, dtype=np.uint8)
            except OverflowError:
                pass
        elif kinds == {float}:
            return np.array(predictions, dtype=np.float64).view(np.int64), np.full(m, FLOAT, dtype=np.uint8)
        kind = np.empty(m, dtype=np.uint8)
        bits = np.zeros(m, dtype=np.int64)
        floats = np.zeros(m, dtype=np.float64)
        objects, ids = self.objects, self._object_ids
        for i, v in enumerate(predictions):
            if isinstance(v, float):
                kind[i] = FLOAT
                floats[i] = v
            elif type(v) is int and _I64_MIN <= v <= _I64_MAX:
                kind[i] = INT
                bits[i] = v
            elif v is None:
                kind[i] = NONE
            else:
                j = ids.get(v)
                if j is None:
                    j = ids[v] = len(objects)
                    objects.append(v)
                kind[i] = OBJECT
                bits[i] = j
        is_float = kind == FLOAT
        if is_float.any():
            bits[is_float] = floats[is_float].view(np.int64)
        return bits, kind

    def _insert(self, keys: np.ndarray, seq: np.ndarray, fresh: bool = False) -> None:
        """Index keys (distinct, not yet indexed) under arrival numbers ``seq``. Slots fill in order within a
        bucket: a key goes to the first empty slot of its bucket, or of the next bucket that has one."""
        index, tags = self.index, self.tags
        nb = index.shape[0]
        value = (seq & 0xFFFFFFFF).astype(np.uint32)
        tag = _tags(keys)
        bucket = _buckets(keys, nb)
        pending = np.arange(keys.size)
        if fresh:  # many keys per bucket: place each at its rank among the keys of its bucket
            order = _order(bucket)
            b = bucket[order]
            new_run = np.empty(b.size, dtype=bool)
            new_run[0] = True
            np.not_equal(b[1:], b[:-1], out=new_run[1:])
            run_start = np.flatnonzero(new_run)
            col = np.arange(b.size) - np.repeat(run_start, np.diff(run_start, append=b.size))
            fits = col < WIDTH
            who = order[fits]
            index[b[fits], col[fits]] = value[who]
            tags[b[fits], col[fits]] = tag[who]
            pending = order[~fits]
            bucket = b[~fits] + 1
            bucket[bucket == nb] = 0
        while pending.size > SCALAR_TAIL:
            # the first empty slot of each key's bucket; keys that picked the same slot: one write wins
            col = np.count_nonzero(tags[bucket], axis=1)
            fits = col < WIDTH
            b, c, v = bucket[fits], col[fits], value[pending[fits]]
            index[b, c] = v
            won = np.zeros(pending.size, dtype=bool)
            won[fits] = index[b, c] == v
            tags[bucket[won], col[won]] = tag[pending[won]]
            bucket = np.where(fits, bucket, bucket + 1)  # a full bucket overflows into the next one
            bucket[bucket == nb] = 0
            go = ~won
            pending = pending[go]
            bucket = bucket[go]
        for i, b1 in zip(pending.tolist(), bucket.tolist(), strict=True):
            while tags[b1, WIDTH - 1]:
                b1 = b1 + 1 if b1 + 1 < nb else 0
            c1 = int(np.count_nonzero(tags[b1]))
            index[b1, c1] = value[i]
            tags[b1, c1] = tag[i]
        self.used += keys.size

    def _rebuild(self) -> None:
        """A new index of the live entries (drops stale slots), sized for REBUILD_LOAD; unused objects go."""
        buckets = max(1, math.ceil(self.n / REBUILD_LOAD / WIDTH))
        self.index = np.full((buckets, WIDTH), EMPTY, dtype=np.uint32)
        self.tags = np.zeros((buckets, WIDTH), dtype=np.uint8)
        self.used = 0
        if self.n:
            head = self.first - self.base
            self._insert(self.key[head:head + self.n], np.arange(self.first, self.first + self.n), fresh=True)
            if self.with_predictions and len(self.objects) > 2 * self.n + 16:
                self._compact_objects(head)

    def _compact_objects(self, head: int) -> None:
        live_kind = self.kind[head:head + self.n]
        p = head + np.flatnonzero(live_kind == OBJECT)
        live = np.unique(self.value[p])
        self.objects = [self.objects[i] for i in live.tolist()]
        self._object_ids = {v: i for i, v in enumerate(self.objects)}
        self.value[p] = np.searchsorted(live, self.value[p])

    # -- expiry ------------------------------------------------------------------------------------------
    def expire(self, watermark: float, horizon: float) -> int:
        """Drop the oldest arrival segments whose latest event time ``t`` has ``t + horizon < watermark``;
        returns how many entries were dropped."""
        dropped = 0
        segments = self.segments
        while segments and segments[0][2] + horizon < watermark:
            dropped += segments.popleft()[1]
        self.first += dropped
        self.n -= dropped
        if dropped and self.capacity > 4 * max(self.n, MIN_RING):  # traffic fell: give memory back
            self._make_room(0)
            if self.index.size > 4 * max(self.n, MIN_RING) / REBUILD_LOAD:
                self._rebuild()
        return dropped


def _order(bucket: np.ndarray) -> np.ndarray:
    """``argsort(bucket, kind="stable")`` for buckets below 2³², as two stable 16-bit passes (numpy sorts
    16-bit keys by radix, in linear time)."""
    low = np.argsort((bucket & 0xFFFF).astype(np.uint16), kind="stable")
    if int(bucket.max(initial=0)) <= 0xFFFF:
        return low
    high = np.argsort((bucket[low] >> 16).astype(np.uint16), kind="stable")
    return low[high]  # type: ignore[no-any-return]


def _tags(keys: np.ndarray) -> np.ndarray:
    """An 8-bit tag of each key, never 0 (0 marks an empty slot)."""
    return (keys & np.uint64(0xFF)).astype(np.uint8) | np.uint8(1)
