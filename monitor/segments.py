"""Segments at run time: per value of a categorical feature, the same window statistics as the whole model.

With ``segments: [country, device]`` in the configuration and a reference built with the same segments
(:mod:`monitor.core.segment_profiles`), every window state carries, per segment ``<feature>=<value>``, the
state of the window's events with that value (:attr:`WindowState.segments
<monitor.core.aggregate.WindowState.segments>`): bins against the segment's own reference, latency, errors,
estimated accuracy and, through the label join, performance. Sub-states merge by addition like the model's,
so the two-stage aggregation needs nothing else. A value the reference does not know, or a missing one,
belongs to no segment of its feature (it is unseen or missing for the feature, as for the whole model).

* :class:`Segmenter` — which segment each event belongs to, and the per-segment ingest (stage 1).
* :func:`check_references` — the start-up check that profiles and configuration agree.
* :func:`joint` / :func:`close` / :func:`rewrite` — finalizing a window's segments (stage 2, called by
  :class:`~monitor.finalize.Finalizer`): one multiple-testing family for the model's and every segment's
  tests, then per segment the drift decision, its points (tag ``segment``) and the facts the policy
  evaluates into alerts that carry label ``segment``.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from monitor.core.aggregate import Batch, Outcome, PerformanceState, WindowState
from monitor.core.binning import FeatureBinner, StatResult
from monitor.core.policy import WindowFacts, joint_significance
from monitor.core.reference import CategoricalProfile, ReferenceProfile
from monitor.core.segment_profiles import OTHER, segment_key
from monitor.core.sketch import LatencySketch
from monitor.points import performance_points, window_points
from monitor.types import PREDICTION_FEATURE, MetricPoint, WindowRange

if TYPE_CHECKING:
    from monitor.config import MonitorSettings, PolicyConfig
    from monitor.finalize import Finalizer, Out

#: per event, its segment key per segment feature (None: in no segment of that feature)
RowKeys = tuple[str | None, ...]
NO_KEYS: RowKeys = ()


@dataclass
class _Feature:
    """One segment feature: category → slot, and per slot the segment's key, binner and profile."""

    name: str
    column: int  # index in the model binner's categorical columns
    slot: dict[str | None, int]  # category → slot; None (missing) and other values: -1
    keys: list[str]
    binners: list[FeatureBinner]
    profiles: list[ReferenceProfile]
    own: list[bool]  # slot is one value (its feature's own statistics are degenerate and left out)


