"""``monitor replay``: the streaming pipeline over a JSON-lines file, no Kafka.

Reads prediction and label events in time order in chunks, feeds :class:`~monitor.pipeline.Monitor`,
advances the event-time watermark after every chunk, and writes ``metrics.lp`` (line protocol, one
point per series and window end — a late-label rewrite replaces the earlier line), ``alerts.jsonl``
(one Alertmanager v4 payload per notification), ``retraining.jsonl`` (CloudEvents) and ``dlq.jsonl``
(rejected lines with their reason).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from monitor.adapters.amformat import webhook_payloads
from monitor.adapters.lpfile import LineProtocolFileSink
from monitor.config import MonitorSettings
from monitor.core.reference import ReferenceProfile
from monitor.events import DecodeOptions, decode_any, strip_bom
from monitor.pipeline import Monitor
from monitor.types import Emission, LabelEvent, PredictionEvent, Rejection

CHUNK = 5_000


@dataclass
class ReplaySummary:
    events: int = 0
    labels: int = 0
    rejected: int = 0
    windows: Counter[str] = field(default_factory=Counter)
    points: int = 0
    alerts_firing: int = 0
    alerts_resolved: int = 0
    retraining: int = 0
    drifted_windows: Counter[str] = field(default_factory=Counter)
    alertnames: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0


class _Writers:
    def __init__(self, out: Path, settings: MonitorSettings) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.metrics = LineProtocolFileSink(out / "metrics.lp")
        self.alerts = (out / "alerts.jsonl").open("wb")
        self.retraining = (out / "retraining.jsonl").open("wb")
        self.dlq = (out / "dlq.jsonl").open("wb")

    def emit(self, em: Emission, summary: ReplaySummary) -> None:
        if em.points:
            self.metrics.add(em.points)
            summary.points += len(em.points)
        for model, _version, _rng in em.closed:
            summary.windows[model] += 1
        for p in em.points:
            if p.measurement == "drift_summary" and (p.field("drifted_features") or 0):
                summary.drifted_windows[p.tag("model") or ""] += 1
        if em.alerts:
            for payload in webhook_payloads(em.alerts, receiver="replay",
                                            external_url=self.settings.external_url):
                self.alerts.write(orjson.dumps(payload) + b"\n")
            for a in em.alerts:
                if a.status == "firing":
                    summary.alerts_firing += 1
                    summary.alertnames[a.labels["alertname"]] += 1
                else:
                    summary.alerts_resolved += 1
        for r in em.retrain:
            self.retraining.write(orjson.dumps(r.to_cloudevent(self.settings.source)) + b"\n")
            summary.retraining += 1

    def reject(self, rejections: list[Rejection]) -> None:
        now = time.time()
        for r in rejections:
            self.dlq.write(orjson.dumps(r.to_dlq(now)) + b"\n")

    def close(self) -> None:
        self.metrics.flush()
        for f in (self.alerts, self.retraining, self.dlq):
            f.close()


def replay_file(
    events_path: Path,
    references: Mapping[str, ReferenceProfile],
    out_dir: Path,
    settings: MonitorSettings,
    progress: Callable[[int], None] | None = None,
) -> ReplaySummary:
    """Replay ``events_path`` through the pipeline into ``out_dir``. ``progress(bytes_read)`` is called per chunk."""
    started = time.perf_counter()
    monitor = Monitor(settings, references)
    writers = _Writers(out_dir, settings)
    summary = ReplaySummary()
    options = DecodeOptions.from_settings(settings)
    try:
        with events_path.open("rb") as fh:
            batch: list[PredictionEvent | LabelEvent] = []
            origins: list[tuple[str, int]] = []
            rejected: list[Rejection] = []
            read = 0
            for lineno, line in enumerate(fh):
                read += len(line)
                raw = strip_bom(line.strip())
                if not raw:
                    continue
                ev = decode_any(raw, topic=str(events_path.name), partition=0, offset=lineno, options=options)
                if isinstance(ev, Rejection):
                    rejected.append(ev)
                else:
                    batch.append(ev)
                    origins.append((events_path.name, lineno))
                if len(batch) + len(rejected) >= CHUNK:
                    _step(monitor, writers, summary, batch, origins, rejected)
                    batch, origins, rejected = [], [], []
                    if progress is not None:
                        progress(read)
            _step(monitor, writers, summary, batch, origins, rejected)
            if progress is not None:
                progress(read)
        writers.emit(monitor.close_all(), summary)
        _dead_letters(monitor, writers, summary)
    finally:
        writers.close()
    summary.seconds = time.perf_counter() - started
    return summary


def _step(monitor: Monitor, writers: _Writers, summary: ReplaySummary, batch: list[PredictionEvent | LabelEvent],
          origins: list[tuple[str, int]], rejected: list[Rejection]) -> None:
    if rejected:
        monitor.reject(rejected)
        writers.reject(rejected)
        summary.rejected += len(rejected)
    if batch:
        monitor.observe(batch, origins=origins)
        n_labels = sum(1 for e in batch if isinstance(e, LabelEvent))
        summary.labels += n_labels
        summary.events += len(batch) - n_labels
    writers.emit(monitor.advance(), summary)
    _dead_letters(monitor, writers, summary)


def _dead_letters(monitor: Monitor, writers: _Writers, summary: ReplaySummary) -> None:
    """Events the pipeline dead-lettered after decoding (refused models, events from the future)."""
    before = monitor.refused_predictions
    dead = monitor.take_dead_letters()
    if dead:
        writers.reject(dead)
        summary.rejected += len(dead)
        summary.events -= monitor.refused_predictions - before
