"""Self-contained HTML report with plots from a replay/demo output directory.

Inputs (all optional): ``metrics.lp`` (the points listed in docs/measurements.md),
``alerts.jsonl`` (one Alertmanager v4 payload per line, docs/webhook-verification.md) and ``retraining.jsonl``
(CloudEvents, docs/retraining.md). When the JSONL files are missing, alerts and retraining requests are taken
from the ``alerts`` and ``retraining`` measurements instead.

Output: ``report.html`` (PNGs embedded as base64, so the file can be mailed around) and one PNG per
model — per model *version* when a model has several — in ``plots/`` (the figures: :mod:`monitor.report_plots`),
each followed by its per-feature drift table (against the training profile: points with a ``baseline`` tag are
left out) and its segments (:mod:`monitor.report_segments`), then the alerts timeline and the retraining requests.
Pseudo-features are shown by name (``score (model output)`` for ``__score__``), model versions in a
column of their own.
"""

from __future__ import annotations

import base64
import html
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from monitor.lineprotocol import read_lp
from monitor.report_plots import (
    AlertMark,
    Group,
    RetrainMark,
    feature_label,
    num,
    plot,
    readable,
    to_datetime,
)
from monitor.report_segments import section as segments_section
from monitor.report_segments import without_segments
from monitor.types import PREDICTION_FEATURE, SCORE_FEATURE, MetricPoint

__all__ = ["register", "render_report"]

#: PSI critical level when the configuration cannot be read (the shipped defaults: warning 0.1, critical 0.25)
DEFAULT_PSI_CRITICAL = 0.25
_EPOCH = datetime.fromtimestamp(0, tz=UTC)


# ---------------------------------------------------------------------------------------------- inputs


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
                                 notes.get("summary", ""), labels.get("segment", "")))
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
            seg = f" [{e['segment']}]" if e.get("segment") else ""
            s = f"{e.get('feature', '?')}{seg} {e.get('method', '?')}"
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
            out.append(AlertMark(to_datetime(p.time_ns), status, p.tag("alertname") or "", p.tag("model") or "",
                                 p.tag("model_version") or "", p.tag("feature") or "",
                                 p.tag("severity") or "", "", p.tag("segment") or ""))
    return out


def _retraining_from_points(points: Sequence[MetricPoint]) -> list[RetrainMark]:
    out = []
    for p in points:
        if p.measurement == "retraining":
            ev = p.field("evidence")
            out.append(RetrainMark(to_datetime(p.time_ns), p.tag("model") or "", p.tag("model_version") or "",
                                   p.tag("reason") or "", ev if isinstance(ev, str) else ""))
    return out


def _psi_critical() -> float:
    try:
        from monitor.config import PolicyConfig

        return float(PolicyConfig().methods["psi"].critical)
    except Exception:  # noqa: BLE001 — the report must render even if the config model changes
        return DEFAULT_PSI_CRITICAL


def _decision_methods() -> list[str]:
    try:
        from monitor.config import PolicyConfig

        return list(PolicyConfig().decision_methods)
    except Exception:  # noqa: BLE001 — the report must render even if the config model changes
        return ["psi", "ks", "chi2"]


def _groups(points: Sequence[MetricPoint]) -> list[Group]:
    """One group per model (per version when a model has several) of the whole model's points."""
    by_model: dict[str, list[MetricPoint]] = defaultdict(list)
    for p in without_segments(points):
        model = p.tag("model")
        if model:
            by_model[model].append(p)
    groups: list[Group] = []
    for model in sorted(by_model):
        pts = by_model[model]
        versions = sorted({p.tag("model_version") or "" for p in pts})
        if len(versions) <= 1:
            groups.append(Group(model, None, tuple(pts)))
            continue
        for v in versions:
            groups.append(Group(model, v, tuple(p for p in pts if (p.tag("model_version") or "") == v)))
    return groups


def _for_group(marks: Sequence[AlertMark] | Sequence[RetrainMark], g: Group) -> list[Any]:
    """Marks of the group's model (and version, when the mark names one); a segment's alerts go with the
    segment's figure (:mod:`monitor.report_segments`)."""
    return [m for m in marks if m.model == g.model and m.time is not None and not getattr(m, "segment", "")
            and (g.version is None or not m.model_version or m.model_version == g.version)]


