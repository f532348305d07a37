"""After a simulated run written to a real InfluxDB (1.6.7, InfluxQL), every panel's query returns data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from monitor import devservices
from tests.test_replay_e2e import replayed  # noqa: F401  (module fixture: replay of the mixed scenario)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
#: written only by the streaming worker (test_worker covers it), not by a replay
WORKER_ONLY = {"driftline_worker"}


def substitute(q: str) -> str:
    q = q.replace("$timeFilter", "time > 0").replace("$__interval", "5m")
    for name, value in (("model_version", ".*"), ("model", "fraud"), ("window", "5m"), ("feature", ".*"),
                        ("worker", ".*")):
        q = q.replace(f"${name}", value)
    return q


@pytest.fixture(scope="module")
def loaded(influxdb, replayed):  # noqa: F811
    out, _, _ = replayed
    devservices.influx1_query(influxdb, 'CREATE DATABASE "dash"')
    devservices.influx1_write(influxdb, "dash", (out / "metrics.lp").read_text())
    return influxdb


def test_every_panel_query_returns_data(loaded):
    checked = 0
    for path in sorted((ROOT / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())
        items = [(p["title"], t["query"]) for p in board["panels"] for t in p.get("targets", [])]
        items += [(f"variable {v['name']}", v["query"]) for v in board["templating"]["list"]]
        items += [(f"annotation {a['name']}", a["query"]) for a in board["annotations"]["list"]]
        for title, query in items:
            res = devservices.influx1_query(loaded, substitute(query), db="dash")["results"][0]
            assert "error" not in res, f"{path.name} / {title}: {res.get('error')}"
            measurements = set(re.findall(r'FROM "(\w+)"', query))
            if measurements & WORKER_ONLY:
                continue
            assert res.get("series"), f"{path.name} / {title}: no data for {substitute(query)}"
            checked += 1
    assert checked >= 20
