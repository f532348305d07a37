"""The per-segment view of the HTML report (:mod:`monitor.report`): points tagged ``segment``.

Per model (or model version) with segment points: a table of every segment — events, windows with a
drifted feature, which features drifted, the largest PSI, alerts — drifted segments first and highlighted,
then the figure (:func:`monitor.report_plots.plot`) of the segments that drifted or paged, at most
:data:`MAX_PLOTS` of them. The model's own figure and drift table show the points without the tag.
"""

from __future__ import annotations

import base64
import html
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from monitor.report_plots import AlertMark, Group, feature_label, num, plot
from monitor.types import MetricPoint

#: figures of at most this many segments per model (the table lists every segment)
MAX_PLOTS = 4


@dataclass
class _Row:
    segment: str
    events: int = 0
    windows: set[int] = field(default_factory=set)
    drifted: set[int] = field(default_factory=set)
    features: set[str] = field(default_factory=set)
    max_psi: float | None = None
    alerts: int = 0


def without_segments(points: Sequence[MetricPoint]) -> list[MetricPoint]:
    """The whole model's points (no ``segment`` tag)."""
    return [p for p in points if not p.tag("segment")]


def segment_points(points: Sequence[MetricPoint], g: Group) -> dict[str, list[MetricPoint]]:
    """The group's model (and version) points per segment."""
    out: dict[str, list[MetricPoint]] = defaultdict(list)
    for p in points:
        seg = p.tag("segment")
        if seg and p.tag("model") == g.model and (g.version is None or (p.tag("model_version") or "") == g.version):
            out[seg].append(p)
    return dict(out)


def _rows(by_segment: dict[str, list[MetricPoint]], alerts: Sequence[AlertMark],
          decision: Sequence[str]) -> list[_Row]:
    rows = []
    for seg, pts in by_segment.items():
        r = _Row(seg)
        for p in pts:
            if p.measurement == "throughput":
                r.events += int(num(p.field("events")) or 0)
            elif p.measurement == "drift":
                r.windows.add(p.time_ns)
                if p.field("drifted") is True and p.tag("method") in decision:
                    r.drifted.add(p.time_ns)
                    r.features.add(p.tag("feature") or "")
                score = num(p.field("score"))
                if p.tag("method") == "psi" and score is not None and score == score:
                    r.max_psi = score if r.max_psi is None else max(r.max_psi, score)
        r.alerts = sum(1 for a in alerts if a.segment == seg and a.status == "firing")
        rows.append(r)
    rows.sort(key=lambda r: (-len(r.drifted), -r.alerts, r.segment.split("=", 1)[0], -r.events))
    return rows


def section(g: Group, points: Sequence[MetricPoint], alerts: Sequence[AlertMark], plots: Path,
            png_name: Callable[[str], str], psi_critical: float, decision: Sequence[str]) -> str:
    """The HTML of the group's segments ("" when it has none); writes the figures into ``plots``."""
    by_segment = segment_points(points, g)
    if not by_segment:
        return ""
    esc = html.escape
    rows = _rows(by_segment, alerts, decision)
    drifted = [r for r in rows if r.drifted or r.alerts]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", g.model if g.version is None else f"{g.model}-{g.version}")
    parts = ["<h3>Segments</h3>",
             f"<p>{len(rows)} segments; {len(drifted)} with a drifted feature or an alert. Each segment is "
             f"compared with the reference rows of its own value (points tagged <code>segment</code>).</p>"]
    body = []
    for r in rows:
        cls = " class=\"drifted\"" if r.drifted else ""
        cells = (r.segment, f"{r.events:,}", f"{len(r.drifted)} / {len(r.windows)}",
                 ", ".join(feature_label(f) for f in sorted(r.features)) or "–",
                 f"{r.max_psi:.3g}" if r.max_psi is not None else "–", str(r.alerts))
        body.append(f"<tr{cls}>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("segment", "events", "windows drifted / total", "drifted features",
                                             "max PSI", "alerts fired"))
    parts.append(f"<table id=\"segments-{esc(slug)}\"><thead><tr>{head}</tr></thead>"
                 f"<tbody>{''.join(body)}</tbody></table>")
    for r in drifted[:MAX_PLOTS]:
        sg = Group(f"{g.model} [{r.segment}]", g.version, tuple(by_segment[r.segment]))
        png = plots / png_name(f"{g.model}-{r.segment}" if g.version is None else f"{g.model}-{g.version}-{r.segment}")
        marks = [a for a in alerts if a.segment == r.segment and a.time is not None]
        if plot(sg, marks, [], png, psi_critical):
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            parts.append(f"<img src=\"data:image/png;base64,{data}\" alt=\"{esc('plots for ' + sg.name)}\">")
    if len(drifted) > MAX_PLOTS:
        parts.append(f"<p class=\"note\">figures of the first {MAX_PLOTS} of {len(drifted)} segments with drift or "
                     "alerts; the table lists them all.</p>")
    return "\n".join(parts)
