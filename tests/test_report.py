"""Line-protocol parser (round trip against ``MetricPoint.to_line``) and the HTML report."""

from __future__ import annotations

import math
import re
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from monitor.lineprotocol import parse_line, parse_text, read_lp
from monitor.names import name_problem
from monitor.report import register, render_report
from monitor.types import (
    MAX_TIME_NS,
    MIN_TIME_NS,
    RESERVED_KEYS,
    Alert,
    Evidence,
    FieldValue,
    MetricPoint,
    RetrainRequest,
    WindowRange,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
W = 300  # window size, s
T0 = 1_700_000_100  # first window end, epoch s

# ---------------------------------------------------------------------------------------- line protocol

_chars = st.characters(blacklist_categories=["Cs"])  # every encodable character: spaces, quotes, \, \n, ...
_name_chars = st.one_of(_chars, st.sampled_from(list('\\\n\r\t, ="#\x00\x7f\x85\u2028é😀')))
_keys = st.text(_name_chars, min_size=1, max_size=12).filter(lambda k: k not in RESERVED_KEYS)
_tag_values = st.text(_name_chars, max_size=12)  # empty values are dropped by to_line
_values = st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False),
                    st.booleans(), st.text(_name_chars, max_size=20))
_times = st.integers(MIN_TIME_NS, MAX_TIME_NS)


def _typed(fields: tuple[tuple[str, FieldValue], ...]) -> list[tuple[str, type, str]]:
    """Fields compared by type and repr: ``True == 1 == 1.0`` and ``nan != nan`` would hide bugs."""
    return [(k, type(v), repr(v)) for k, v in fields]


def _read_back(v: FieldValue) -> FieldValue:
    """A string value's newlines are written (and so read back) as the two characters ``\n``/``\r``."""
    return v.replace("\n", "\\n").replace("\r", "\\r") if isinstance(v, str) else v


@settings(max_examples=800, deadline=None)
@given(_keys, st.lists(st.tuples(_keys, _tag_values), max_size=4),
       st.lists(st.tuples(_keys, _values), min_size=1, max_size=5), _times)
def test_parse_line_inverts_to_line(measurement: str, tags: list[tuple[str, str]],
                                    fields: list[tuple[str, FieldValue]], ts: int) -> None:
    """Every name the line protocol can carry round-trips exactly; every other one is refused by ``to_line``
    (never written half-escaped), so no generated name can end a point and start another."""
    p = MetricPoint(measurement, tuple(tags), tuple(fields), ts)
    names = [measurement, *(n for k, v in tags if v for n in (k, v)), *(k for k, _ in fields)]  # empty: dropped
    refused = [n for n in names if name_problem(n) is not None] or measurement.startswith("#")
    if refused:
        with pytest.raises(ValueError, match="line protocol"):
            p.to_line()
        return
    line = p.to_line()
    assert "\n" not in line and "\r" not in line
    q = parse_line(line)
    assert q.measurement == p.measurement and q.time_ns == p.time_ns
    assert q.tags == tuple((k, v) for k, v in sorted(tags) if v != "")  # to_line sorts, drops empty values
    assert _typed(q.fields) == _typed(tuple((k, _read_back(v)) for k, v in p.fields))
    doc = parse_text(f"# comment\n{line}\r\n\n{line}\n")
    assert [(x.measurement, x.tags, _typed(x.fields), x.time_ns) for x in doc] == [
        (q.measurement, q.tags, _typed(q.fields), q.time_ns)] * 2


