"""HTML report with plots from a replay/demo output directory (``metrics.lp``, ``alerts.jsonl``,
``retraining.jsonl``): drift per feature with thresholds, latency percentiles, error rate, accuracy,
events per window, with alert and retraining markers."""

from __future__ import annotations

import base64
import html
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from monitor.lineprotocol import read_lp
from monitor.types import MetricPoint

MARKERS = {"critical": "#d62728", "warning": "#ff7f0e", "resolved": "#2ca02c", "retraining": "#9467bd"}


def _dt(ns: int | float) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def _events(out_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    alerts = []
    for payload in _jsonl(out_dir / "alerts.jsonl"):
        for a in payload.get("alerts", []):
            t = _parse_time(a["endsAt"] if a.get("status") == "resolved" else a.get("startsAt", ""))
            alerts.append({**a, "time": t})
    retrain = []
    for ev in _jsonl(out_dir / "retraining.jsonl"):
        data = ev.get("data", {})
        retrain.append({"time": _parse_time(ev.get("time", "")), "model": data.get("model"),
                        "reason": data.get("reason"), "evidence": data.get("evidence", [])})
    return alerts, retrain


Series = dict[str, list[tuple[datetime, float]]]


def _series(points: Sequence[MetricPoint], measurement: str, field: str, **tags: str) -> Series:
    """``{label: [(time, value)…]}`` grouped by the tags not fixed in ``tags``."""
    out: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for p in points:
        if p.measurement != measurement or any(p.tag(k) != v for k, v in tags.items()):
            continue
        value = p.field(field)
        if isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        label = ",".join(f"{k}={v2}" for k, v2 in p.tags if k not in tags and k not in ("window", "model_version"))
        out[label].append((_dt(p.time_ns), float(value)))
    for pts in out.values():
        pts.sort()
    return out


def _plot_model(model: str, points: Sequence[MetricPoint], alerts: list[dict[str, Any]],
                retrain: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    panels = [
        ("Drift: PSI per feature", "drift", "score", {"model": model, "method": "psi"}, "psi"),
        ("Drift: KS statistic per feature", "drift", "score", {"model": model, "method": "ks"}, "ks"),
        ("Latency (ms)", "latency", None, {"model": model}, None),
        ("Error rate", "errors", "rate", {"model": model}, None),
        ("Accuracy", "performance", "value", {"model": model}, None),
        ("Events per window", "throughput", "events", {"model": model}, None),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.0 * len(panels)), sharex=True)
    for ax, (title, meas, field, tags, method) in zip(axes, panels, strict=True):
        if meas == "latency":
            for q in ("p50", "p95", "p99"):
                for _, pts in _series(points, "latency", q, **tags).items():
                    ax.plot([t for t, _ in pts], [v for _, v in pts], marker=".", label=q)
        else:
            assert field is not None
            series = _series(points, meas, field, **tags)
            for label, pts in sorted(series.items()):
                name = label.replace("feature=", "").replace("metric=", "")
                ax.plot([t for t, _ in pts], [v for _, v in pts], marker=".", linewidth=1.2, label=name)
            if method is not None:
                thr = _series(points, "drift", "threshold", **tags)
                levels = sorted({v for pts in thr.values() for _, v in pts})
                for lv in levels[:1]:
                    ax.axhline(lv, color=MARKERS["warning"], linestyle="--", linewidth=1, label=f"threshold {lv:g}")
                if method == "psi":
                    ax.axhline(0.25, color=MARKERS["critical"], linestyle="--", linewidth=1, label="critical 0.25")
                    ax.set_yscale("symlog", linthresh=0.1)
                    ax.set_ylim(bottom=0)
        for a in alerts:
            if a.get("labels", {}).get("model") != model or a["time"] is None:
                continue
            colour = MARKERS["resolved"] if a["status"] == "resolved" else MARKERS.get(
                a["labels"].get("severity", "warning"), MARKERS["warning"])
            ax.axvline(a["time"], color=colour, alpha=0.35, linewidth=1)
        for r in retrain:
            if r["model"] == model and r["time"] is not None:
                ax.axvline(r["time"], color=MARKERS["retraining"], linestyle=":", linewidth=2)
        ax.set_title(title, loc="left", fontsize=10)
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            ax.legend(handles, labels, fontsize=7, ncol=4, loc="upper left", framealpha=0.7)
    from matplotlib.lines import Line2D

    axes[0].legend(handles=[*axes[0].get_legend_handles_labels()[0],
                            Line2D([], [], color=MARKERS["critical"], alpha=0.5, label="alert critical"),
                            Line2D([], [], color=MARKERS["warning"], alpha=0.5, label="alert warning"),
                            Line2D([], [], color=MARKERS["resolved"], alpha=0.5, label="resolved"),
                            Line2D([], [], color=MARKERS["retraining"], linestyle=":", label="retraining")],
                   fontsize=7, ncol=5, loc="upper left", framealpha=0.7)
    axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M:%S", tz=UTC))
    axes[-1].set_xlabel("window end (UTC)")
    fig.suptitle(f"model {model}", fontsize=13)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def render_report(out_dir: Path, *, title: str = "Driftline report",
                  points: Sequence[MetricPoint] | None = None) -> Path:
    """Write ``out_dir/report.html`` (self-contained) and ``out_dir/plots/<model>.png``."""
    lp = out_dir / "metrics.lp"
    pts = list(points) if points is not None else (read_lp(lp) if lp.exists() else [])
    alerts, retrain = _events(out_dir)
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    models = sorted({p.tag("model") or "" for p in pts if p.tag("model")})
    parts = [f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
             "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}th{background:#f4f4f4}"
             ".critical{color:#d62728}.warning{color:#ff7f0e}.resolved{color:#2ca02c}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             f"<p>{len(pts):,} points, {len(models)} model(s), {sum(a['status'] == 'firing' for a in alerts)} alerts "
             f"fired, {len(retrain)} retraining request(s).</p>"]
    for model in models:
        png = plots / f"{model.replace('/', '_')}.png"
        _plot_model(model, pts, alerts, retrain, png)
        data = base64.b64encode(png.read_bytes()).decode()
        parts.append(f"<h2>{html.escape(model)}</h2><img src=\"data:image/png;base64,{data}\" width='100%'>")
        parts.append(_drift_table(model, pts))
    parts.append("<h2>Alerts</h2><table><tr><th>time</th><th>status</th><th>alert</th><th>model</th>"
                 "<th>feature</th><th>severity</th><th>summary</th></tr>")
    for a in sorted(alerts, key=lambda x: x["time"] or datetime.min.replace(tzinfo=UTC)):
        lab = a.get("labels", {})
        cls = "resolved" if a["status"] == "resolved" else lab.get("severity", "")
        parts.append("<tr>" + "".join(f"<td class='{html.escape(cls)}'>{html.escape(str(x))}</td>" for x in (
            a["time"], a["status"], lab.get("alertname", ""), lab.get("model", ""), lab.get("feature", ""),
            lab.get("severity", ""), a.get("annotations", {}).get("summary", ""))) + "</tr>")
    parts.append("</table><h2>Retraining requests</h2><table><tr><th>time</th><th>model</th><th>reason</th>"
                 "<th>evidence</th></tr>")
    for r in retrain:
        ev = ", ".join(f"{e.get('feature')} {e.get('method')}={e.get('score', 0):.3g}" for e in r["evidence"])
        parts.append("<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in (r["time"], r["model"], r["reason"],
                                                                               ev)) + "</tr>")
    parts.append("</table></body></html>")
    out = out_dir / "report.html"
    out.write_text("\n".join(parts), encoding="utf-8")
    return out


def _drift_table(model: str, pts: Sequence[MetricPoint]) -> str:
    stats: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for p in pts:
        if p.measurement == "drift" and p.tag("model") == model and p.tag("method") == "psi":
            s = stats[p.tag("feature") or ""]
            s[0] += 1
            s[1] += 1 if p.field("drifted") is True else 0
            score = p.field("score")
            if isinstance(score, float):
                s[2] = max(s[2], score)
    rows = "".join(f"<tr><td>{html.escape(f)}</td><td>{int(d)}/{int(n)}</td><td>{mx:.3g}</td></tr>"
                   for f, (n, d, mx) in sorted(stats.items()))
    return f"<table><tr><th>feature</th><th>windows drifted</th><th>max PSI</th></tr>{rows}</table>"


def register(app: typer.Typer) -> None:
    @app.command()
    def report(
        out_dir: Annotated[Path, typer.Argument(help="A replay/demo output directory (metrics.lp, alerts.jsonl…).")],
        title: Annotated[str, typer.Option(help="Report title.")] = "Driftline report",
    ) -> None:
        """Render an HTML report with plots from a replay or demo output directory."""
        path = render_report(out_dir, title=title)
        typer.echo(str(path))
