"""After a simulated run written to a real InfluxDB (1.6.7, InfluxQL), every dashboard query returns data.

The data comes from the real pipeline, run as a user would (subprocesses):
``monitor simulate mixed`` → ``monitor reference build --segments country,device`` → ``monitor replay`` (segments
on) → ``OUT/metrics.lp`` POSTed to ``/write?db=driftline``. Each dashboard's template variables are then
resolved the way Grafana does it — by running their own queries in order — and substituted into every panel,
variable and annotation query:

* pass "all": every variable at its default (All → ``.*``; the ``baseline`` variable: training), as a
  dashboard opens;
* pass "picked": model, model version, window and worker set to the first value their query returns, and
  ``baseline`` to ``trailing`` (the replay runs with a trailing baseline, so its points exist).

Measurements a replay doesn't write (``driftline_worker`` comes only from the streaming worker; ``alerts`` and
``retraining`` only when something fires) are checked to be valid InfluxQL against the server; when the replay
did write them, their panels must return data like the rest.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DB = "driftline"
INTERVAL = "1m"


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
    r = subprocess.run([sys.executable, "-m", "monitor", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=600, env={**os.environ, **(env or {})})
    assert r.returncode == 0, f"monitor {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"


def query(url: str, q: str) -> dict[str, Any]:
    r = httpx.post(f"{url}/query", params={"db": DB, "epoch": "ms"}, data={"q": q}, timeout=30)
    body: dict[str, Any] = r.json()
    if r.status_code != 200 or "error" in body:
        return {"error": body.get("error") or r.text}
    return dict(body["results"][0])


@pytest.fixture(scope="module")
def simulated(influxdb: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("dashboards")
    events, refdir, out = d / "events.jsonl", d / "refs", d / "out"
    run_cli("simulate", "mixed", "--out", str(events), "--windows", "12", "--reference-dir", str(refdir), cwd=d)
    tables = sorted(refdir.glob("*.reference.csv"))
    assert tables, f"simulate wrote no reference tables into {refdir}"
    profiles = d / "profiles"
    profiles.mkdir()
    for table in tables:
        model = table.name.removesuffix(".reference.csv")
        run_cli("reference", "build", "--model", model, "--data", str(table), "--out", str(profiles / f"{model}.json"),
                "--segments", "country,device", cwd=d)
    ref = profiles / f"{tables[0].name.removesuffix('.reference.csv')}.json" if len(tables) == 1 else profiles
    config = d / "baselines.yaml"
    config.write_text("baselines: {trailing: 1h, block: 5m, min_events: 100}\n")
    # segments on: the whole-model panels must still show the whole model, the segment panels the segments
    run_cli("replay", str(events), "--reference", str(ref), "--out", str(out), "--window", "5m", "--config",
            str(config), cwd=d, env={"MONITOR_SEGMENTS": "country,device"})
    lp = (out / "metrics.lp").read_bytes()
    r = httpx.post(f"{influxdb}/write", params={"db": DB, "precision": "ns"}, content=lp, timeout=60)
    assert r.status_code == 204, r.text
    stamps = [int(line.rsplit(b" ", 1)[1]) for line in lp.splitlines() if line.strip()]
    written = {line.split(b",", 1)[0].split(b" ", 1)[0].decode() for line in lp.splitlines() if line.strip()}
    # Grafana's $timeFilter for a range covering the run (window ends; first window starts 5m earlier)
    time_filter = f"time >= {min(stamps) // 1_000_000 - 300_000}ms and time <= {max(stamps) // 1_000_000}ms"
    return {"url": influxdb, "measurements": written, "time_filter": time_filter, "lp": lp}


def boards() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, json.loads(p.read_text())) for p in sorted((ROOT / "dashboards").glob("*.json"))]


def substitute(q: str, values: dict[str, str], time_filter: str) -> str:
    q = q.replace("$timeFilter", time_filter).replace("$__interval", INTERVAL)
    for name in sorted(values, key=len, reverse=True):  # $model_version before $model
        q = q.replace(f"${{{name}:raw}}", values[name]).replace(f"${name}", values[name])
    assert not re.findall(r"\$(?!tag_)\w", q), f"unsubstituted variable in {q}"
    return q


def tag_values(result: dict[str, Any]) -> list[str]:
    return [row[1] for s in result.get("series", []) for row in s["values"]]


def resolve(board: dict[str, Any], sim: dict[str, Any], picked: bool) -> dict[str, str]:
    """Run the board's variable queries in order, as Grafana does; return name → substituted text."""
    values: dict[str, str] = {}
    for v in board["templating"]["list"]:
        if v["type"] == "custom":  # the baseline variable: its default, or the next option
            values[v["name"]] = v["options"][1 if picked else 0]["value"]
            continue
        res = query(sim["url"], substitute(v["query"], values, sim["time_filter"]))
        assert "error" not in res, f"variable {v['name']}: {res['error']}"
        found = tag_values(res)
        if picked and found and v["name"] != "feature":
            values[v["name"]] = re.escape(found[0])
        else:
            assert v["includeAll"] and v["allValue"] == ".*", v["name"]
            values[v["name"]] = v["allValue"]
    return values


