"""The figures of the HTML report (:mod:`monitor.report`): one PNG per model (or model version).

Panels share one UTC time axis: alerts and retraining requests on a timeline strip (one row per alert
name), PSI and KS D per feature (thresholds, drifted windows circled), latency p50/p95/p99, error rate,
accuracy / estimated accuracy and events per window. Every alert transition and retraining request is
also a vertical line across the panels (red critical, orange warning, green resolved, purple dashed
retraining). Marks of different kinds at the same window end are drawn side by side, a small fraction of
a window apart, so that one never hides another (:func:`marker_offsets`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.types import EVENT_FEATURE, PREDICTION_FEATURE, SCORE_FEATURE, MetricPoint

if TYPE_CHECKING:
    from matplotlib.axes import Axes

COLOURS = {"critical": "#d62728", "warning": "#ff7f0e", "resolved": "#2ca02c", "retraining": "#9467bd"}
#: colours for data series: none of them is a marker colour, so a feature never looks like an alert
SERIES_COLOURS = ("#1f77b4", "#17becf", "#8c564b", "#7f7f7f", "#bcbd22", "#e377c2", "#393b79", "#637939",
                  "#8c6d31", "#000000", "#6baed6", "#9e9ac8")
DPI = 100
#: marker kinds in the order they are laid out left to right when they share a window end
KINDS = ("critical", "warning", "resolved", "retraining")
#: readable names for the pseudo-features: a thin ``_`` vanishes in a scaled screenshot ("  score  ")
FEATURE_LABELS = {SCORE_FEATURE: "score (model output)", PREDICTION_FEATURE: "prediction (model output)",
                  EVENT_FEATURE: "whole event", "__multivariate__": "all features together (multivariate)"}


def feature_label(name: str) -> str:
    """What the report shows for a feature tag.

    >>> feature_label("__score__"), feature_label("amount")
    ('score (model output)', 'amount')
    """
    return FEATURE_LABELS.get(name, name)


def readable(text: str) -> str:
    """``text`` with every pseudo-feature name replaced by its label (alert summaries name them).

    >>> readable("fraud: __prediction__ drifted (psi=0.3)")
    'fraud: prediction (model output) drifted (psi=0.3)'
    """
    for name, label in FEATURE_LABELS.items():
        text = text.replace(name, label)
    return text


@dataclass(frozen=True, slots=True)
class AlertMark:
    """One alert transition, for the plot markers and the alerts table."""

    time: datetime | None
    status: str
    alertname: str
    model: str
    model_version: str
    feature: str
    severity: str
    summary: str
    #: the alert's segment (``country=PL``); empty: the whole model
    segment: str = ""

    @property
    def kind(self) -> str:
        """``critical``/``warning`` while firing, ``resolved`` once resolved."""
        if self.status == "resolved":
            return "resolved"
        return self.severity if self.severity in COLOURS else "warning"


@dataclass(frozen=True, slots=True)
class RetrainMark:
    """One retraining request, for the plot markers and the retraining table."""

    time: datetime | None
    model: str
    model_version: str
    reason: str
    evidence: str

    kind = "retraining"


@dataclass(frozen=True, slots=True)
class Group:
    """The points one figure shows: one model, optionally narrowed to one model version."""

    model: str
    version: str | None
    points: tuple[MetricPoint, ...]

    @property
    def name(self) -> str:
        return self.model if self.version is None else f"{self.model} (version {self.version})"


def marker_offsets(marks: Iterable[AlertMark | RetrainMark], step_s: float) -> dict[tuple[datetime, str], float]:
    """Seconds to shift each (time, kind) so that different kinds at one time sit side by side.

    Kinds at one window end are spread symmetrically, ``step_s / 8`` apart (``step_s``: the spacing of
    the window ends); a kind alone at its time stays in place.

    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> marks = [AlertMark(t, "firing", "A", "m", "", "", "critical", ""),
    ...          AlertMark(t, "resolved", "B", "m", "", "", "critical", ""),
    ...          RetrainMark(t, "m", "", "drift", "")]
    >>> sorted(marker_offsets(marks, 80.0).values())
    [-10.0, 0.0, 10.0]
    """
    kinds: dict[datetime, set[str]] = defaultdict(set)
    for m in marks:
        if m.time is not None:
            kinds[m.time].add(m.kind)
    out: dict[tuple[datetime, str], float] = {}
    gap = step_s / 8
    for t, present in kinds.items():
        ordered = [k for k in KINDS if k in present]
        for i, k in enumerate(ordered):
            out[(t, k)] = (i - (len(ordered) - 1) / 2) * gap
    return out


# ---------------------------------------------------------------------------------------------- series


def to_datetime(ns: int) -> datetime:
    """Nanoseconds since the epoch → aware UTC datetime."""
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def num(value: object) -> float | None:
    """A numeric field value as float; None for bools, strings and missing values."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def series(points: Iterable[MetricPoint], measurement: str, field: str, by: str | None = None,
           **tags: str) -> dict[str, list[MetricPoint]]:
    """Points of one measurement having numeric ``field``, keyed by tag ``by`` and sorted by time."""
    out: dict[str, list[MetricPoint]] = defaultdict(list)
    for p in points:
        if p.measurement != measurement or any(p.tag(k) != v for k, v in tags.items()):
            continue
        if num(p.field(field)) is None:
            continue
        out[(p.tag(by) or "") if by else field].append(p)
    for pts in out.values():
        pts.sort(key=lambda p: p.time_ns)
    return dict(sorted(out.items()))


