"""Generates the Grafana dashboards (``python dashboards/build.py``); the JSON files beside it are its output.

InfluxQL queries: InfluxDB 1.x serves them natively and InfluxDB 2.x through its DBRP mapping (created by
docker-compose's init script), so the same dashboards work on both and are testable here on 1.6.7.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DS = {"type": "influxdb", "uid": "driftline-influxdb"}
HERE = Path(__file__).resolve().parent
MODEL = '"model" =~ /^$model$/ AND "window" =~ /^$window$/ AND "model_version" =~ /^$model_version$/'
#: the whole model: points without a segment tag (docs/measurements.md, "Segments")
COMMON = MODEL + ' AND "segment" = \'\''
#: the segments picked in $segment (All: every segment), never the whole model
SEGMENTS = MODEL + ' AND "segment" =~ /^$segment$/ AND "segment" != \'\''
#: drift against the baseline picked in the ``baseline`` variable: training (points without the tag) or a
#: sample baseline (``raw``: the value is a regular expression of its own, not escaped by Grafana)
BASELINE = '"baseline" =~ /^${baseline:raw}$/'
#: (text, value) of the baseline variable: the value is the tag's value as a regular expression
BASELINES = (("training", "()"), ("trailing", "trailing"), ("seasonal", "seasonal"))


def var(name: str, query: str, *, multi: bool = True, include_all: bool = True, label: str | None = None,
        regex_all: bool = True) -> dict[str, Any]:
    return {"name": name, "label": label or name, "type": "query", "datasource": DS, "query": query,
            "definition": query, "refresh": 2, "multi": multi, "includeAll": include_all,
            "allValue": ".*" if regex_all else None, "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "sort": 1}


def baseline_var() -> dict[str, Any]:
    """What drift is compared against: ``training`` (the reference profile; points without the tag) or a
    trailing/seasonal baseline (docs/baselines.md). A custom variable, one value at a time."""
    options = [{"text": t, "value": v, "selected": i == 0} for i, (t, v) in enumerate(BASELINES)]
    return {"name": "baseline", "label": "compared against", "type": "custom",
            "query": ",".join(f"{t} : {v}" for t, v in BASELINES), "options": options,
            "current": {"selected": True, "text": BASELINES[0][0], "value": BASELINES[0][1]},
            "multi": False, "includeAll": False,
            "description": "training: the reference profile; trailing / seasonal: the model's own recent windows "
                           "(configured under baselines:, docs/baselines.md)"}


def base_vars(feature: bool = False, baseline: bool = False) -> list[dict[str, Any]]:
    out = [var("model", 'SHOW TAG VALUES FROM "throughput" WITH KEY = "model"'),
           var("model_version", 'SHOW TAG VALUES FROM "throughput" WITH KEY = "model_version" WHERE "model" =~ /^$model$/',
               label="model version"),
           var("window", 'SHOW TAG VALUES FROM "throughput" WITH KEY = "window"', multi=False)]
    if baseline:
        out.append(baseline_var())
    if feature:
        out.append(var("feature", 'SHOW TAG VALUES FROM "drift" WITH KEY = "feature" WHERE "model" =~ /^$model$/'))
    return out


def segment_var() -> dict[str, Any]:
    """``$segment``: the segments a model's points carry (``country=PL``…); alert links set it."""
    return var("segment", 'SHOW TAG VALUES FROM "throughput" WITH KEY = "segment" WHERE "model" =~ /^$model$/')


def target(query: str, ref: str = "A", alias: str = "", fmt: str = "time_series") -> dict[str, Any]:
    return {"refId": ref, "datasource": DS, "query": query, "rawQuery": True, "resultFormat": fmt,
            "alias": alias}