@pytest.mark.parametrize("point, why", [
    (MetricPoint("drift", (("model", "m\nevil,model=pwn value=1 0"),), (("score", 1.0),), 1), "U+000A"),
    (MetricPoint("drift", (("model", "m\r"),), (("score", 1.0),), 1), "U+000D"),
    (MetricPoint("drift", (("model", "ends\\"),), (("score", 1.0),), 1), "backslash"),
    (MetricPoint("drift", (("feature", "a\\,b"),), (("score", 1.0),), 1), "backslash"),
    (MetricPoint("#drift", (), (("score", 1.0),), 1), "comment"),
    (MetricPoint("drift", (("time", "x"),), (("score", 1.0),), 1), "reserved"),
    (MetricPoint("drift", (), (("time", 1.0),), 1), "reserved"),
    (MetricPoint("drift", (), (), 1), "no fields"),
    (MetricPoint("drift", (), (("score", math.inf),), 1), "finite"),
    (MetricPoint("drift", (), (("n", 2**63),), 1), "int64"),
    (MetricPoint("drift", (), (("score", 1.0),), 2**63 - 1), "range"),
])
def test_to_line_refuses_what_the_protocol_cannot_carry(point: MetricPoint, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        point.to_line()


@pytest.mark.parametrize("line, why", [
    # what the old to_line wrote for a model named "m\nevil,model=pwn value=1 0": two points in one
    ("drift,model=m\nevil,model=pwn value=1 0 score=1.0 1", "U+000A"),
    ("drift,model=m\revil score=1.0 1", "U+000D"),
    ("drift,model=ends\\ score=1.0 1", "expected a space before the fields"),  # "\\ " escapes the space
    ("drift,model=a\\\\b score=1.0 1", "backslash"),
    ('drift,model=m note="two\nlines" 1', "newline inside a string"),
    ("drift,model=m score=inf 1", "bad field value"),
    ("drift,model=m score=nan 1", "bad field value"),
    ("drift,model=m score=+1 1", "bad field value"),
    ("drift,model=m n=1u 1", "bad field value"),
    ("drift,model=m n=9223372036854775808i 1", "bad field value"),
    ("drift,model=m score=1 9223372036854775807", "range"),
    ("drift,time=x score=1 1", "reserved"),
    ("drift,model=m time=1 1", "reserved"),
    ("#drift,model=m score=1 1", "comment"),
    ("drift,model=m\x00 score=1 1", "U+0000"),
])
def test_parser_refuses_what_influxdb_refuses_or_misreads(line: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        parse_line(line)


def test_parse_line_handles_the_tricky_cases() -> None:
    line = r'my\ m\,x,a\=b=c\ d\,e,k=v f\ 1="say \"hi\", a=b \\",g=-1.5e-07,h=42i,t=true,u=F 17'
    p = parse_line(line + "\n")
    assert p.measurement == "my m,x"
    assert p.tags == (("a=b", "c d,e"), ("k", "v"))
    assert p.fields == (("f 1", 'say "hi", a=b \\'), ("g", -1.5e-07), ("h", 42), ("t", True), ("u", False))
    assert isinstance(p.field("h"), int) and isinstance(p.field("t"), bool) and p.time_ns == 17
    assert parse_line(r"m,k=C:\dir\x v=1 1").tags == (("k", "C:\\dir\\x"),)  # a lone backslash is literal


@pytest.mark.parametrize("bad", [
    "m x=1i", "m x=1i 1 2", "m 1", "m x= 1", "m x=1_0 1", "m x=1j 1", 'm x="open 1', "m,t x=1 1",
    ",t=v x=1 1", "m,=v x=1 1", "m x=1,=2 1", "m  x=1 1",
])
def test_parse_line_rejects_malformed_input(bad: str) -> None:
    with pytest.raises(ValueError, match="line protocol"):
        parse_line(bad)


def test_read_lp_names_the_bad_line(tmp_path: Path) -> None:
    f = tmp_path / "m.lp"
    f.write_text('a x="one" 1\nb y=2 2\nc z= 3\n', encoding="utf-8")
    with pytest.raises(ValueError, match="line 3"):
        read_lp(f)
    f.write_text('a x="multi\nline" 1\nb y=2 2\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 1: .*newline inside a string"):
        read_lp(f)
    f.write_text('a x="line\u2028sep" 1\nb y=2 2\n', encoding="utf-8")  # not a line break in line protocol
    assert [p.fields for p in read_lp(f)] == [(("x", "line\u2028sep"),), (("y", 2.0),)]


# ---------------------------------------------------------------------------------------------- report


def _ns(i: int) -> int:
    return (T0 + i * W) * 10**9


def _points() -> list[MetricPoint]:
    """Every measurement of docs/measurements.md, two models (``churn`` with two versions), 6 windows."""
    pts: list[MetricPoint] = []
    for model, version in (("fraud <&>", ""), ("churn", "v1"), ("churn", "v2")):
        base = (("model", model), ("model_version", version), ("window", "5m"))
        for i in range(6):
            t = _ns(i)
            shift = 0.05 + (0.12 * (i - 2) if i >= 3 else 0.0)
            drifted_features = 0
            for feature, scale in (("amount", 1.0), ("country", 0.3), ("__prediction__", 0.5)):
                psi = shift * scale + 0.01 * i
                drifted = psi >= 0.1 and i >= 3
                drifted_features += drifted
                pts.append(MetricPoint("drift", (*base, ("feature", feature), ("method", "psi")), (
                    ("score", psi), ("threshold", 0.1), ("drifted", drifted), ("n", 400)), t))
                ks = psi / 2
                pts.append(MetricPoint("drift", (*base, ("feature", feature), ("method", "ks")), (
                    ("score", ks), ("p_value", 0.5 if ks < 0.1 else 1e-6), ("threshold", 0.1),
                    ("drifted", ks >= 0.1), ("n", 400)), t))
            pts.append(MetricPoint("drift_summary", base,
                                   (("drifted_features", drifted_features), ("features", 3)), t))
            slow = 3.0 if i == 4 else 1.0
            pts.append(MetricPoint("latency", base, (
                ("p50", 20.0 * slow), ("p90", 35.0 * slow), ("p95", 40.0 * slow), ("p99", 80.0 * slow),
                ("max", 120.0 * slow), ("mean", 25.0 * slow), ("count", 400),
                ("change_detected", i == 4)), t))
            errs = 40 if i == 5 else 2
            pts.append(MetricPoint("errors", base, (("errors", errs), ("total", 400), ("rate", errs / 400),
                                                    ("change_detected", i == 5)), t))
            pts.append(MetricPoint("throughput", base, (("events", 400 + 10 * i), ("events_per_s", 1.33)), t))
            pts.append(MetricPoint("performance", (*base, ("metric", "accuracy")),
                                   (("value", 0.92 - 0.03 * max(0, i - 2)), ("n", 120)), t))
            pts.append(MetricPoint("performance", (*base, ("metric", "estimated_accuracy")),
                                   (("value", 0.9 - 0.02 * i), ("n", 400)), t))
            pts.append(MetricPoint("data_quality", (*base, ("feature", "amount")), (
                ("missing_rate", 0.01), ("out_of_range_rate", 0.0), ("unseen_rate", 0.0), ("invalid", 0)), t))
        pts.append(MetricPoint("alerts", (*base, ("alertname", "FeatureDrift"), ("severity", "critical"),
                                          ("feature", "amount")), (("firing", 1),), _ns(3)))
        pts.append(MetricPoint("retraining", (*base, ("reason", "drift")),
                               (("requested", 1), ("evidence", "amount psi=0.4")), _ns(4)))
    pts.append(MetricPoint("driftline_worker", (("worker", "w-0"),), (
        ("events", 1000), ("events_per_s", 3.3), ("window_lag_s", 0.5), ("sink_queue", 0), ("dlq", 0),
        ("windows_closed", 6)), _ns(5)))
    return pts


def _alert(status: str, severity: str, start: int, end: int | None, summary: str) -> Alert:
    labels = {"alertname": "FeatureDrift", "model": "fraud <&>", "metric": "psi", "feature": "amount",
              "severity": severity}
    return Alert(labels, {"summary": summary}, status, float(T0 + start * W),  # type: ignore[arg-type]
                 float(T0 + end * W) if end is not None else None)


def _write_inputs(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.lp").write_text("".join(p.to_line() + "\n" for p in _points()), encoding="utf-8")
    payloads = [
        {"version": "4", "status": "firing", "alerts": [_alert("firing", "warning", 3, None,
                                                                "PSI <b>amount</b> 0.19").to_dict()]},
        {"version": "4", "status": "firing", "alerts": [_alert("firing", "critical", 4, None,
                                                                "PSI amount 0.31").to_dict()]},
        {"version": "4", "status": "resolved", "alerts": [_alert("resolved", "critical", 4, 5,
                                                                 "PSI amount back to 0.05").to_dict()]},
    ]
    (out / "alerts.jsonl").write_bytes(b"".join(orjson.dumps(p) + b"\n" for p in payloads) + b"{not json\n")
    retrain = RetrainRequest("fraud <&>", None, "drift", WindowRange(T0 + 3 * W, T0 + 4 * W),
                             (Evidence("amount", "psi", 0.31, 0.25),), 2, 3600.0)
    (out / "retraining.jsonl").write_bytes(orjson.dumps(retrain.to_cloudevent()) + b"\n")


def test_report_covers_every_measurement_alerts_and_retraining(tmp_path: Path) -> None:
    _write_inputs(tmp_path)
    path = render_report(tmp_path, title="test <report>")
    assert path == tmp_path / "report.html"
    text = path.read_text(encoding="utf-8")
    assert "<title>test &lt;report&gt;</title>" in text and "<report>" not in text
    assert "<h2>fraud &lt;&amp;&gt;</h2>" in text
    assert "churn (version v1)" in text and "churn (version v2)" in text
    assert text.count('<img src="data:image/png;base64,') == 3
    # alert timeline: three rows in time order, escaped, coloured by severity/status
    rows = [r for r in text.split("<tr") if "FeatureDrift" in r]
    assert len(rows) == 3
    assert 'class="warning"' in rows[0] and "firing" in rows[0]
    assert "PSI &lt;b&gt;amount&lt;/b&gt; 0.19" in rows[0]
    assert 'class="critical"' in rows[1] and "2023-11-14 22:35:00 UTC" in rows[1]
    assert 'class="resolved"' in rows[2] and "2023-11-14 22:40:00 UTC" in rows[2]
    assert "amount psi=0.31 (threshold 0.25)" in text  # retraining evidence
    assert "<td>amount</td><td>3 / 6</td>" in text  # drift summary: psi drifted in windows 3, 4, 5
    assert "skipped malformed lines: alerts.jsonl 1" in text
    pngs = sorted((tmp_path / "plots").glob("*.png"))
    assert [p.name for p in pngs] == ["churn-v1.png", "churn-v2.png", "fraud.png"]
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 30_000


def test_report_from_points_without_jsonl_uses_alert_and_retraining_measurements(tmp_path: Path) -> None:
    path = render_report(tmp_path, points=_points())
    text = path.read_text(encoding="utf-8")
    assert not (tmp_path / "metrics.lp").exists()
    assert text.count("FeatureDrift") == 3  # one alerts point per model/version
    assert "amount psi=0.4" in text


def test_drift_tables_show_the_training_comparison_only(tmp_path: Path) -> None:
    """Points against a trailing/seasonal baseline (tag ``baseline``) stay out of the plots and tables."""
    pts = _points()
    extra = [MetricPoint(p.measurement, (*p.tags, ("baseline", "trailing")), (("score", 9.99), *p.fields[1:]),
                         p.time_ns) for p in pts if p.measurement == "drift"]
    with_baselines = render_report(tmp_path / "b", points=pts + extra).read_text(encoding="utf-8")
    without = render_report(tmp_path / "a", points=pts).read_text(encoding="utf-8")
    assert "9.99" not in with_baselines
    assert re.findall(r"<table id=\"drift-[^>]*>.*?</table>", with_baselines, re.S) == \
        re.findall(r"<table id=\"drift-[^>]*>.*?</table>", without, re.S)


def test_report_with_only_throughput_and_no_alerts_or_labels(tmp_path: Path) -> None:
    lines = [MetricPoint("throughput", (("model", "m"), ("window", "5m")),
                         (("events", 10), ("events_per_s", 0.1)), _ns(i)).to_line() for i in range(3)]
    (tmp_path / "metrics.lp").write_text("\n".join(lines) + "\n", encoding="utf-8")
    text = render_report(tmp_path).read_text(encoding="utf-8")
    assert "<h2>m</h2>" in text and "no drift measurements" in text and "data:image/png;base64," in text
    assert (tmp_path / "plots" / "m.png").read_bytes()[:8] == PNG_MAGIC


def test_report_of_an_empty_directory(tmp_path: Path) -> None:
    text = render_report(tmp_path).read_text(encoding="utf-8")
    assert "no model metrics found" in text and "<h2 id=\"alerts\">Alerts timeline</h2>" in text


def test_report_command(tmp_path: Path) -> None:
    import typer

    app = typer.Typer()
    register(app)

    @app.command()
    def other() -> None:  # a second command, so typer keeps ``report`` as a subcommand
        """Unused."""

    _write_inputs(tmp_path)
    r = CliRunner().invoke(app, ["report", str(tmp_path), "--title", "CLI"])
    assert r.exit_code == 0, r.output
    assert r.output.strip() == str(tmp_path / "report.html")
    assert "<h1>CLI</h1>" in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_versions_have_their_own_column_and_pseudo_features_read_as_words(tmp_path: Path) -> None:
    """The model column read "fraud vv3" (a "v" prepended to version "v3"), and ``__score__`` looked like
    "  score  " once a screenshot was scaled (a 1-px underscore vanishes)."""
    labels = {"alertname": "PredictionDrift", "model": "fraud", "model_version": "v3", "metric": "psi",
              "feature": "__score__", "severity": "critical"}
    alert = Alert(labels, {"summary": "fraud: __score__ drifted (psi=0.585)"}, "firing", float(T0))
    (tmp_path / "alerts.jsonl").write_bytes(orjson.dumps({"version": "4", "alerts": [alert.to_dict()]}) + b"\n")
    retrain = RetrainRequest("fraud", "v3", "drift", WindowRange(T0, T0 + W), (Evidence("__score__", "psi", 0.58, 0.1),),
                             3, 3600.0)
    (tmp_path / "retraining.jsonl").write_bytes(orjson.dumps(retrain.to_cloudevent()) + b"\n")
    pts = [MetricPoint("drift", (("model", "fraud"), ("model_version", "v3"), ("feature", f), ("method", "psi")),
                       (("score", 0.3), ("threshold", 0.1), ("drifted", True), ("n", 100)), _ns(0))
           for f in ("__score__", "__prediction__", "amount")]
    text = render_report(tmp_path, points=pts).read_text(encoding="utf-8")
    text = re.sub(r"data:image/png;base64,[^\"]+", "data:image/png;base64,…", text)  # the image bytes
    assert "vv3" not in text
    assert ("<td>PredictionDrift</td><td>fraud</td><td>v3</td><td>score (model output)</td><td></td><td>critical</td>"
            "<td>fraud: score (model output) drifted (psi=0.585)</td>") in text
    assert "<td>fraud</td><td>v3</td><td>drift</td><td>score (model output) psi=0.58 (threshold 0.1)</td>" in text
    assert "<td>prediction (model output)</td><td>1 / 1</td>" in text and "<td>amount</td><td>1 / 1</td>" in text
    assert "<code>__score__</code>" in text  # the tag value is still named, once, for Grafana queries
    assert "<td>__score__</td>" not in text


def test_marks_at_one_window_end_are_drawn_side_by_side() -> None:
    from datetime import UTC, datetime

    from monitor.report_plots import AlertMark, RetrainMark, marker_offsets

    t, u = datetime(2026, 1, 1, 0, 50, tzinfo=UTC), datetime(2026, 1, 1, 0, 55, tzinfo=UTC)
    marks = [AlertMark(t, "resolved", "LatencyRegression", "m", "", "", "critical", ""),
             AlertMark(t, "firing", "AccuracyDrop", "m", "", "", "critical", ""),
             AlertMark(t, "firing", "PredictionDrift", "m", "", "__score__", "critical", ""),  # same kind: shares
             AlertMark(u, "firing", "ErrorRate", "m", "", "", "warning", ""),
             RetrainMark(u, "m", "", "drift", "")]
    shift = marker_offsets(marks, 300.0)
    assert shift == {(t, "critical"): -18.75, (t, "resolved"): 18.75, (u, "warning"): -18.75,
                     (u, "retraining"): 18.75}
    assert marker_offsets(marks[3:4], 300.0) == {(u, "warning"): 0.0}  # alone: at the window end


def test_segments_have_their_own_table_and_figures(tmp_path: Path) -> None:
    """Segment points stay out of the model's figure and table; the segments table lists every segment,
    drifted ones first, and the drifted one gets a figure; the alerts table names the segment."""
    def pts_of(segment: str | None, w: int, psi: float, events: int) -> list[MetricPoint]:
        tags: tuple[tuple[str, str], ...] = (("model", "fraud"), ("window", "5m"))
        if segment:
            tags = (*tags, ("segment", segment))
        return [MetricPoint("drift", (*tags, ("feature", "amount"), ("method", "psi")),
                            (("score", psi), ("threshold", 0.1), ("drifted", psi > 0.1), ("n", events)), _ns(w)),
                MetricPoint("throughput", tags, (("events", events), ("events_per_s", events / W)), _ns(w))]

    pts = [p for w in range(4) for p in (*pts_of(None, w, 0.01, 4000), *pts_of("country=PL", w, 0.9 if w >= 2 else
                                                                              0.02, 200),
                                         *pts_of("country=US", w, 0.01, 1500))]
    labels = {"alertname": "FeatureDrift", "model": "fraud", "metric": "psi", "feature": "amount",
              "severity": "warning", "segment": "country=PL"}
    alert = Alert(labels, {"summary": "fraud [country=PL]: amount drifted (psi=0.9)"}, "firing", float(T0 + 3 * W))
    (tmp_path / "alerts.jsonl").write_bytes(orjson.dumps({"version": "4", "alerts": [alert.to_dict()]}) + b"\n")
    text = render_report(tmp_path, points=pts).read_text(encoding="utf-8")
    assert "<td>amount</td><td>0 / 4</td>" in text  # the model's drift table: its own points only
    table = text[text.index('<table id="segments-fraud">'):]
    table = table[:table.index("</table>")]
    assert table.index("country=PL") < table.index("country=US")  # drifted first
    assert ('<tr class="drifted"><td>country=PL</td><td>800</td><td>2 / 4</td><td>amount</td><td>0.9</td>'
            "<td>1</td></tr>") in table
    assert "<td>country=US</td><td>6,000</td><td>0 / 4</td><td>–</td>" in table
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["fraud-country_PL.png", "fraud.png"]
    assert 'alt="plots for fraud [country=PL]"' in text
    assert "<td>amount</td><td>country=PL</td><td>warning</td>" in text  # the alerts table
