"""Dashboard JSON checks, provisioning files and docker-compose validity."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOARDS = sorted((ROOT / "dashboards").glob("*.json"))


def load(path):
    return json.loads(path.read_text())


def queries(board):
    for p in board["panels"]:
        for t in p.get("targets", []):
            yield p, t["query"]
    for v in board["templating"]["list"]:
        yield None, v["query"]
    for a in board["annotations"]["list"]:
        yield None, a["query"]


def documented():
    """measurement -> (tags, fields) parsed from docs/measurements.md."""
    out = {}
    for line in (ROOT / "docs" / "measurements.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        name = cells[0].strip("`")
        tags = {t.strip() for t in cells[1].split(",") if t.strip()} | {"window", "model_version"}
        fields = set(re.findall(r"`(\w+)`", cells[2])) | set(re.findall(r"`(\w+)`", cells[3] if len(cells) > 3 else ""))
        out[name] = (tags, fields)
    return out


def test_committed_json_is_the_builders_output():
    import importlib.util

    spec = importlib.util.spec_from_file_location("dash_build", ROOT / "dashboards" / "build.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for name, text in mod.render().items():
        assert (ROOT / "dashboards" / name).read_text() == text, f"run python dashboards/build.py ({name})"


def test_uids_ids_and_datasources():
    uids = [load(b)["uid"] for b in BOARDS]
    assert len(uids) == len(set(uids)) == 3
    prov = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/driftline.yaml").read_text())
    ds_uids = {d["uid"] for d in prov["datasources"]}
    for b in BOARDS:
        board = load(b)
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids))
        for p in board["panels"]:
            if p["type"] != "row":
                assert p["datasource"]["uid"] in ds_uids
                for t in p["targets"]:
                    assert t["datasource"]["uid"] in ds_uids


def test_panels_do_not_overlap():
    for b in BOARDS:
        cells = {}
        for p in load(b)["panels"]:
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{b.name}: {p['title']} overlaps {cells[(x, y)]}"
                    cells[(x, y)] = p["title"]


def test_every_measurement_field_and_tag_read_is_written():
    doc = documented()
    for b in BOARDS:
        for _, q in queries(load(b)):
            for meas in re.findall(r'FROM "(\w+)"', q):
                assert meas in doc, f"{b.name}: {meas} is not a measurement the service writes"
                tags, fields = doc[meas]
                for f in re.findall(r'(?:mean|max|min|last|sum|count)\("(\w+)"\)', q):
                    if f != "firing" or meas == "alerts":
                        assert f in fields, f"{b.name}: {meas}.{f} is not written"
                for tag in re.findall(r'"(\w+)" =~', q) + re.findall(r'"(\w+)" = \'', q):
                    assert tag in tags | fields, f"{b.name}: {meas} has no tag {tag}"
            for key in re.findall(r'WITH KEY = "(\w+)"', q):
                meas = re.findall(r'FROM "(\w+)"', q)[0]
                assert key in doc[meas][0]


def test_provisioning_files_parse():
    dash = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/driftline.yaml").read_text())
    assert dash["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/driftline"
    am = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text())
    assert am["route"]["receiver"] in {r["name"] for r in am["receivers"]}


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_docker_compose_config_is_valid():
    r = subprocess.run(["docker-compose", "-f", "docker-compose.yml", "--env-file", ".env.example", "config", "-q"],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cfg = yaml.safe_load(subprocess.run(["docker-compose", "-f", "docker-compose.yml", "--env-file", ".env.example",
                                         "config"], cwd=ROOT, capture_output=True, text=True).stdout)
    services = cfg["services"]
    assert {"kafka", "kafka-init", "influxdb", "grafana", "alertmanager", "worker-1", "worker-2", "simulator"} <= set(
        services)
    assert services["worker-1"]["environment"]["MONITOR_BROKER"] == "kafka://kafka:9092"
    assert services["worker-1"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    for vol in services["grafana"]["volumes"]:
        src = vol["source"] if isinstance(vol, dict) else vol.split(":")[0]
        assert Path(src).exists(), src