class Layout:
    """Places panels on the 24-column grid left to right, top to bottom (no overlaps by construction)."""

    def __init__(self) -> None:
        self.x = self.y = self.row_h = 0
        self.next_id = 1

    def place(self, w: int, h: int) -> dict[str, int]:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        pos = {"x": self.x, "y": self.y, "w": w, "h": h}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def newline(self) -> None:
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0

    def panel(self, title: str, targets: list[dict[str, Any]], *, kind: str = "timeseries", w: int = 12, h: int = 8,
              unit: str = "", thresholds: list[tuple[str, float | None]] | None = None, description: str = "",
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
        steps = [{"color": c, "value": v} for c, v in (thresholds or [("green", None)])]
        p: dict[str, Any] = {
            "id": self.next_id, "type": kind, "title": title, "description": description, "datasource": DS,
            "gridPos": self.place(w, h), "targets": targets,
            "fieldConfig": {"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps},
                                         "custom": {"thresholdsStyle": {"mode": "line+area" if thresholds else "off"}}},
                            "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]},
                        "tooltip": {"mode": "multi"}},
        }
        if kind in ("status-history", "state-timeline", "stat"):
            p["fieldConfig"]["defaults"]["color"] = {"mode": "thresholds"}  # colour cells/values by the thresholds
        if extra:
            p.update(extra)
        self.next_id += 1
        return p

    def row(self, title: str, repeat: str | None = None) -> dict[str, Any]:
        self.newline()
        p: dict[str, Any] = {"id": self.next_id, "type": "row", "title": title, "collapsed": False,
                             "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1}, "panels": []}
        if repeat:
            p["repeat"] = repeat
        self.next_id += 1
        self.y += 1
        return p


def score_and_threshold(method: str, where: str, group: str) -> list[dict[str, Any]]:
    """A method's per-feature score plus the threshold the service applied (drawn dashed by THRESHOLD_OVERRIDE)."""
    return [target(f'SELECT max("score") FROM "drift" WHERE {where} AND "method" = \'{method}\' AND $timeFilter '
                   f'{group}', alias="$tag_feature"),
            target(f'SELECT max("threshold") FROM "drift" WHERE {where} AND "method" = \'{method}\' AND $timeFilter '
                   'GROUP BY time($__interval) fill(none)', ref="B", alias="threshold")]


THRESHOLD_OVERRIDE: dict[str, Any] = {"fieldConfig": {
    "defaults": {"custom": {"thresholdsStyle": {"mode": "area"}}},
    "overrides": [{"matcher": {"id": "byName", "options": "threshold"}, "properties": [
        {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
        {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
        {"id": "custom.lineWidth", "value": 2}]}]}}


def dashboard(uid: str, title: str, panels: list[dict[str, Any]], variables: list[dict[str, Any]],
              annotations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"uid": uid, "title": title, "tags": ["driftline"], "timezone": "utc", "schemaVersion": 39,
            "version": 1, "editable": True, "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
            "templating": {"list": variables}, "panels": panels,
            "annotations": {"list": annotations or []}, "links": [
                {"type": "dashboards", "tags": ["driftline"], "asDropdown": True, "title": "Driftline"}]}


def annotation(name: str, colour: str, query: str, *, title: str, text: str, tags: str) -> dict[str, Any]:
    """An InfluxQL annotation, in the legacy top-level keys and the ``target`` form newer Grafana versions use."""
    columns = {"titleColumn": title, "textColumn": text, "tagsColumn": tags}
    return {"name": name, "datasource": DS, "enable": True, "iconColor": colour, "query": query, **columns,
            "target": {"refId": "Anno", "query": query, "rawQuery": True, "fromAnnotations": True, **columns}}


def annotations() -> list[dict[str, Any]]:
    return [
        annotation("Alerts", "red",
                   'SELECT "firing", "alertname", "severity", "feature", "baseline", "segment", "model" FROM "alerts" '
                   'WHERE "model" =~ /^$model$/ AND $timeFilter', title="alertname", text="feature",
                   tags="model,severity,baseline,segment"),
        annotation("Retraining", "purple",
                   'SELECT "requested", "evidence", "reason", "model" FROM "retraining" WHERE "model" =~ /^$model$/ '
                   'AND $timeFilter', title="reason", text="evidence", tags="model"),
    ]


def fleet() -> dict[str, Any]:
    lay = Layout()
    g = "GROUP BY time($__interval) fill(none)"
    panels: list[dict[str, Any]] = [lay.row("$model", repeat="model")]
    panels += [
        lay.panel("Throughput (events/s)", [target(
            f'SELECT mean("events_per_s") FROM "throughput" WHERE {COMMON} AND $timeFilter {g}', alias="events/s")],
            w=6, unit="reqps"),
        lay.panel("Latency p50 / p95 / p99", [target(
            f'SELECT mean("p50") AS "p50", mean("p95") AS "p95", mean("p99") AS "p99" FROM "latency" '
            f'WHERE {COMMON} AND $timeFilter {g}')], w=6, unit="ms"),
        lay.panel("Error rate", [target(
            f'SELECT mean("rate") FROM "errors" WHERE {COMMON} AND $timeFilter {g}', alias="error rate")],
            w=6, unit="percentunit", thresholds=[("green", None), ("orange", 0.05), ("red", 0.2)]),
        lay.panel("Accuracy (labels) and estimated accuracy (scores)", [target(
            f'SELECT mean("value") FROM "performance" WHERE {COMMON} AND "metric" =~ /^(accuracy|estimated_accuracy)$/ '
            f'AND $timeFilter GROUP BY time($__interval), "metric" fill(none)', alias="$tag_metric")],
            w=6, unit="percentunit"),
        lay.panel("Drifted features", [target(
            f'SELECT last("drifted_features") FROM "drift_summary" WHERE {COMMON} AND {BASELINE} AND $timeFilter')],
            kind="stat", w=6, h=5, thresholds=[("green", None), ("orange", 1), ("red", 3)]),
        lay.panel("Open alerts", [target(
            'SELECT sum("firing") FROM (SELECT last("firing") AS "firing" FROM "alerts" WHERE "model" =~ /^$model$/ '
            'AND $timeFilter GROUP BY "alertname", "feature", "severity", "baseline", "segment")')],
            kind="stat", w=6, h=5, thresholds=[("green", None), ("red", 1)],
            description="The model's and its segments' alerts that are firing."),
        lay.panel("Events in the last window", [target(
            f'SELECT last("events") FROM "throughput" WHERE {COMMON} AND $timeFilter')], kind="stat", w=6, h=5),
        lay.panel("p95 latency now", [target(
            f'SELECT last("p95") FROM "latency" WHERE {COMMON} AND $timeFilter')], kind="stat", w=6, h=5, unit="ms"),
        lay.panel("Drifted segment-windows", [target(
            f'SELECT count("drifted_features") FROM "drift_summary" WHERE {MODEL} AND "segment" != \'\' '
            'AND "drifted_features" > 0 AND $timeFilter')], kind="stat", w=6, h=5,
            thresholds=[("green", None), ("orange", 1)],
            description="Windows of a segment (country=PL…) with at least one drifted feature in the time range; "
                        "the drift dashboard lists them."),
    ]
    return dashboard("driftline-fleet", "Driftline · Fleet overview", panels, base_vars(baseline=True), annotations())


def drift() -> dict[str, Any]:
    lay = Layout()
    feat = f'{COMMON} AND "feature" =~ /^$feature$/'
    drift_of = f"{feat} AND {BASELINE}"
    gf = 'GROUP BY time($__interval), "feature" fill(none)'
    panels = [
        lay.panel("Drift heatmap: PSI per feature over time", [target(
            f'SELECT max("score") FROM "drift" WHERE {drift_of} AND "method" = \'psi\' AND $timeFilter {gf}',
            alias="$tag_feature")], kind="status-history", w=24, h=10,
            thresholds=[("green", None), ("yellow", 0.1), ("red", 0.25)],
            description="Each row a feature, each cell a window; colour = PSI (warning 0.1, critical 0.25)."),
        lay.panel("PSI per feature", score_and_threshold("psi", drift_of, gf),
                  thresholds=[("green", None), ("orange", 0.1), ("red", 0.25)], extra=THRESHOLD_OVERRIDE,
                  description="Bands: PSI 0.1 (moderate) and 0.25 (major); dashed: the threshold the service applied."),
        lay.panel("KS statistic per feature", score_and_threshold("ks", drift_of, gf),
                  thresholds=[("green", None), ("orange", 0.1), ("red", 0.2)], extra=THRESHOLD_OVERRIDE,
                  description="Bands: KS 0.1 and 0.2; dashed: the threshold the service applied."),
        lay.panel("KS / χ² p-values", [target(
            f'SELECT min("p_value") FROM "drift" WHERE {drift_of} AND "method" =~ /^(ks|chi2)$/ AND $timeFilter '
            'GROUP BY time($__interval), "feature", "method" fill(none)', alias="$tag_feature $tag_method")],
            extra={"fieldConfig": {"defaults": {"custom": {"scaleDistribution": {"type": "log", "log": 10}}},
                                   "overrides": []}}),
        lay.panel("Prediction and score drift (PSI)", [target(
            f'SELECT max("score") FROM "drift" WHERE {COMMON} AND {BASELINE} AND "feature" =~ /^__(prediction|score)__$/ '
            f'AND "method" = \'psi\' AND $timeFilter {gf}', alias="$tag_feature")],
            thresholds=[("green", None), ("orange", 0.1), ("red", 0.25)]),
        lay.panel("Multivariate drift against training: mean PCA reconstruction error", score_and_threshold(
            "pca_recon", f'{COMMON} AND "feature" = \'__multivariate__\' AND "baseline" = \'\'', gf), w=24,
            extra=THRESHOLD_OVERRIDE,
            description="How well the reference's PCA reconstructs this window's events (feature "
                        "__multivariate__): it rises when features stop moving together as they did in the "
                        "reference, even with every marginal unchanged; dashed: the calibrated threshold. "
                        "Always against the training profile: trailing/seasonal baselines have no "
                        "multivariate statistic."),
        lay.panel("Missing rate", [target(
            f'SELECT mean("missing_rate") FROM "data_quality" WHERE {feat} AND $timeFilter {gf}',
            alias="$tag_feature")], w=8, unit="percentunit"),
        lay.panel("Out-of-range rate", [target(
            f'SELECT mean("out_of_range_rate") FROM "data_quality" WHERE {feat} AND $timeFilter {gf}',
            alias="$tag_feature")], w=8, unit="percentunit"),
        lay.panel("Unseen categories", [target(
            f'SELECT mean("unseen_rate") FROM "data_quality" WHERE {feat} AND $timeFilter {gf}',
            alias="$tag_feature")], w=8, unit="percentunit"),
        lay.panel("Invalid (DLQ) and late events per window", [target(
            f'SELECT sum("invalid") AS "invalid", sum("late") AS "late", sum("duplicates") AS "duplicates" '
            f'FROM "data_quality" WHERE {COMMON} AND "feature" = \'__event__\' AND $timeFilter '
            'GROUP BY time($__interval) fill(none)')], w=24),
    ]
    panels += segment_panels(lay)
    return dashboard("driftline-drift", "Driftline · Model drift", panels,
                     [*base_vars(feature=True, baseline=True), segment_var()], annotations())


def segment_panels(lay: Layout) -> list[dict[str, Any]]:
    """The drift dashboard's segments row: which segment-windows drifted, and the picked segments' series
    (segments are compared with the training profile only: their points have no ``baseline`` tag)."""
    seg = f'{SEGMENTS} AND "feature" =~ /^$feature$/'
    gs = 'GROUP BY time($__interval), "segment" fill(none)'
    return [
        lay.row("Segments ($segment)"),
        lay.panel("Segment-windows that drifted", [target(
            f'SELECT "drifted_features", "features" FROM "drift_summary" WHERE {SEGMENTS} '
            'AND "drifted_features" > 0 AND $timeFilter GROUP BY "segment"', fmt="table")], kind="table", w=24, h=8,
            description="One row per window of a segment with at least one drifted feature (newest first in "
                        "Grafana's table sort); pick the segment in $segment to see its series below.",
            extra={"options": {"showHeader": True, "sortBy": [{"displayName": "Time", "desc": True}]}}),
        lay.panel("PSI per feature in the picked segments", [target(
            f'SELECT max("score") FROM "drift" WHERE {seg} AND "method" = \'psi\' AND $timeFilter '
            'GROUP BY time($__interval), "segment", "feature" fill(none)', alias="$tag_segment $tag_feature")],
            thresholds=[("green", None), ("orange", 0.1), ("red", 0.25)],
            description="Each segment against the reference rows of its own value."),
        lay.panel("KS statistic per feature in the picked segments", [target(
            f'SELECT max("score") FROM "drift" WHERE {seg} AND "method" = \'ks\' AND $timeFilter '
            'GROUP BY time($__interval), "segment", "feature" fill(none)', alias="$tag_segment $tag_feature")],
            thresholds=[("green", None), ("orange", 0.1), ("red", 0.2)]),
        lay.panel("Events per segment", [target(
            f'SELECT sum("events") FROM "throughput" WHERE {SEGMENTS} AND $timeFilter {gs}',
            alias="$tag_segment")], w=8),
        lay.panel("Error rate per segment", [target(
            f'SELECT mean("rate") FROM "errors" WHERE {SEGMENTS} AND $timeFilter {gs}', alias="$tag_segment")],
            w=8, unit="percentunit"),
        lay.panel("Accuracy per segment (labels, else estimated)", [target(
            f'SELECT mean("value") FROM "performance" WHERE {SEGMENTS} AND "metric" =~ /^(accuracy|estimated_accuracy)$/ '
            'AND $timeFilter GROUP BY time($__interval), "segment", "metric" fill(none)',
            alias="$tag_segment $tag_metric")], w=8, unit="percentunit"),
    ]


def ops() -> dict[str, Any]:
    lay = Layout()
    w = 'WHERE "worker" =~ /^$worker$/ AND $timeFilter GROUP BY time($__interval), "worker" fill(none)'
    panels = [
        lay.panel("Events/s per worker", [target(f'SELECT mean("events_per_s") FROM "driftline_worker" {w}',
                                                 alias="$tag_worker")], unit="reqps"),
        lay.panel("Window lag (wall clock − watermark)", [target(
            f'SELECT max("window_lag_s") FROM "driftline_worker" {w}', alias="$tag_worker")], unit="s"),
        lay.panel("Sink queue (points waiting for InfluxDB)", [target(
            f'SELECT max("sink_queue") FROM "driftline_worker" {w}', alias="$tag_worker")]),
        lay.panel("DLQ records per flush", [target(f'SELECT sum("dlq") FROM "driftline_worker" {w}',
                                                   alias="$tag_worker")]),
        lay.panel("Invalid events per window (by model)", [target(
            f'SELECT sum("invalid") FROM "data_quality" WHERE {COMMON} AND "feature" = \'__event__\' '
            'AND $timeFilter GROUP BY time($__interval), "model" fill(none)', alias="$tag_model")]),
        lay.panel("Retraining requests", [target(
            f'SELECT count("requested") FROM "retraining" WHERE {MODEL} AND $timeFilter '
            'GROUP BY time($__interval), "model", "reason" fill(none)', alias="$tag_model $tag_reason")]),
        lay.panel("Alert transitions (firing 1 / resolved 0)", [target(
            f'SELECT last("firing") FROM "alerts" WHERE {MODEL} AND $timeFilter '
            'GROUP BY time($__interval), "model", "alertname", "feature", "baseline", "segment" fill(none)',
            alias="$tag_model $tag_alertname $tag_feature $tag_baseline $tag_segment")], w=24, kind="state-timeline",
            thresholds=[("green", None), ("red", 1)]),
    ]
    variables = [*base_vars(), var("worker", 'SHOW TAG VALUES FROM "driftline_worker" WITH KEY = "worker"')]
    return dashboard("driftline-ops", "Driftline · Operations", panels, variables, annotations())


BUILDERS = {"fleet.json": fleet, "drift.json": drift, "ops.json": ops}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n" for name, build in BUILDERS.items()}


if __name__ == "__main__":
    for name, text in render().items():
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote dashboards/{name}")
