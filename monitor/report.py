"""Self-contained HTML report with plots from a replay/demo output directory.

Inputs (all optional): ``metrics.lp`` (the points listed in docs/measurements.md),
``alerts.jsonl`` (one Alertmanager v4 payload per line, docs/webhook-verification.md) and ``retraining.jsonl``
(CloudEvents, docs/retraining.md). When the JSONL files are missing, alerts and retraining requests are taken
from the ``alerts`` and ``retraining`` measurements instead.

Output: ``report.html`` (PNGs embedded as base64, so the file can be mailed around) and one PNG per
model — per model *version* when a model has several — in ``plots/``. Each figure shares one UTC time
axis across its panels: PSI and KS D per feature (thresholds, drifted windows marked), latency
p50/p95/p99, error rate, accuracy / estimated accuracy and events per window, with vertical markers for
alerts (red critical, orange warning, green resolved) and retraining requests (purple, dashed).
"""

from __future__ import annotations

import base64
import html
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from monitor.lineprotocol import read_lp
from monitor.types import MetricPoint

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["register", "render_report"]

COLOURS = {"critical": "#d62728", "warning": "#ff7f0e", "resolved": "#2ca02c", "retraining": "#9467bd"}
#: colours for data series: none of them is a marker colour, so a feature never looks like an alert
SERIES_COLOURS = ("#1f77b4", "#17becf", "#8c564b", "#7f7f7f", "#bcbd22", "#e377c2", "#393b79", "#637939",
                  "#8c6d31", "#000000", "#6baed6", "#9e9ac8")
#: PSI critical level when the configuration cannot be read (the shipped defaults: warning 0.1, critical 0.25)
DEFAULT_PSI_CRITICAL = 0.25
DPI = 100
_EPOCH = datetime.fromtimestamp(0, tz=UTC)


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


@dataclass(frozen=True, slots=True)
class RetrainMark:
    """One retraining request, for the plot markers and the retraining table."""

    time: datetime | None
    model: str
    model_version: str
    reason: str
    evidence: str


@dataclass(frozen=True, slots=True)
class _Group:
    """The points one figure shows: one model, optionally narrowed to one model version."""

    model: str
    version: str | None
    points: tuple[MetricPoint, ...]

    @property
    def name(self) -> str:
        return self.model if self.version is None else f"{self.model} (version {self.version})"


# ---------------------------------------------------------------------------------------------- inputs


def _dt(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def _parse_time(value: Any) -> datetime | None:
    """RFC 3339 → aware UTC datetime; None for missing/invalid values and Alertmanager's zero time."""
    if not isinstance(value, str) or not value or value.startswith("0001-"):
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)


def _fmt_time(t: datetime | None) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S UTC") if t is not None else "?"


