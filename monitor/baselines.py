"""Trailing and seasonal baselines: a model's windows compared with its own recent past, next to training.

The training profile answers "has the world moved since we trained?"; a *sample baseline* answers "did
something break compared with last week / the same hour yesterday?". Stage 2 (:mod:`monitor.owner`) sees
every finalized window of a model, and window states are bin counts on the reference's bins that merge by
addition, so a baseline is a sum of past window states: no raw data, bounded memory per model.

* **Blocks.** An admitted window's bin counts are added into the *block* of ``baselines.block`` event time
  (default 1 h, aligned to the epoch) it falls in. A model keeps the blocks its baselines reach back to
  — a ring of ``retain / block + 2`` blocks at most — plus one running sum.
* **Trailing** (``trailing: 7d``): the blocks from the one holding ``window start − length`` up to the
  current one (its windows so far): the last 7 days at block granularity, as a running sum (a block that
  falls out is subtracted).
* **Seasonal** (``seasonal: 1d``, ``periods: k``): the block holding ``window start − i·period`` for
  ``i = 1..k``, pooled (counts added: the events-weighted average of the k periods).
* **Admission.** A window enters the blocks unless it overlaps a configured ``exclude`` range or
  (``exclude_drifted``) it drifted against every sample baseline the model has — an incident shows against
  all of them; a daily rhythm, which only the trailing baseline sees, does not keep a window out, and
  neither does a baseline that is still too small to compare with.
  When windows have been left out for ``adopt_after`` in a row, the drift is taken as the new normal and
  windows are admitted again. Only non-overlapping windows are admitted (with ``hop``: every
  ``window/hop``-th), so no event counts twice.
* **Statistics.** The window against a baseline uses the two-sample forms
  (:mod:`monitor.core.drift.twosample`; :meth:`~monitor.core.binning.FeatureBinner.drift_against`) and the
  policy's thresholds (:func:`~monitor.core.policy.decide_drift`); χ²'s effect size is Cramér's V with the
  effective size ``n·m/(n+m)``. A baseline with fewer than ``min_events`` events is not compared against.
* **Surviving a takeover.** The current block travels in the owner's checkpoint (atomic with
  ``closed_until``); a block is written once more to the checkpoint topic when it closes, keyed
  ``baseline:<slot>:<model>`` with ``slot = block index mod ring size`` — a ring in a compacted topic,
  at most ``ring size`` records per model. A new owner restores the closed blocks from those records and
  the current one from the checkpoint, so it compares the windows it finalizes again exactly as the
  previous owner did (docs/streaming.md, "Baselines across restarts").
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitor.baselines_config import BaselinesConfig, ModelBaselinePlan
from monitor.config import MonitorSettings, PolicyConfig
from monitor.core.aggregate import WindowState
from monitor.core.binning import FeatureBinner, StatResult
from monitor.core.explain import what_moved
from monitor.core.policy import BaselineDrift, decide_drift, drifted_features
from monitor.core.reference import CategoricalProfile
from monitor.types import PREDICTION_FEATURE, DriftResult, WindowRange
from monitor.wire import profile_id

log = logging.getLogger("driftline.baselines")

#: key prefix of closed-block records in the checkpoint topic
RECORD_PREFIX = "baseline:"
#: blocks count in int32 (half the memory of a window state's int64) until their events could overflow it
_INT32_MAX = 2**31 - 1


@dataclass
class Block:
    """Summed bin counts of the admitted windows of one block of event time."""

    index: int
    profile: str
    num: np.ndarray
    cat: np.ndarray
    events: int = 0
    windows: int = 0

    def add(self, num: np.ndarray, cat: np.ndarray, events: int) -> None:
        if self.events + events >= _INT32_MAX and self.num.dtype != np.int64:
            self.num, self.cat = self.num.astype(np.int64), self.cat.astype(np.int64)  # no bin can overflow
        self.num += num
        self.cat += cat
        self.events += events
        self.windows += 1

    def nbytes(self) -> int:
        return int(self.num.nbytes + self.cat.nbytes)


@dataclass
class _Ring:
    """One model's blocks, its trailing running sum and its exclusion run."""

    profile: str | None = None
    blocks: dict[int, Block] = field(default_factory=dict)
    #: index of the block of the newest window finalized (later blocks never exist)
    current: int | None = None
    #: start of the first window of the current run of windows left out as drifted
    excluded_since: float | None = None
    #: running sum of the blocks with index >= trail_lo (None: rebuild)
    trail: Block | None = None
    trail_lo: int = 0
    #: closed blocks whose record must be written (again)
    dirty: set[int] = field(default_factory=set)


