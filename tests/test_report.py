"""Line-protocol parsing round trip and the HTML report."""

import orjson
from hypothesis import given
from hypothesis import strategies as st

from monitor.lineprotocol import parse_line
from monitor.report import render_report
from monitor.types import MetricPoint
from tests.test_replay_e2e import replayed  # noqa: F401  (module fixture: a real replay output)

names = st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters='\\"'), min_size=1,
                max_size=12)
values = st.one_of(st.integers(-10**12, 10**12), st.floats(allow_nan=False, allow_infinity=False), st.booleans(),
                   st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=20))


@given(names, st.dictionaries(names, names, max_size=4), st.dictionaries(names, values, min_size=1, max_size=4),
       st.integers(0, 2**62))
def test_parse_line_inverts_to_line(measurement, tags, fields, ts):
    p = MetricPoint(measurement, tuple(sorted(tags.items())), tuple(fields.items()), ts)
    q = parse_line(p.to_line())
    assert q.measurement == p.measurement and q.time_ns == p.time_ns
    assert dict(q.tags) == tags and dict(q.fields) == fields


def test_report_from_a_replay(replayed):  # noqa: F811
    out, _, _ = replayed
    path = render_report(out, title="test <report>")
    text = path.read_text()
    assert "data:image/png;base64," in text and "test &lt;report&gt;" in text
    assert "FeatureDrift" in text and "LatencyRegression" in text and "drift" in text
    png = (out / "plots" / "fraud.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_report_without_alerts_or_labels(tmp_path):
    lines = [MetricPoint("throughput", (("model", "m"), ("window", "5m")), (("events", 10), ("events_per_s", 0.1)),
                         i * 300 * 10**9).to_line() for i in range(1, 4)]
    (tmp_path / "metrics.lp").write_text("\n".join(lines) + "\n")
    path = render_report(tmp_path)
    assert "<h2>m</h2>" in path.read_text()
    assert orjson.dumps([]) == b"[]"