def _jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Objects of a JSONL file and the number of lines skipped as malformed."""
    if not path.exists():
        return [], 0
    rows: list[dict[str, Any]] = []
    bad = 0
    for line in path.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad += 1
            continue
        if isinstance(obj, dict):
            rows.append(obj)
        else:
            bad += 1
    return rows, bad


def _str_map(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _alerts_from_payloads(payloads: Iterable[dict[str, Any]]) -> list[AlertMark]:
    out: list[AlertMark] = []
    for payload in payloads:
        alerts = payload.get("alerts")
        for a in alerts if isinstance(alerts, list) else []:
            if not isinstance(a, dict):
                continue
            labels, notes = _str_map(a.get("labels")), _str_map(a.get("annotations"))
            status = str(a.get("status") or payload.get("status") or "firing")
            t = _parse_time(a.get("endsAt")) if status == "resolved" else None
            out.append(AlertMark(t or _parse_time(a.get("startsAt")), status, labels.get("alertname", ""),
                                 labels.get("model", ""), labels.get("model_version", ""),
                                 labels.get("feature", ""), labels.get("severity", ""),
                                 notes.get("summary", "")))
    return out


def _evidence_text(evidence: Any) -> str:
    if isinstance(evidence, str):
        return evidence
    if not isinstance(evidence, list):
        return ""
    parts = []
    for e in evidence:
        if isinstance(e, dict):
            score, thr = e.get("score"), e.get("threshold")
            s = f"{e.get('feature', '?')} {e.get('method', '?')}"
            if isinstance(score, int | float):
                s += f"={score:.3g}"
            if isinstance(thr, int | float):
                s += f" (threshold {thr:.3g})"
            parts.append(s)
        else:
            parts.append(str(e))
    return ", ".join(parts)


def _retraining_from_events(events: Iterable[dict[str, Any]]) -> list[RetrainMark]:
    out: list[RetrainMark] = []
    for ev in events:
        data = ev.get("data")
        data = data if isinstance(data, dict) else {}
        out.append(RetrainMark(_parse_time(ev.get("time")), str(data.get("model") or ev.get("subject") or ""),
                               str(data.get("model_version") or ""), str(data.get("reason") or ""),
                               _evidence_text(data.get("evidence"))))
    return out


def _alerts_from_points(points: Sequence[MetricPoint]) -> list[AlertMark]:
    out = []
    for p in points:
        if p.measurement == "alerts":
            status = "firing" if p.field("firing") in (1, True) else "resolved"
            out.append(AlertMark(_dt(p.time_ns), status, p.tag("alertname") or "", p.tag("model") or "",
                                 p.tag("model_version") or "", p.tag("feature") or "",
                                 p.tag("severity") or "", ""))
    return out


def _retraining_from_points(points: Sequence[MetricPoint]) -> list[RetrainMark]:
    out = []
    for p in points:
        if p.measurement == "retraining":
            ev = p.field("evidence")
            out.append(RetrainMark(_dt(p.time_ns), p.tag("model") or "", p.tag("model_version") or "",
                                   p.tag("reason") or "", ev if isinstance(ev, str) else ""))
    return out


def _psi_critical() -> float:
    try:
        from monitor.config import PolicyConfig

        return float(PolicyConfig().methods["psi"].critical)
    except Exception:  # noqa: BLE001 — the report must render even if the config model changes
        return DEFAULT_PSI_CRITICAL


def _groups(points: Sequence[MetricPoint]) -> list[_Group]:
    by_model: dict[str, list[MetricPoint]] = defaultdict(list)
    for p in points:
        model = p.tag("model")
        if model:
            by_model[model].append(p)
    groups: list[_Group] = []
    for model in sorted(by_model):
        pts = by_model[model]
        versions = sorted({p.tag("model_version") or "" for p in pts})
        if len(versions) <= 1:
            groups.append(_Group(model, None, tuple(pts)))
            continue
        for v in versions:
            groups.append(_Group(model, v, tuple(p for p in pts if (p.tag("model_version") or "") == v)))
    return groups


def _for_group(marks: Sequence[AlertMark] | Sequence[RetrainMark], g: _Group) -> list[Any]:
    """Marks of the group's model (and version, when the mark names one)."""
    return [m for m in marks if m.model == g.model and m.time is not None
            and (g.version is None or not m.model_version or m.model_version == g.version)]


# ---------------------------------------------------------------------------------------------- plots

#: x values are datetimes; typed Any because matplotlib's stubs only name numbers and arrays
_XY = tuple[list[Any], list[float]]


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _series(points: Iterable[MetricPoint], measurement: str, field: str, by: str | None = None,
            **tags: str) -> dict[str, list[MetricPoint]]:
    """Points of one measurement having numeric ``field``, keyed by tag ``by`` and sorted by time."""
    out: dict[str, list[MetricPoint]] = defaultdict(list)
    for p in points:
        if p.measurement != measurement or any(p.tag(k) != v for k, v in tags.items()):
            continue
        if _num(p.field(field)) is None:
            continue
        out[(p.tag(by) or "") if by else field].append(p)
    for pts in out.values():
        pts.sort(key=lambda p: p.time_ns)
    return dict(sorted(out.items()))


