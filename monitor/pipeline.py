"""The pure monitoring pipeline in one process: events in; per-window points, alerts and retraining out.

``Monitor.observe(batch)`` → ``Monitor.advance(now)`` → :class:`~monitor.types.Emission`. It is the
two-stage design of the streaming worker with a single source: one :class:`~monitor.source.SourceAggregator`
(stage 1: partial windows, watermarks, label join) hands its partial windows straight to one
:class:`~monitor.owner.ModelOwner` (stage 2: merge, finalize, policy) — the same code the worker runs
with the partials going through Kafka, so ``monitor replay`` and the tests exercise the worker's
arithmetic. No I/O, no clock (``now`` is passed in and only used to extrapolate idle watermarks).

Late labels: a prediction is remembered (request id → window, prediction) for ``label_grace`` of event
time after its window closes. A label that arrives in that time updates the performance state of the
prediction's window — open or already finalized — and a finalized window's ``performance`` points are
written again with the same time and tags, so InfluxDB keeps the newest values (points are idempotent).
Labels later than that are counted as unmatched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import msgspec

from monitor.config import MonitorSettings
from monitor.core.reference import ReferenceProfile
from monitor.finalize import Out
from monitor.owner import ModelOwner, ReferenceBook
from monitor.segments import check_references
from monitor.source import OBSERVED, SourceAggregator
from monitor.types import Emission, LabelEvent, PredictionEvent, Rejection

_json = msgspec.json.Encoder()


def load_references(path: Path | str) -> dict[str, ReferenceProfile]:
    """A reference profile file, or a directory of them (``*.json``, one per model)."""
    p = Path(path)
    files = sorted(p.glob("*.json")) if p.is_dir() else [p]
    if not files:
        raise ValueError(f"{p}: no reference profiles (*.json) found")
    out: dict[str, ReferenceProfile] = {}
    for f in files:
        prof = ReferenceProfile.load(f)
        out[prof.model] = prof
    return out


class Monitor:
    """Stage 1 and stage 2 of the pipeline for one source, in process (see the module docstring)."""

    def __init__(self, settings: MonitorSettings, references: Mapping[str, ReferenceProfile] | None = None):
        self.settings = settings
        check_references(references or {}, settings)
        self.book = ReferenceBook((references or {}).values())
        self.source = SourceAggregator(0, settings, self.book.get)
        self.owner = ModelOwner(settings, self.book, sources=[0])
        #: predictions dead-lettered after decoding (undeclared or too many models, from the future)
        self.refused_predictions = 0

    def observe(self, events: Sequence[PredictionEvent | LabelEvent], now: float | None = None,
                origins: Sequence[tuple[str, int]] | None = None) -> list[Rejection]:
        """Add a batch of events (``origins``: their (topic, offset), for dead letters). Returns the events
        dead-lettered since the last call — refused (undeclared or too many models) or held back for being
        far ahead of the stream and never confirmed — as rejections; they are counted as invalid."""
        self.source.observe(events, now, origins=origins)
        return self.take_dead_letters()

    def reject(self, rejections: Sequence[Rejection], now: float | None = None) -> None:
        """Count invalid events in their model's data quality (``__unknown__`` without a usable model)."""
        self.source.reject(rejections, now)

    def advance(self, now: float | None = None) -> Emission:
        records = self.source.advance(now)
        self.owner.receive([*records, self.source.watermark_record(now)])
        return self.owner.advance()

    def close_all(self, now: float | None = None) -> Emission:
        """End of input: every open window is closed and finalized, in window order (a warm-up profile built
        from one window's rows already bins the next). Events still held back are dead-lettered."""
        self.source.release_all(now)
        out = Out()
        ends: list[float | None] = [*self.source.open_ends()] or [None]
        for end in ends:
            if end is not None:
                self.owner.receive(self.source.close_until(end))
                em = self.owner.finalize_until(end)
            else:  # nothing open: late labels or counts may still rewrite finalized windows
                self.owner.receive(self.source.advance(now))
                em = self.owner.advance()
            out.points.extend(em.points)
            out.alerts.extend(em.alerts)
            out.retrain.extend(em.retrain)
            out.closed.extend(em.closed)
        return out.emission()

    def take_dead_letters(self) -> list[Rejection]:
        """Events the source refused or evicted since the last call, as dead-letter records."""
        out = [Rejection(reason, _json.encode(ev), topic=str(origin[0]) if isinstance(origin, tuple) else "", partition=0,
                         offset=int(origin[1]) if isinstance(origin, tuple) else -1, model=ev.model,
                         timestamp=ev.timestamp)
               for origin, ev, reason in self.source.dead]
        self.refused_predictions += sum(1 for _, ev, _ in self.source.dead if isinstance(ev, PredictionEvent))
        self.source.dead.clear()
        return out

    def late_events(self) -> int:
        """Events that arrived after their windows closed, since start (all models)."""
        return self.source.late_events()

    def pending_labels(self) -> int:
        """Predictions held for the label join and duplicate detection (all models)."""
        return self.source.pending_labels()

    def open_windows(self) -> int:
        return self.source.open_windows()


__all__ = ["OBSERVED", "Monitor", "load_references"]