class Baselines:
    """Sample baselines of every model one owner finalizes (see the module docstring)."""

    def __init__(self, settings: MonitorSettings) -> None:
        self.cfg: BaselinesConfig = settings.baselines
        self.policy = settings.policy
        self.window_s = settings.window_s
        self.block_s = self.cfg.block_s
        self.rings: dict[str, _Ring] = {}
        self._pids: dict[int, tuple[FeatureBinner, str]] = {}

    # -- per window --------------------------------------------------------------------------------------
    def plan(self, model: str) -> ModelBaselinePlan:
        return self.cfg.plan(model)

    def compare(self, model: str, rng: WindowRange, state: WindowState,
                binner: FeatureBinner | None) -> list[BaselineDrift]:
        """Drift of one finalized window against each of the model's sample baselines that has enough
        events (before the window itself is admitted: :meth:`admit`)."""
        plan = self.plan(model)
        if not plan.samples or binner is None or state.num_counts is None or state.cat_counts is None:
            return []
        ring = self._ring(model, binner, rng.start)
        out: list[BaselineDrift] = []
        idx = self._index(rng.start)
        if plan.trailing is not None:
            trail = self._trailing(ring, idx - self._blocks_back(plan.trailing.length_s), binner)
            if trail.events >= self.cfg.min_events:
                out.append(self._drift(f"trailing {plan.trailing.length}", "trailing", trail, state, binner,
                                       plan.trailing.alerts, plan.trailing.retrain))
        if plan.seasonal is not None:
            s = plan.seasonal
            parts = [ring.blocks.get(self._index(rng.start - i * s.period_s)) for i in range(1, s.periods + 1)]
            pooled = self._sum([b for b in parts if b is not None and b.profile == ring.profile], binner)
            if pooled.events >= self.cfg.min_events:
                what = f"seasonal {s.period}" + (f" ×{s.periods}" if s.periods > 1 else "")
                out.append(self._drift(what, "seasonal", pooled, state, binner, s.alerts, s.retrain))
        return out

    def admit(self, model: str, rng: WindowRange, state: WindowState, binner: FeatureBinner | None,
              compared: Sequence[BaselineDrift]) -> bool:
        """Add a finalized window to its block unless it is left out (module docstring); whether it was."""
        plan = self.plan(model)
        if not plan.samples or binner is None or state.num_counts is None or state.cat_counts is None:
            return False
        if not _multiple(rng.start, self.window_s) or rng.end - rng.start != self.window_s:
            return False  # a hopping window overlapping an admitted one
        if self.cfg.excluded(model, rng.start, rng.end):
            return False
        ring = self._ring(model, binner, rng.start)
        configured = (plan.trailing is not None) + (plan.seasonal is not None)
        # left out only on a unanimous verdict: a baseline too small to compare with does not vote to exclude
        drifted = len(compared) == configured and all(drifted_features(b.drift, self.policy) for b in compared)
        if self.cfg.exclude_drifted and drifted:
            if ring.excluded_since is None:
                ring.excluded_since = rng.start
            adopt = self.cfg.adopt_after_s
            if adopt is None or rng.start - ring.excluded_since < adopt:
                return False
            if rng.start - ring.excluded_since < adopt + self.window_s:
                log.info("event=baseline_adopted model=%s since=%s", model, ring.excluded_since)
        else:
            ring.excluded_since = None
        idx = self._index(rng.start)
        block = ring.blocks.get(idx)
        if block is None or block.profile != ring.profile:
            block = ring.blocks[idx] = self._empty(idx, ring, binner)
        block.add(state.num_counts, state.cat_counts, state.events)
        if ring.trail is not None and idx >= ring.trail_lo:
            ring.trail.add(state.num_counts, state.cat_counts, state.events)
        if ring.current is not None and idx < ring.current:
            ring.dirty.add(idx)  # an already closed block changed: write its record again
        return True

    # -- persistence ---------------------------------------------------------------------------------------
    def checkpoint(self, model: str) -> dict[str, Any] | None:
        """The part of the owner's checkpoint: the current block (atomic with ``closed_until``)."""
        ring = self.rings.get(model)
        if ring is None or ring.current is None:
            return None
        cur = ring.blocks.get(ring.current)
        return {"block_s": self.block_s, "profile": ring.profile, "current": ring.current,
                "excluded_since": ring.excluded_since, "block": None if cur is None else _block_to_dict(cur)}

    def records(self, model: str) -> list[tuple[str, dict[str, Any]]]:
        """Closed blocks to write to the checkpoint topic (once each; again if they changed)."""
        ring = self.rings.get(model)
        if ring is None or not ring.dirty:
            return []
        slots = self._slots(model)
        out = [(f"{RECORD_PREFIX}{i % slots}:{model}", {"model": model, "block_s": self.block_s,
                                                         **_block_to_dict(ring.blocks[i])})
               for i in sorted(ring.dirty) if i in ring.blocks]
        ring.dirty.clear()
        return out

    def restore(self, model: str, cp: dict[str, Any] | None) -> None:
        """Apply the owner checkpoint's part: the current block wins over any record of it, and blocks
        after it (written by an owner whose checkpoint never arrived) are dropped."""
        if not isinstance(cp, dict) or cp.get("block_s") != self.block_s or not isinstance(cp.get("current"), int):
            return
        ring = self.rings.setdefault(model, _Ring())
        cur = int(cp["current"])
        ring.current = cur
        ring.excluded_since = cp.get("excluded_since")
        if isinstance(cp.get("profile"), str):
            ring.profile = cp["profile"]
        for i in [i for i in ring.blocks if i >= cur]:
            del ring.blocks[i]
        if isinstance(cp.get("block"), dict):
            block = _block_from_dict(cp["block"])
            if not self._excluded_block(model, block.index):
                ring.blocks[block.index] = block
        ring.trail = None

    def restore_record(self, rec: dict[str, Any]) -> None:
        """A closed-block record read from the checkpoint topic (in any order with :meth:`restore`)."""
        model = rec.get("model")
        if not isinstance(model, str) or rec.get("block_s") != self.block_s:
            return
        block = _block_from_dict(rec)
        ring = self.rings.setdefault(model, _Ring())
        if ring.current is not None and block.index >= ring.current:
            return
        old = ring.blocks.get(block.index)
        if self._excluded_block(model, block.index) or (old is not None and old.windows >= block.windows):
            return
        ring.blocks[block.index] = block
        ring.trail = None

    def forget(self, model: str) -> None:
        self.rings.pop(model, None)

    def nbytes(self, model: str) -> int:
        """Bytes of bin counts held for ``model`` (its blocks and the running sum)."""
        ring = self.rings.get(model)
        if ring is None:
            return 0
        return sum(b.nbytes() for b in ring.blocks.values()) + (ring.trail.nbytes() if ring.trail else 0)

    # -- internals -----------------------------------------------------------------------------------------
    def _index(self, t: float) -> int:
        return math.floor(t / self.block_s + 1e-9)

    def _blocks_back(self, seconds: float) -> int:
        return math.ceil(seconds / self.block_s - 1e-9)

    def _slots(self, model: str) -> int:
        return self._blocks_back(self.plan(model).retain_s) + 2

    def _excluded_block(self, model: str, index: int) -> bool:
        return self.cfg.excluded(model, index * self.block_s, (index + 1) * self.block_s)

    def _pid(self, binner: FeatureBinner) -> str:
        hit = self._pids.get(id(binner))
        if hit is None or hit[0] is not binner:
            hit = self._pids[id(binner)] = (binner, profile_id(binner.profile))
        return hit[1]

    def _ring(self, model: str, binner: FeatureBinner, start: float) -> _Ring:
        """The model's ring for a window at ``start``: reset if the profile changed, advanced to the
        window's block (the previous current block closes), old blocks evicted."""
        ring = self.rings.setdefault(model, _Ring())
        pid = self._pid(binner)
        if ring.profile != pid:
            if ring.blocks and ring.profile is not None:
                log.info("event=baseline_reset model=%s reason=reference_changed", model)
            stale = [i for i, b in ring.blocks.items() if b.profile != pid]
            for i in stale:
                del ring.blocks[i]
            ring.profile, ring.trail = pid, None
        idx = self._index(start)
        if ring.current is None or idx > ring.current:
            if ring.current is not None and ring.current in ring.blocks:
                ring.dirty.add(ring.current)
            ring.current = idx
            keep = idx - self._blocks_back(self.plan(model).retain_s) - 1
            for i in [i for i in ring.blocks if i < keep]:
                del ring.blocks[i]
                ring.dirty.discard(i)
                if i >= ring.trail_lo:
                    ring.trail = None  # it was in the running sum: rebuild rather than subtract what is gone
        return ring

    def _empty(self, index: int, ring: _Ring, binner: FeatureBinner) -> Block:
        return Block(index, ring.profile or "", binner.empty_numeric().astype(np.int32),
                     binner.empty_categorical().astype(np.int32))

    def _sum(self, blocks: Sequence[Block], binner: FeatureBinner) -> Block:
        out = Block(-1, "", binner.empty_numeric(), binner.empty_categorical())  # int64: sums of many blocks
        for b in blocks:
            out.num += b.num
            out.cat += b.cat
            out.events += b.events
            out.windows += b.windows
        return out

    def _trailing(self, ring: _Ring, lo: int, binner: FeatureBinner) -> Block:
        """The running sum of the blocks from ``lo`` on: blocks that fell out are subtracted."""
        if ring.trail is None or lo < ring.trail_lo:
            ring.trail = self._sum([b for i, b in ring.blocks.items() if i >= lo and b.profile == ring.profile],
                                   binner)
        else:
            for i in range(ring.trail_lo, lo):
                b = ring.blocks.get(i)
                if b is not None and b.profile == ring.profile:
                    ring.trail.num -= b.num
                    ring.trail.cat -= b.cat
                    ring.trail.events -= b.events
                    ring.trail.windows -= b.windows
        ring.trail_lo = lo
        return ring.trail

    def _drift(self, describe: str, name: str, base: Block, state: WindowState, binner: FeatureBinner,
               alerts: bool, retrain: bool) -> BaselineDrift:
        assert state.num_counts is not None and state.cat_counts is not None
        stats = binner.drift_against(base.num, base.cat, state.num_counts, state.cat_counts,
                                     self.policy.enabled_methods)
        m = {**dict(zip(binner.numeric_names, base.num.sum(axis=1).tolist(), strict=True)),
             **dict(zip(binner.categorical_names, base.cat.sum(axis=1).tolist(), strict=True))}
        drift = decide_sample_drift(stats, m, self.policy, _n_categories(binner), state.events)
        flagged = {d.feature for d in drift if d.drifted}
        moved = what_moved(binner.profile, binner.numeric_names, state.num_counts, binner.categorical_names,
                           state.cat_counts, flagged, base_num=base.num, base_cat=base.cat) if flagged else {}
        moved = {f: f"{line} (against {describe}, {base.events:,} events)" for f, line in moved.items()}
        return BaselineDrift(name, drift, moved, alerts=alerts, retrain=retrain, events=base.events,
                             describe=describe)