def _xy(points: Sequence[MetricPoint], field: str) -> tuple[list[Any], list[float]]:
    xs: list[Any] = []  # datetimes; Any because matplotlib's stubs only name numbers and arrays
    ys: list[float] = []
    for p in points:
        v = num(p.field(field))
        if v is not None:
            xs.append(to_datetime(p.time_ns))
            ys.append(v)
    return xs, ys


def _legend_label(name: str) -> str:
    """matplotlib hides legend labels starting with ``_``; pseudo-features get their readable label."""
    label = feature_label(name)
    return f" {label}" if label.startswith("_") else label


def _step_s(points: Sequence[MetricPoint]) -> float:
    """Spacing of the window ends (smallest gap between point times), 60 s when there is only one."""
    times = sorted({p.time_ns for p in points})
    gaps = [b - a for a, b in pairwise(times) if b > a]
    return min(gaps) / 1e9 if gaps else 60.0


# ---------------------------------------------------------------------------------------------- panels


def _drift_panel(ax: Axes, g: Group, method: str, critical: float | None) -> None:
    drifted_x: list[Any] = []
    drifted_y: list[float] = []
    thresholds: set[float] = set()
    for feature, pts in series(g.points, "drift", "score", by="feature", method=method).items():
        xs, ys = _xy(pts, "score")
        ax.plot(xs, ys, marker=".", linewidth=1.2, markersize=4, label=_legend_label(feature))
        for p in pts:
            thr = num(p.field("threshold"))
            if thr is not None and thr == thr:
                thresholds.add(thr)
            if p.field("drifted") is True:
                drifted_x.append(to_datetime(p.time_ns))
                drifted_y.append(float(num(p.field("score")) or 0.0))
    for i, thr in enumerate(sorted(thresholds)[:3]):
        ax.axhline(thr, color=COLOURS["warning"], linestyle="--", linewidth=1,
                   label=f"warning threshold {thr:g}" if i == 0 else None)
    if critical is not None:
        ax.axhline(critical, color=COLOURS["critical"], linestyle="--", linewidth=1,
                   label=f"critical threshold {critical:g}")
    if drifted_x:
        ax.scatter(drifted_x, drifted_y, s=70, facecolors="none", edgecolors="black", linewidths=1.3,
                   zorder=5, label="drifted window")
    ax.set_ylim(bottom=0)


def _line_panel(ax: Axes, lines: dict[str, tuple[list[MetricPoint], str]], changes: bool = False) -> None:
    """``lines``: legend label → (points, field). With ``changes``, mark ``change_detected`` windows."""
    change_x: list[Any] = []
    change_y: list[float] = []
    for label, (pts, field) in lines.items():
        xs, ys = _xy(pts, field)
        ax.plot(xs, ys, marker=".", linewidth=1.2, markersize=4, label=_legend_label(label))
        if changes:
            for p in pts:
                v = num(p.field(field))
                if p.field("change_detected") is True and v is not None:
                    change_x.append(to_datetime(p.time_ns))
                    change_y.append(v)
    if change_x:
        ax.scatter(change_x, change_y, marker="^", s=60, color="black", zorder=5, label="change detected")


def _panels(g: Group, psi_critical: float) -> list[tuple[str, str, Any]]:
    """(title, y label, draw(ax)) for every data panel that has data."""
    pts = g.points
    out: list[tuple[str, str, Any]] = []
    if series(pts, "drift", "score", method="psi"):
        out.append(("Drift: PSI per feature", "PSI", lambda ax: _drift_panel(ax, g, "psi", psi_critical)))
    if series(pts, "drift", "score", method="ks"):
        out.append(("Drift: KS D per feature", "KS D", lambda ax: _drift_panel(ax, g, "ks", None)))
    latency = {q: (s, q) for q in ("p50", "p95", "p99") if (s := series(pts, "latency", q).get(q))}
    if latency:
        out.append(("Latency", "ms", lambda ax: _line_panel(ax, latency, changes=True)))
    rate = series(pts, "errors", "rate").get("rate")
    errors = {"error rate": (rate, "rate")} if rate else {}
    if errors:
        out.append(("Error rate", "errors / events", lambda ax: _line_panel(ax, errors, changes=True)))
    perf = series(pts, "performance", "value", by="metric")
    shown = {m: (s, "value") for m, s in perf.items() if m in ("accuracy", "estimated_accuracy")}
    if not shown:  # e.g. a regression model: plot whatever metrics exist
        shown = {m: (s, "value") for m, s in perf.items()}
    if shown:
        out.append(("Performance", "value", lambda ax: _line_panel(ax, shown)))
    per_window = series(pts, "throughput", "events").get("events")
    events = {"events": (per_window, "events")} if per_window else {}
    if events:
        out.append(("Events per window", "events", lambda ax: _line_panel(ax, events)))
    return out