def _xy(points: Sequence[MetricPoint], field: str) -> _XY:
    xs: list[Any] = []
    ys: list[float] = []
    for p in points:
        v = _num(p.field(field))
        if v is not None:
            xs.append(_dt(p.time_ns))
            ys.append(v)
    return xs, ys


def _legend_label(name: str) -> str:
    """matplotlib hides labels starting with ``_`` (``__prediction__``); a leading space keeps them."""
    return f" {name}" if name.startswith("_") else name


def _drift_panel(ax: Axes, g: _Group, method: str, critical: float | None) -> None:
    series = _series(g.points, "drift", "score", by="feature", method=method)
    drifted_x: list[Any] = []
    drifted_y: list[float] = []
    thresholds: set[float] = set()
    for feature, pts in series.items():
        xs, ys = _xy(pts, "score")
        ax.plot(xs, ys, marker=".", linewidth=1.2, markersize=4, label=_legend_label(feature))
        for p in pts:
            thr = _num(p.field("threshold"))
            if thr is not None and thr == thr:
                thresholds.add(thr)
            if p.field("drifted") is True:
                drifted_x.append(_dt(p.time_ns))
                drifted_y.append(float(_num(p.field("score")) or 0.0))
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


def _line_panel(ax: Axes, series: dict[str, tuple[list[MetricPoint], str]], changes: bool = False) -> None:
    """``series``: legend label → (points, field). With ``changes``, mark ``change_detected`` windows."""
    change_x: list[Any] = []
    change_y: list[float] = []
    for label, (pts, field) in series.items():
        xs, ys = _xy(pts, field)
        ax.plot(xs, ys, marker=".", linewidth=1.2, markersize=4, label=_legend_label(label))
        if changes:
            for p in pts:
                v = _num(p.field(field))
                if p.field("change_detected") is True and v is not None:
                    change_x.append(_dt(p.time_ns))
                    change_y.append(v)
    if change_x:
        ax.scatter(change_x, change_y, marker="^", s=60, color="black", zorder=5, label="change detected")


def _panels(g: _Group, psi_critical: float) -> list[tuple[str, str, Any]]:
    """(title, y label, draw(ax)) for every panel that has data."""
    pts = g.points
    out: list[tuple[str, str, Any]] = []
    if _series(pts, "drift", "score", method="psi"):
        out.append(("Drift: PSI per feature", "PSI", lambda ax: _drift_panel(ax, g, "psi", psi_critical)))
    if _series(pts, "drift", "score", method="ks"):
        out.append(("Drift: KS D per feature", "KS D", lambda ax: _drift_panel(ax, g, "ks", None)))
    latency = {q: (s, q) for q in ("p50", "p95", "p99") if (s := _series(pts, "latency", q).get(q))}
    if latency:
        out.append(("Latency", "ms", lambda ax: _line_panel(ax, latency, changes=True)))
    rate = _series(pts, "errors", "rate").get("rate")
    errors = {"error rate": (rate, "rate")} if rate else {}
    if errors:
        out.append(("Error rate", "errors / events", lambda ax: _line_panel(ax, errors, changes=True)))
    perf = _series(pts, "performance", "value", by="metric")
    shown = {m: (s, "value") for m, s in perf.items() if m in ("accuracy", "estimated_accuracy")}
    if not shown:  # e.g. a regression model: plot whatever metrics exist
        shown = {m: (s, "value") for m, s in perf.items()}
    if shown:
        out.append(("Performance", "value", lambda ax: _line_panel(ax, shown)))
    per_window = _series(pts, "throughput", "events").get("events")
    events = {"events": (per_window, "events")} if per_window else {}
    if events:
        out.append(("Events per window", "events", lambda ax: _line_panel(ax, events)))
    return out