@dataclass
class Segmenter:
    """The segments of one reference profile for the configured segment features."""

    features: list[_Feature]
    #: per categorical column of the model's binner: category → slot (None → -1); the unseen slot is its size
    cat_index: list[dict[str | None, int]]
    by_key: dict[str, tuple[_Feature, int]] = field(default_factory=dict)
    _interned: dict[RowKeys, RowKeys] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_key = {key: (f, i) for f in self.features for i, key in enumerate(f.keys)}
        self.cat_unseen = np.array([len(index) - 1 for index in self.cat_index], dtype=np.int64)
        self.slot_tables = [self._slot_table(f) for f in self.features]

    @classmethod
    def build(cls, binner: FeatureBinner, features: Sequence[str]) -> Segmenter | None:
        profile = binner.profile
        out: list[_Feature] = []
        for name in features:
            profs = profile.segments.get(name)
            if not profs or name not in binner.categorical_names:
                continue
            values = list(profs)
            slot: dict[str | None, int] = {None: -1, **{v: i for i, v in enumerate(values) if v != OTHER}}
            if OTHER in profs:
                other = values.index(OTHER)
                for c in profile.categorical[name].categories:
                    slot.setdefault(c, other)
            # no multivariate statistic per segment (its state is the model's): segment binners leave it out
            binners = [FeatureBinner(profs[v], multivariate=False) for v in values]
            for b in binners:
                b.exact_small_ks = False  # 2 × 21 small windows each time: Stephens' KS p-values, ~100× faster
            out.append(_Feature(name, binner.categorical_names.index(name), slot,
                                [segment_key(name, v) for v in values], binners,
                                [profs[v] for v in values], [v != OTHER for v in values]))
        cats = [profile.prediction if name == PREDICTION_FEATURE else profile.categorical[name]
                for name in binner.categorical_names]
        index: list[dict[str | None, int]] = [
            {None: -1, **({c: i for i, c in enumerate(p.categories)} if isinstance(p, CategoricalProfile) else {})}
            for p in cats]
        return cls(out, index) if out else None

    @property
    def keys(self) -> list[str]:
        """Every segment key, feature by feature, most frequent value first, ``__other__`` last."""
        return [k for f in self.features for k in f.keys]

    def binner(self, key: str) -> FeatureBinner:
        f, i = self.by_key[key]
        return f.binners[i]

    def profile(self, key: str) -> ReferenceProfile:
        f, i = self.by_key[key]
        return f.profiles[i]

    def own_feature(self, key: str) -> str | None:
        """The segment feature whose statistics are left out of ``key``'s drift (one value: degenerate)."""
        f, i = self.by_key[key]
        return f.name if f.own[i] else None

    # -- stage 1 ----------------------------------------------------------------------------------------
    def assign(self, batch: Batch) -> Assignment:
        """Which segments each event of ``batch`` (built with the model's binner) belongs to, and the batch's
        category codes, computed once for every segment (their categories are the model's: the batch's codes
        are the model binner's, whose unseen slot is each index's)."""
        n = batch.ts.size
        codes = batch.cat_codes.T if batch.cat_codes is not None else np.empty((len(self.cat_index), n), np.int64)
        # a segment feature's slot per category code (the unseen code and missing, -1: no segment)
        slots = [table[codes[f.column]] for f, table in zip(self.features, self.slot_tables, strict=True)]
        # the sub-states' view of the batch: categorical counts come from the codes instead
        view = replace(batch, cat_codes=None, recon=None)  # (and no multivariate statistic per segment)
        return Assignment(slots, np.ascontiguousarray(codes), view)

    def _slot_table(self, f: _Feature) -> np.ndarray:
        """``table[code]`` = the slot of category ``code`` of ``f``'s column (unseen and missing, -1: none);
        indexed with -1 for a missing value, the table's last entry."""
        index = self.cat_index[f.column]
        table = np.full(len(index) + 1, -1, dtype=np.int64)  # categories, the unseen slot, then missing
        for category, code in index.items():
            if category is not None:
                table[code] = f.slot.get(category, -1)
        return table

    def ingest(self, state: WindowState, rows: np.ndarray, a: Assignment) -> None:
        """Add the rows ``rows`` of the assigned batch to their segments' sub-states (created on first use)."""
        if rows.size == 0:
            return
        subs = state.segments if state.segments is not None else {}
        for f, s in zip(self.features, a.slots, strict=True):
            mine = s[rows]
            order = np.argsort(mine, kind="stable")
            ordered = mine[order]
            starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
            ends = np.r_[starts[1:], ordered.size]
            for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
                i = int(ordered[lo])
                if i < 0:
                    continue
                key = f.keys[i]
                binner = f.binners[i]
                sub = subs.get(key)
                if sub is None:
                    sub = subs[key] = WindowState.empty(binner)
                sub_rows = rows[order[lo:hi]]
                sub.ingest(a.view, sub_rows, binner)
                if sub.cat_counts is not None and sub.cat_missing is not None and sub.cat_unseen is not None \
                        and self.cat_index:
                    counts, missing, unseen = self._cat_counts(a.codes[:, sub_rows], sub.cat_counts.shape[1])
                    sub.cat_counts += counts
                    sub.cat_missing += missing
                    sub.cat_unseen += unseen
        if subs:
            state.segments = subs

    def _cat_counts(self, codes: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(counts, missing, unseen)`` per categorical feature from category codes (one ``bincount``)."""
        f = codes.shape[0]
        present = codes >= 0
        missing = (codes.shape[1] - present.sum(axis=1)).astype(np.int64)
        flat = (codes + (np.arange(f, dtype=np.int64) * width)[:, None])[present]
        counts = np.bincount(flat, minlength=f * width).reshape(f, width).astype(np.int64)
        return counts, missing, counts[np.arange(f), self.cat_unseen]

    def row_keys(self, a: Assignment) -> list[RowKeys]:
        """Per event its keys (for the label join); equal tuples are one object."""
        names = [np.array([*f.keys, None], dtype=object)[s] for f, s in zip(self.features, a.slots, strict=True)]
        interned = self._interned
        return [interned.setdefault(t, t) for t in zip(*names, strict=True)]


@dataclass
class Assignment:
    """One batch's segments: per segment feature each event's slot (-1: none), the category codes of every
    categorical feature (-1 missing, the feature's unseen slot for a category the reference lacks), and the
    batch without its categorical columns (what the sub-states ingest besides the codes)."""

    slots: list[np.ndarray]
    codes: np.ndarray
    view: Batch


_CACHE: weakref.WeakKeyDictionary[FeatureBinner, dict[tuple[str, ...], Segmenter | None]] = \
    weakref.WeakKeyDictionary()


def segmenter_for(binner: FeatureBinner | None, settings: MonitorSettings) -> Segmenter | None:
    """The :class:`Segmenter` of ``binner``'s profile for the configured segments (cached per binner), or
    None without segments (none configured, or a profile built without them)."""
    if binner is None or not settings.segments:
        return None
    per = _CACHE.setdefault(binner, {})
    key = tuple(settings.segments)
    if key not in per:
        per[key] = Segmenter.build(binner, settings.segments)
    return per[key]


def check_references(references: Mapping[str, ReferenceProfile] | Iterable[ReferenceProfile],
                     settings: MonitorSettings) -> None:
    """Start-up check: every configured profile has the configured segments, within ``segment_max_values``.

    Raises
    ------
    ValueError
        Naming the profile's model and the setting, with the command that fixes it.
    """
    if not settings.segments:
        return
    profiles = references.values() if isinstance(references, Mapping) else references
    wanted = ", ".join(settings.segments)
    for prof in profiles:
        missing = [f for f in settings.segments if f not in prof.segments]
        if missing:
            built = f"with segments {', '.join(prof.segments)}" if prof.segments else "without segments"
            raise ValueError(
                f"the reference profile of model {prof.model!r} was built {built}, but the configuration sets "
                f"segments: [{wanted}] (setting `segments` / MONITOR_SEGMENTS); rebuild it with `monitor reference "
                f"build --model {prof.model} --segments {','.join(settings.segments)}` or remove "
                f"{', '.join(missing)} from `segments`")
        for feature in settings.segments:
            own = [v for v in prof.segments[feature] if v != OTHER]
            if len(own) > settings.segment_max_values:
                raise ValueError(
                    f"the reference profile of model {prof.model!r} has {len(own)} segments of {feature!r}, more "
                    f"than segment_max_values {settings.segment_max_values} in the configuration; rebuild it with "
                    f"`monitor reference build --model {prof.model} --segments {','.join(settings.segments)} "
                    f"--segment-max-values {settings.segment_max_values}` or raise segment_max_values")


# -- label join -------------------------------------------------------------------------------------------
def label(state: WindowState, keys: RowKeys, out: Outcome) -> None:
    """A joined label's outcome (:func:`~monitor.core.aggregate.outcome`) in its prediction's segments."""
    if not keys or state.segments is None or out is None:
        return
    for key in keys:
        if key is not None:
            sub = state.segments.get(key)
            if sub is not None:
                sub.perf.add(out)


#: the latency sketch of every trimmed sub-state: one shared, read-only empty sketch (~10 kB saved per segment)
_TRIMMED = LatencySketch()
_TRIMMED.buckets.flags.writeable = False


def trim(state: WindowState) -> None:
    """Once a window's segments are published (stage 1) or finalized (stage 2), only their label outcomes
    can still change: drop their bins and sketches (closed windows are kept for ``label_grace``)."""
    for sub in (state.segments or {}).values():
        sub.num_counts = sub.num_missing = sub.num_oor = None
        sub.cat_counts = sub.cat_missing = sub.cat_unseen = None
        sub.latency = _TRIMMED
        sub.error_top = {}


def trimmed_nbytes(state: WindowState) -> int:
    """:meth:`WindowState.nbytes` counting the shared empty sketch of trimmed sub-states once."""
    shared = sum(1 for sub in (state.segments or {}).values() if sub.latency is _TRIMMED)
    return state.nbytes() - max(shared - 1, 0) * _TRIMMED.nbytes()


def refresh_perf(final: WindowState, parts: Sequence[WindowState]) -> None:
    """Recompute a finalized window's per-segment performance from its partials (after late labels)."""
    for key, sub in (final.segments or {}).items():
        perf = PerformanceState()
        for p in parts:
            if p.segments is not None and key in p.segments:
                perf.merge_in(p.segments[key].perf)
        sub.perf = perf


#: KS: the two-sample critical value factor at 5 % (D > c·√(1/n + 1/m))
KS_C = 1.358
#: Cramér's V (χ² with one degree of freedom, the largest): √χ²₀.₉₅(1) = 1.96
V_C = 1.96
#: PSI over 10 bins: χ²₀.₉₅(9) · (1/n + 1/m) is its sampling noise at 5 %
PSI_C = 16.92


def noise_margins(policy: PolicyConfig, n: int, m: int) -> PolicyConfig:
    """The policy a segment-window is decided with: each decision statistic's threshold raised by its own
    sampling noise at 5 % for ``n`` window events against ``m`` reference rows, so a segment flags only
    when its effect clears the threshold with 95 % confidence (a small window's statistic is biased up:
    a seasonal wobble the whole model tolerates would otherwise flag in some of many small segments).

    >>> from monitor.config import PolicyConfig
    >>> p = noise_margins(PolicyConfig(), 200, 1000)
    >>> round(p.methods["ks"].effect_floor, 3), round(p.methods["psi"].warning, 3)
    (0.205, 0.202)
    """
    inv = 1 / max(n, 1) + 1 / max(m, 1)
    margin = {"ks": KS_C * math.sqrt(inv), "chi2": V_C * math.sqrt(inv), "psi": PSI_C * inv}
    methods = {}
    for name, cfg in policy.methods.items():
        add = margin.get(name)
        methods[name] = cfg if add is None else cfg.model_copy(update={
            "warning": cfg.warning + add, "floor": cfg.floor + add,
            "effect_floor": cfg.effect_floor + add if cfg.effect_floor is not None else None})
    return policy.model_copy(update={"methods": methods})


# -- finalizing (stage 2) --------------------------------------------------------------------------------------
@dataclass
class SegmentWindow:
    """One window's segments: raw statistics per segment and the significance of the joint family."""

    segmenter: Segmenter
    stats: dict[str, list[StatResult]]
    significant: dict[str, dict[str, bool]]
    model_significant: dict[str, bool]


def joint(finalizer: Finalizer, state: WindowState, binner: FeatureBinner | None,
          model_stats: Sequence[StatResult]) -> SegmentWindow | None:
    """Every segment's statistics and one Benjamini–Hochberg family over the model's and the segments' tests,
    so adding segments does not add false discoveries (None: no segments in this window)."""
    seg = segmenter_for(binner, finalizer.settings)
    if seg is None or not state.segments:
        return None
    stats: dict[str, list[StatResult]] = {}
    methods = finalizer.settings.policy.enabled_methods
    for key in seg.keys:
        sub = state.segments.get(key)
        if sub is None or sub.num_counts is None or sub.cat_counts is None:
            continue
        skip = seg.own_feature(key)
        stats[key] = [s for s in seg.binner(key).drift(sub.num_counts, sub.cat_counts, methods) if s.feature != skip]
    groups = [list(model_stats), *stats.values()]
    sig = joint_significance(groups, finalizer.settings.policy)
    return SegmentWindow(seg, stats, dict(zip(stats, sig[1:], strict=True)), sig[0])


def close(finalizer: Finalizer, window: SegmentWindow | None, model: str, version: str | None, rng: WindowRange,
          state: WindowState, tags: tuple[tuple[str, str], ...], t_ns: int, out: Out) -> list[WindowFacts]:
    """Points of every segment of the window (tag ``segment``) and the facts the policy evaluates."""
    if window is None or not state.segments:
        return []
    seg = window.segmenter
    facts: list[WindowFacts] = []
    for key in seg.keys:
        sub = state.segments.get(key)
        if sub is None:
            continue
        ref, binner = seg.profile(key), seg.binner(key)
        stats = window.stats.get(key)
        drift = finalizer.decide(stats, ref, sub.events, window.significant[key],
                                 noise_margins(finalizer.settings.policy, sub.events, ref.rows)) \
            if stats is not None else []
        seg_tags = (*tags, ("segment", key))
        out.points.extend(window_points(sub, drift, seg_tags, t_ns, rng.end - rng.start,
                                        binner if sub.num_counts is not None else None, finalizer.settings.policy,
                                        event_quality=False))
        f = finalizer.facts(model, version, rng, sub, drift, ref if stats is not None else None,
                            binner if stats is not None else None, False, False)
        facts.append(replace(f, segment=key))
    return facts


def rewrite(state: WindowState, tags: tuple[tuple[str, str], ...], t_ns: int) -> list[MetricPoint]:
    """The segments' ``performance`` points of a finalized window that late labels changed."""
    return [p for key, sub in (state.segments or {}).items()
            for p in performance_points(sub, (*tags, ("segment", key)), t_ns)]