_STRIP_MARKERS = {"critical": "^", "warning": "^", "resolved": "v", "retraining": "D"}


def _timeline_strip(ax: Axes, marks: Sequence[AlertMark | RetrainMark], shift: dict[tuple[datetime, str], float]) -> None:
    """One row per alert name (and one for retraining); a marker per transition, ``×n`` when several
    marks of one row and kind share a window end (e.g. one alert name firing for two features)."""
    rows = sorted({m.alertname for m in marks if isinstance(m, AlertMark)})
    if any(isinstance(m, RetrainMark) for m in marks):
        rows.append("retraining request")
    counts: dict[tuple[str, datetime, str], int] = defaultdict(int)
    for m in marks:
        row = m.alertname if isinstance(m, AlertMark) else "retraining request"
        assert m.time is not None
        counts[(row, m.time, m.kind)] += 1
    for (row, t, kind), n in counts.items():
        x: Any = t + timedelta(seconds=shift[(t, kind)])
        y = rows.index(row)
        ax.scatter([x], [y], marker=_STRIP_MARKERS[kind], s=64, color=COLOURS[kind], edgecolors="black",
                   linewidths=0.5, zorder=4)
        if n > 1:
            ax.annotate(f"×{n}", (x, y), xytext=(5, 3), textcoords="offset points", fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.invert_yaxis()


def plot(g: Group, alerts: Sequence[AlertMark], retrain: Sequence[RetrainMark], path: Path,
         psi_critical: float) -> bool:
    """Write the group's figure to ``path``; False when there is nothing to plot."""
    panels = _panels(g, psi_critical)
    if not panels:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    marks: list[AlertMark | RetrainMark] = [*alerts, *retrain]
    shift = marker_offsets(marks, _step_s(g.points))
    strip_rows = len({m.alertname for m in alerts}) + (1 if retrain else 0)
    heights = ([0.45 + 0.28 * strip_rows] if marks else []) + [2.6] * len(panels)
    fig, axes_arr = plt.subplots(len(heights), 1, figsize=(12, 1.2 + sum(heights)), sharex=True, squeeze=False,
                                 layout="constrained", gridspec_kw={"height_ratios": heights})
    axes = [row[0] for row in axes_arr]
    if marks:
        strip, data_axes = axes[0], axes[1:]
        _timeline_strip(strip, marks, shift)
        strip.set_title("Alerts and retraining requests", loc="left", fontsize=10)
        strip.grid(axis="x", alpha=0.3)
    else:
        data_axes = axes
    for ax, (title, ylabel, draw) in zip(data_axes, panels, strict=True):
        ax.set_prop_cycle(color=list(SERIES_COLOURS))
        draw(ax)
        ax.set_title(title, loc="left", fontsize=10)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0), borderaxespad=0, framealpha=0.8)
    for ax in axes:
        for m in marks:
            assert m.time is not None
            x = m.time + timedelta(seconds=shift[(m.time, m.kind)])
            if m.kind == "retraining":  # dashed and thinner, drawn over alerts
                ax.axvline(x, color=COLOURS["retraining"], linestyle=(0, (4, 3)), linewidth=1.4, zorder=2)
            else:
                ax.axvline(x, color=COLOURS[m.kind], alpha=0.7, linewidth=2.2, zorder=1)
        ax.tick_params(labelsize=8)
    marker_labels = (("critical", "alert firing (critical)"), ("warning", "alert firing (warning)"),
                     ("resolved", "alert resolved"))
    handles = [Line2D([], [], color=COLOURS[key], alpha=0.7, linewidth=2.2, label=label)
               for key, label in marker_labels]
    handles.append(Line2D([], [], color=COLOURS["retraining"], linestyle=(0, (4, 3)), linewidth=1.4,
                          label="retraining request"))
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=9, frameon=False,
               title="markers (all panels; several at one window end are drawn side by side)", title_fontsize=9)
    fig.suptitle(f"model {g.name}", fontsize=13)
    locator = mdates.AutoDateLocator(tz=UTC)
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
    axes[-1].set_xlabel("window end (UTC)", fontsize=9)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True