def decide_sample_drift(stats: Sequence[StatResult], baseline_n: dict[str, int], policy: PolicyConfig,
                        n_categories: dict[str, int], window_events: int) -> list[DriftResult]:
    """The policy's decision (:func:`~monitor.core.policy.decide_drift`) on two-sample statistics.

    The only difference is χ²'s effect size: against a sample of ``m`` events the 2 × k table's statistic
    grows with ``n_eff = n·m/(n+m)``, not with ``n``, so the score is rescaled by ``n / n_eff`` before the
    policy turns it into Cramér's V — the same V a window gets against a reference of infinite size.
    """
    scaled = []
    for s in stats:
        m = baseline_n.get(s.feature, 0)
        if s.method == "chi2" and s.n > 0 and m > 0:
            s = dataclasses.replace(s, score=s.score * (s.n + m) / m)  # × n / n_eff
        scaled.append(s)
    return decide_drift(scaled, policy, n_categories, window_events)


def _n_categories(binner: FeatureBinner) -> dict[str, int]:
    ref = binner.profile
    out = {name: len(p.categories) + 1 for name, p in ref.categorical.items()}
    if isinstance(ref.prediction, CategoricalProfile):
        out[PREDICTION_FEATURE] = len(ref.prediction.categories) + 1
    return out