# ---------------------------------------------------------------------------------------------- HTML


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]],
           row_class: Sequence[str] | None = None, table_id: str = "") -> str:
    """An HTML table with every cell escaped; ``row_class`` gives each row's CSS class."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f" class=\"{html.escape(row_class[i])}\"" if row_class and row_class[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    if not body:
        return "<p class=\"empty\">none</p>"
    tid = f" id=\"{html.escape(table_id)}\"" if table_id else ""
    return f"<table{tid}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _drift_summary(g: Group, table_id: str) -> str:
    """Per feature (and ``__multivariate__``): windows the policy flagged (``drifted``) / windows with drift
    points, max PSI, max KS D, max mean PCA reconstruction error."""
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
        score = num(p.field("score"))
        if score is not None and score == score:
            max_score[(feature, method)] = max(score, max_score.get((feature, method), score))
    if not windows:
        return "<p class=\"empty\">no drift measurements</p>"

    def fmt(key: tuple[str, str]) -> str:
        return f"{max_score[key]:.3g}" if key in max_score else "–"

    rows = [(feature_label(f), f"{len(drifted[f])} / {len(windows[f])}", fmt((f, "psi")), fmt((f, "ks")),
             fmt((f, "pca_recon")))
            for f in sorted(windows)]
    classes = ["drifted" if drifted[f] else "" for f in sorted(windows)]
    summary = [p for p in g.points if p.measurement == "drift_summary"]
    note = ""
    if summary:
        hit = sum(1 for p in summary if (num(p.field("drifted_features")) or 0) > 0)
        note = f"<p>{hit} of {len(summary)} windows had at least one drifted feature (drift_summary).</p>"
    pseudo = [f for f in (SCORE_FEATURE, PREDICTION_FEATURE) if f in windows]
    if pseudo:
        note += ("<p class=\"note\">" + "; ".join(f"{html.escape(feature_label(f))}: the drift of the model's "
                                                   f"<code>{f.strip('_')}</code> (feature tag <code>{f}</code> in the "
                                                   "metrics)" for f in pseudo) + ".</p>")
    return note + _table(["feature", "windows drifted / total", "max PSI", "max KS D", "max PCA recon error"],
                         rows, classes, table_id)


_CSS = ("body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1250px;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;"
        "font-size:13px;text-align:left}th{background:#f4f4f4}tr.critical td{color:#d62728}"
        "tr.warning td{color:#c56000}tr.resolved td{color:#2ca02c}tr.drifted td{background:#fff3e0}"
        "img{max-width:100%;height:auto;border:1px solid #eee}.empty{color:#888}.note{font-size:13px;color:#555}"
        "code{font-size:12px;background:#f4f4f4;padding:0 3px}")


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
    # plots and drift tables show the comparison with the training profile; drift against trailing/seasonal
    # baselines (tag ``baseline``, docs/baselines.md) is on the dashboards and in the alerts below
    groups = _groups([p for p in pts if not p.tag("baseline")])
    psi_critical = _psi_critical()
    decision = _decision_methods()

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
        if plot(g, _for_group(alerts, g), _for_group(retrain, g), png, psi_critical):
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            parts.append(f"<img src=\"data:image/png;base64,{data}\" alt=\"{esc('plots for ' + g.name)}\">")
        else:
            parts.append("<p class=\"empty\">no plottable measurements</p>")
        parts.append("<h3>Drift per feature</h3>")
        parts.append(_drift_summary(g, f"drift-{png.stem}"))
        model_alerts = [a for a in alerts if a.model == g.model
                        and (g.version is None or not a.model_version or a.model_version == g.version)]
        parts.append(segments_section(g, pts, model_alerts, plots, lambda name: _png_name(name, used), psi_critical,
                                      decision))
    parts.append("<h2 id=\"alerts\">Alerts timeline</h2>")
    parts.append(_table(["time", "status", "alertname", "model", "version", "feature", "segment", "severity",
                         "summary"],
                        [(_fmt_time(a.time), a.status, a.alertname, a.model, a.model_version,
                          feature_label(a.feature), a.segment, a.severity, readable(a.summary)) for a in alerts],
                        ["resolved" if a.status == "resolved" else a.severity for a in alerts], "alerts-table"))
    parts.append("<h2 id=\"retraining\">Retraining requests</h2>")
    parts.append(_table(["time", "model", "version", "reason", "evidence"],
                        [(_fmt_time(r.time), r.model, r.model_version, r.reason, readable(r.evidence))
                         for r in retrain], table_id="retraining-table"))
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
