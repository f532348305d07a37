"""Line-protocol injection against the real InfluxDB 1.6.7: names with CR, LF, tab, backslashes (trailing
ones too), commas, equals signs, quotes, spaces, ``#`` and Unicode.

Every name either is refused before it can reach a tag (decode → DLQ with a reason; ``to_line`` raises)
or is written, accepted by the server and read back exactly; no measurement other than the ones written
ever appears. Points go through the production sink (influxdb-client → the v2 compat proxy → 1.6.7).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor import devservices
from monitor.adapters.influx import InfluxSink
from monitor.config import MonitorSettings
from monitor.core.reference import build_profile
from monitor.events import DecodeOptions, decode_any
from monitor.names import name_problem
from monitor.pipeline import Monitor
from monitor.types import MetricPoint, PredictionEvent, Rejection

pytestmark = pytest.mark.integration
T0 = 1_767_225_600.0
HOSTILE = [*"\r\n\t\\,= \"'#\x00\x7f\x85\u2028", "é", "😀", "\\\\", "\\ ", "value=1 0\n"]


def _rows(url: str, db: str, q: str) -> list[list[object]]:
    out = devservices.influx1_query(url, q, db=db)
    series = out["results"][0].get("series") or []
    return [row for s in series for row in s["values"]]


def _fresh_db(url: str, name: str) -> str:
    devservices.influx1_query(url, f'DROP DATABASE "{name}"')
    devservices.influx1_create_database(url, name)
    return name


@pytest.fixture
def sink_db(influxdb: str, influx_compat: str, request: pytest.FixtureRequest) -> Iterator[tuple[InfluxSink, str]]:
    db = _fresh_db(influxdb, request.node.name.split("[")[0][:60])
    sink = InfluxSink(influx_compat, "token", "org", db, max_retries=0)
    try:
        yield sink, db
    finally:
        sink.close()


NAMES = ["fraud model", "a,b", "k=v", 'quo"te', "it's", "C:\\models\\x", "#hash", "é😀 ü", " lead", "=", ",",
         "tab\there", "nl\nevil,model=pwn value=1 0", "cr\rname", "trail\\", "bs\\\\bs", "bs\\,comma", "nul\x00"]


def test_pipeline_output_for_hostile_model_and_feature_names(influxdb: str, sink_db: tuple[InfluxSink, str]) -> None:
    """Events under every name of NAMES (as model and as feature name) through decode, the pipeline and the
    sink: refused names are dead-lettered with their reason, the rest are stored and read back exactly."""
    sink, db = sink_db
    allowed = [n for n in NAMES if name_problem(n) is None]
    refused = [n for n in NAMES if name_problem(n) is not None]
    assert len(allowed) >= 8 and len(refused) >= 6  # the test covers both sides
    rng = np.random.default_rng(7)
    refs = {m: build_profile(m, pd.DataFrame({"amount": rng.normal(size=500), f: rng.normal(size=500)}))
            for m, f in zip(allowed, itertools.cycle(reversed(allowed)), strict=False)}
    opts = DecodeOptions(max_future_skew_s=600.0)
    decoded, dead = [], []
    for i, (model, feature) in enumerate(itertools.product(NAMES, repeat=2)):
        for j in range(3):
            raw = json.dumps({"model": model, "request_id": f"r{i}-{j}", "timestamp": T0 + j,
                              "features": {"amount": float(j), feature: 1.0}, "prediction": 1,
                              "model_version": model}).encode()
            out = decode_any(raw, topic="predictions", offset=i, options=opts, now=T0 + 60)
            (dead if isinstance(out, Rejection) else decoded).append(out)
    assert all(isinstance(e, PredictionEvent) and name_problem(e.model) is None
               and all(name_problem(f) is None for f in e.features) for e in decoded)
    for r in dead:
        assert r.reason.startswith(("invalid event: model name ", "invalid event: model_version ",
                                    "invalid event: feature name ")), r.reason
        assert "control character" in r.reason or "backslash" in r.reason, r.reason
    assert len(dead) == 3 * (len(NAMES) ** 2 - len(allowed) ** 2)  # an event with any refused name is refused
    assert all(r.model is None or name_problem(r.model) is None for r in dead)  # counted only under safe names
    mon = Monitor(MonitorSettings(window="1m", allowed_lateness="0s", max_future_skew="10m"), refs)
    assert mon.observe(decoded) == []
    mon.reject(dead)
    points = list(mon.close_all().points)
    sink.add(points)
    sink.flush()
    assert sink.stats.points_written == len(points) and sink.buffered == 0

    measurements = {row[0] for row in _rows(influxdb, db, "SHOW MEASUREMENTS")}
    assert measurements == {p.measurement for p in points}
    models = {row[1] for row in _rows(influxdb, db, 'SHOW TAG VALUES WITH KEY = "model"')}
    assert models == set(allowed) | {"__unknown__"}  # dead letters without a usable model name count there
    versions = {row[1] for row in _rows(influxdb, db, 'SHOW TAG VALUES WITH KEY = "model_version"')}
    assert versions == set(allowed) - {""}
    features = {row[1] for row in _rows(influxdb, db, 'SHOW TAG VALUES FROM "drift" WITH KEY = "feature"')}
    assert set(allowed) <= features <= set(allowed) | {"amount", "__prediction__", "__score__", "__multivariate__"}


names = st.lists(st.one_of(st.sampled_from(HOSTILE), st.characters(blacklist_categories=["Cs"])), min_size=1,
                 max_size=12).map("".join)


def test_any_name_is_refused_or_stored_exactly(influxdb: str, sink_db: tuple[InfluxSink, str]) -> None:
    """Hypothesis over the name space (bounded): each name as tag values and as a string field."""
    sink, db = sink_db
    written: dict[int, str] = {}
    counter = itertools.count()

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(names)
    def write_one(name: str) -> None:
        t_ns = (1_767_225_600 + next(counter)) * 10**9
        point = MetricPoint("hostile", (("model", name), ("feature", name), ("window", "1m")),
                            (("score", 1.0), ("evidence", f"{name} drifted")), t_ns)
        event = json.dumps({"model": name, "request_id": "r", "timestamp": T0, "features": {"x": 1.0},
                            "prediction": 1}).encode()
        if name_problem(name) is not None:
            with pytest.raises(ValueError, match="line protocol"):
                point.to_line()
            out = decode_any(event)
            assert isinstance(out, Rejection) and "model name" in out.reason
            return
        assert isinstance(decode_any(event), PredictionEvent)
        sink.add([point])
        sink.flush()  # raises SinkRejected if InfluxDB refused the line (e.g. a partial write)
        written[t_ns] = name
        (row,) = _rows(influxdb, db, f'SELECT "model", "feature", "evidence" FROM "hostile" WHERE time = {t_ns}')
        assert row[1:] == [name, name, f"{name} drifted"]

    write_one()
    assert written, "no allowed name was generated"
    assert {row[0] for row in _rows(influxdb, db, "SHOW MEASUREMENTS")} == {"hostile"}
    assert {row[1] for row in _rows(influxdb, db, 'SHOW TAG VALUES WITH KEY = "model"')} == set(written.values())
    assert len(_rows(influxdb, db, 'SELECT "score" FROM "hostile"')) == len(written)