def _multiple(t: float, size: float) -> bool:
    k = t / size
    return abs(k - round(k)) < 1e-9


# -- block records ------------------------------------------------------------------------------------------
def _array_to_dict(a: np.ndarray) -> dict[str, Any]:
    """Counts in the narrowest unsigned type that holds them, zlib-compressed, base64 (JSON-safe)."""
    top = int(a.max()) if a.size else 0
    dtype = "<u2" if top < 2**16 else "<u4" if top < 2**32 else "<i8"
    raw = np.ascontiguousarray(a.astype(dtype)).tobytes()
    return {"dtype": dtype, "shape": list(a.shape), "z": base64.b64encode(zlib.compress(raw, 6)).decode()}


def _array_from_dict(d: dict[str, Any]) -> np.ndarray:
    raw = zlib.decompress(base64.b64decode(d["z"]))
    a = np.frombuffer(raw, dtype=np.dtype(d["dtype"])).reshape(tuple(d["shape"]))
    return a.astype(np.int32 if a.dtype.itemsize <= 2 else np.int64)


def _block_to_dict(b: Block) -> dict[str, Any]:
    return {"index": b.index, "profile": b.profile, "events": b.events, "windows": b.windows,
            "num": _array_to_dict(b.num), "cat": _array_to_dict(b.cat)}


def _block_from_dict(d: dict[str, Any]) -> Block:
    return Block(int(d["index"]), str(d["profile"]), _array_from_dict(d["num"]), _array_from_dict(d["cat"]),
                 int(d["events"]), int(d["windows"]))


def describe(plan: ModelBaselinePlan) -> str:
    """``"trailing 7d, seasonal 1d"`` (for logs and reports).

    >>> from monitor.baselines_config import BaselinesConfig
    >>> describe(BaselinesConfig(trailing="7d", seasonal={"period": "1w", "periods": 4}).plan("m"))
    'trailing 7d, seasonal 1w ×4'
    """
    parts = []
    if plan.trailing is not None:
        parts.append(f"trailing {plan.trailing.length}")
    if plan.seasonal is not None:
        s = plan.seasonal
        parts.append(f"seasonal {s.period}" + (f" ×{s.periods}" if s.periods > 1 else ""))
    return ", ".join(parts)