def items(board: dict[str, Any]) -> list[tuple[str, str]]:
    out = [(p["title"], t["query"]) for p in board["panels"] for t in p.get("targets", [])]
    out += [(f"variable ${v['name']}", v["query"]) for v in board["templating"]["list"] if v["type"] == "query"]
    out += [(f"annotation {a['name']}", a["query"]) for a in board["annotations"]["list"]]
    return out


@pytest.mark.parametrize("mode", ["all", "picked"])
def test_every_dashboard_query_returns_data(simulated: dict[str, Any], mode: str) -> None:
    with_data, valid_only, failures = [], [], []
    for name, board in boards():
        values = resolve(board, simulated, picked=mode == "picked")
        for title, q in items(board):
            text = substitute(q, values, simulated["time_filter"])
            res = query(simulated["url"], text)
            if "error" in res:
                failures.append(f"{name} / {title}: InfluxQL error {res['error']!r} for {text}")
                continue
            read = set(re.findall(r'FROM "(\w+)"', q))
            if not read <= simulated["measurements"]:
                valid_only.append(f"{name} / {title} (reads {', '.join(sorted(read - simulated['measurements']))})")
            elif res.get("series"):
                with_data.append(f"{name} / {title}")
            else:
                failures.append(f"{name} / {title}: no data for {text}")
    print(f"\n[{mode}] {len(with_data)} queries returned data; valid InfluxQL, no data in a replay:")
    for line in valid_only:
        print("   ", line)
    assert not failures, "\n".join(failures)
    assert len(with_data) >= 25
    assert all("driftline_worker" in line or "alerts" in line or "retraining" in line for line in valid_only)


def test_replay_wrote_every_measurement_the_dashboards_need(simulated: dict[str, Any]) -> None:
    read = {m for _, b in boards() for _, q in items(b) for m in re.findall(r'FROM "(\w+)"', q)}
    missing = read - simulated["measurements"]
    assert missing <= {"driftline_worker", "alerts", "retraining"}, missing


def test_the_training_comparison_is_the_points_without_a_baseline_tag(simulated: dict[str, Any]) -> None:
    """docs/measurements.md: ``"baseline" = ''`` selects the training comparison; the dashboards' ``/^()$/`` too."""
    def count(where: str) -> int:
        res = query(simulated["url"], f'SELECT count("score") FROM "drift" WHERE {where} AND {simulated["time_filter"]}')
        assert "error" not in res, res
        return int(res["series"][0]["values"][0][1]) if res.get("series") else 0

    untagged, regex, trailing = count("\"baseline\" = ''"), count('"baseline" =~ /^()$/'), count('"baseline" = \'trailing\'')
    assert untagged == regex > 0 and trailing > 0
    assert count("time > 0") == untagged + trailing


def test_whole_model_panels_read_the_whole_model_and_segment_panels_the_segments(simulated: dict[str, Any]) -> None:
    """``"segment" = ''`` selects exactly the points without the tag on InfluxDB 1.6.7, ``!= ''`` the segments."""
    tf = simulated["time_filter"]
    whole = query(simulated["url"], f'SELECT sum("events") FROM "throughput" WHERE "segment" = \'\' AND {tf}')
    segs = query(simulated["url"], f'SELECT sum("events") FROM "throughput" WHERE "segment" != \'\' AND {tf} '
                                   'GROUP BY "segment"')
    lines = simulated["lp"].decode().splitlines()
    expected = sum(int(re.search(r" events=(\d+)i", line).group(1)) for line in lines  # type: ignore[union-attr]
                   if line.startswith("throughput,") and "segment=" not in line)
    assert whole["series"][0]["values"][0][1] == expected
    by_seg = {s["tags"]["segment"]: s["values"][0][1] for s in segs["series"]}
    assert set(by_seg) == {"country=US", "country=DE", "country=FR", "country=GB", "country=IN", "device=mobile",
                           "device=desktop", "device=tablet"}
    assert sum(v for k, v in by_seg.items() if k.startswith("country=")) == expected  # every event has a country
    drifted = query(simulated["url"], f'SELECT "drifted_features" FROM "drift_summary" WHERE "segment" != \'\' '
                                      f'AND "drifted_features" > 0 AND {tf} GROUP BY "segment"')
    assert {s["tags"]["segment"] for s in drifted["series"]} >= {"country=US", "device=mobile"}  # amount +1 sd