def _plot(g: _Group, alerts: Sequence[AlertMark], retrain: Sequence[RetrainMark], path: Path,
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

    fig, axes_arr = plt.subplots(len(panels), 1, figsize=(12, 1.2 + 2.6 * len(panels)), sharex=True,
                                 squeeze=False, layout="constrained")
    axes = [row[0] for row in axes_arr]
    for ax, (title, ylabel, draw) in zip(axes, panels, strict=True):
        ax.set_prop_cycle(color=list(SERIES_COLOURS))
        draw(ax)
        for a in alerts:
            resolved = a.status == "resolved"
            colour = COLOURS["resolved"] if resolved else COLOURS.get(a.severity, COLOURS["warning"])
            ax.axvline(a.time, color=colour, alpha=0.7, linewidth=2.2, zorder=1)
        for r in retrain:  # drawn over alerts, dashed and thinner, so an alert at the same time shows
            ax.axvline(r.time, color=COLOURS["retraining"], linestyle=(0, (4, 3)), linewidth=1.4, zorder=2)
        ax.set_title(title, loc="left", fontsize=10)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.005, 1.0), borderaxespad=0, framealpha=0.8)
    marker_labels = (("critical", "alert firing (critical)"), ("warning", "alert firing (warning)"),
                     ("resolved", "alert resolved"))
    markers = [Line2D([], [], color=COLOURS[key], alpha=0.7, linewidth=2.2, label=label)
               for key, label in marker_labels]
    markers.append(Line2D([], [], color=COLOURS["retraining"], linestyle=(0, (4, 3)), linewidth=1.4,
                          label="retraining request"))
    fig.legend(handles=markers, loc="outside lower center", ncol=4, fontsize=9, frameon=False,
               title="markers (all panels)", title_fontsize=9)
    fig.suptitle(f"model {g.name}", fontsize=13)
    locator = mdates.AutoDateLocator(tz=UTC)
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
    axes[-1].set_xlabel("window end (UTC)", fontsize=9)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------------------------- HTML


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]],
           row_class: Sequence[str] | None = None) -> str:
    """An HTML table with every cell escaped; ``row_class`` gives each row's CSS class."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f" class=\"{html.escape(row_class[i])}\"" if row_class and row_class[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    if not body:
        return "<p class=\"empty\">none</p>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _drift_summary(g: _Group) -> str:
    """Per feature: windows with any drifted statistic / windows with drift points, max PSI, max KS D."""
    windows: dict[str, set[int]] = defaultdict(set)
    drifted: dict[str, set[int]] = defaultdict(set)
    max_score: dict[tuple[str, str], float] = {}
    for p in g.points:
        if p.measurement != "drift":
            continue
        feature, method = p.tag("feature") or "", p.tag("method") or ""
        windows[feature].add(p.time_ns)
        if p.field("drifted") is True:
            drifted[feature].add(p.time_ns)
        score = _num(p.field("score"))
        if score is not None and score == score:
            max_score[(feature, method)] = max(score, max_score.get((feature, method), score))
    if not windows:
        return "<p class=\"empty\">no drift measurements</p>"

    def fmt(key: tuple[str, str]) -> str:
        return f"{max_score[key]:.3g}" if key in max_score else "–"

    rows = [(f, f"{len(drifted[f])} / {len(windows[f])}", fmt((f, "psi")), fmt((f, "ks")))
            for f in sorted(windows)]
    classes = ["drifted" if drifted[f] else "" for f in sorted(windows)]
    summary = [p for p in g.points if p.measurement == "drift_summary"]
    note = ""
    if summary:
        hit = sum(1 for p in summary if (_num(p.field("drifted_features")) or 0) > 0)
        note = f"<p>{hit} of {len(summary)} windows had at least one drifted feature (drift_summary).</p>"
    return note + _table(["feature", "windows drifted / total", "max PSI", "max KS D"], rows, classes)


_CSS = ("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1250px;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
        "font-size:13px;text-align:left}th{background:#f4f4f4}tr.critical td{color:#d62728}"
        "tr.warning td{color:#c56000}tr.resolved td{color:#2ca02c}tr.drifted td{background:#fff3e0}"
        "img{max-width:100%;height:auto;border:1px solid #eee}.empty{color:#888}")


def _png_name(name: str, used: set[str]) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:80] or "model"
    candidate, i = f"{slug}.png", 2
    while candidate in used:
        candidate, i = f"{slug}-{i}.png", i + 1
    used.add(candidate)
    return candidate


def render_report(out_dir: Path, *, title: str = "Driftline report",
                  points: Sequence[MetricPoint] | None = None) -> Path:
    """Render ``out_dir/report.html`` and ``out_dir/plots/*.png``; returns the HTML path.

    ``points`` replaces ``out_dir/metrics.lp`` when given (e.g. points kept in memory by the demo).
    Missing inputs are fine: the report then says what it could not show.
    """
    out_dir = Path(out_dir)
    lp = out_dir / "metrics.lp"
    pts = list(points) if points is not None else (read_lp(lp) if lp.exists() else [])
    payloads, bad_alerts = _jsonl(out_dir / "alerts.jsonl")
    events, bad_retrain = _jsonl(out_dir / "retraining.jsonl")
    alerts = (_alerts_from_payloads(payloads) if (out_dir / "alerts.jsonl").exists()
              else _alerts_from_points(pts))
    retrain = (_retraining_from_events(events) if (out_dir / "retraining.jsonl").exists()
               else _retraining_from_points(pts))
    alerts.sort(key=lambda a: a.time or _EPOCH)
    retrain.sort(key=lambda r: r.time or _EPOCH)
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    groups = _groups(pts)
    psi_critical = _psi_critical()

    esc = html.escape
    fired = sum(a.status == "firing" for a in alerts)
    resolved = sum(a.status == "resolved" for a in alerts)
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
             f"<style>{_CSS}</style></head><body>", f"<h1>{esc(title)}</h1>",
             f"<p>{len(pts):,} points, {len(groups)} model(s)/version(s), {fired} alert(s) fired, {resolved} "
             f"resolved, {len(retrain)} retraining request(s).</p>"]
    if bad_alerts or bad_retrain:
        parts.append(f"<p class=\"empty\">skipped malformed lines: alerts.jsonl {bad_alerts}, "
                     f"retraining.jsonl {bad_retrain}</p>")
    if not groups:
        parts.append("<p class=\"empty\">no model metrics found</p>")
    used: set[str] = set()
    for g in groups:
        parts.append(f"<h2>{esc(g.name)}</h2>")
        png = plots / _png_name(g.model if g.version is None else f"{g.model}-{g.version}", used)
        if _plot(g, _for_group(alerts, g), _for_group(retrain, g), png, psi_critical):
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            parts.append(f"<img src=\"data:image/png;base64,{data}\" alt=\"{esc('plots for ' + g.name)}\">")
        else:
            parts.append("<p class=\"empty\">no plottable measurements</p>")
        parts.append("<h3>Drift per feature</h3>")
        parts.append(_drift_summary(g))
    parts.append("<h2>Alerts timeline</h2>")
    parts.append(_table(["time", "status", "alertname", "model", "feature", "severity", "summary"],
                        [(_fmt_time(a.time), a.status, a.alertname,
                          a.model + (f" v{a.model_version}" if a.model_version else ""), a.feature,
                          a.severity, a.summary) for a in alerts],
                        ["resolved" if a.status == "resolved" else a.severity for a in alerts]))
    parts.append("<h2>Retraining requests</h2>")
    parts.append(_table(["time", "model", "reason", "evidence"],
                        [(_fmt_time(r.time), r.model + (f" v{r.model_version}" if r.model_version else ""),
                          r.reason, r.evidence) for r in retrain]))
    parts.append("</body></html>")
    out = out_dir / "report.html"
    out.write_text("\n".join(parts), encoding="utf-8")
    return out


def register(app: typer.Typer) -> None:
    """Add ``report DIR [--title]`` to the main CLI."""

    @app.command("report")
    def report(
        out_dir: Annotated[Path, typer.Argument(
            help="A replay/demo output directory (metrics.lp, alerts.jsonl…).", metavar="DIR",
            exists=True, file_okay=False)],
        title: Annotated[str, typer.Option(help="Report title.")] = "Driftline report",
    ) -> None:
        """Render an HTML report with plots from a replay or demo output directory."""
        typer.echo(str(render_report(out_dir, title=title)))
