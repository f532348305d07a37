"""Dashboard JSON checks, provisioning files, the Dockerfile and docker-compose validity.

The measurement check parses docs/measurements.md (the list of what the service writes) and every InfluxQL
query of every dashboard, so a renamed field, tag or measurement on either side fails here.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.adapters.grafana import DASHBOARD_TAG, DATASOURCE_UID, FOLDER_UID

ROOT = Path(__file__).resolve().parents[1]
BOARDS = sorted((ROOT / "dashboards").glob("*.json"))
EXPECTED_UIDS = {"driftline-fleet", "driftline-drift", "driftline-ops"}
BUILTINS = {"timeFilter", "__interval"}


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    out = [(p["title"], t["query"]) for p in board["panels"] for t in p.get("targets", [])]
    out += [(f"variable {v['name']}", v["query"]) for v in board["templating"]["list"] if v["type"] == "query"]
    out += [(f"annotation {a['name']}", a["query"]) for a in board["annotations"]["list"]]
    return out


# --- docs/measurements.md --------------------------------------------------------------------------------------

def documented() -> dict[str, dict[str, Any]]:
    """measurement -> {"tags", "fields", "notes"} from the table in docs/measurements.md."""
    text = (ROOT / "docs" / "measurements.md").read_text()
    out: dict[str, dict[str, Any]] = {}
    common_tags = {"window", "model_version"} if "tag `window`" in text and "`model_version`" in text else set()
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not re.fullmatch(r"`\w+`", cells[0]):
            continue
        tags = {t.strip().strip("`") for t in cells[1].split(",") if t.strip()}
        fields = set(re.findall(r"`(\w+)`", cells[2]))
        extra = re.search(r"\bfields?\b(.*)", cells[3])  # e.g. "with extra int fields `late` … and `duplicates`"
        if extra:
            fields |= set(re.findall(r"`(\w+)`", extra.group(1)))
        out[cells[0].strip("`")] = {"tags": tags | common_tags, "fields": fields, "notes": cells[3]}
    return out


def test_the_measurements_doc_parses() -> None:
    doc = documented()
    assert {"drift", "drift_summary", "latency", "errors", "throughput", "performance", "data_quality", "alerts",
            "retraining", "driftline_worker"} <= set(doc)
    assert {"score", "p_value", "threshold", "drifted", "exceeds", "n"} == doc["drift"]["fields"]
    assert {"late", "duplicates", "invalid"} <= doc["data_quality"]["fields"]
    assert {"model", "feature", "method", "window", "model_version"} <= doc["drift"]["tags"]


# --- a small InfluxQL reader: scopes (subqueries), measurements, fields, tags, tag values ------------------------

def split_scopes(q: str) -> list[str]:
    """The statement and each ``(SELECT …)`` subquery, innermost first; subqueries become ``__SUBQ<n>__``."""
    scopes: list[str] = []
    while True:
        start = q.rfind("(SELECT ")
        if start < 0:
            break
        depth, end = 0, start
        for end in range(start, len(q)):
            depth += {"(": 1, ")": -1}.get(q[end], 0)
            if depth == 0:
                break
        scopes.append(q[start + 1:end])
        q = f"{q[:start]}__SUBQ{len(scopes) - 1}__{q[end + 1:]}"
    return [*scopes, q]


def read_by(q: str) -> list[dict[str, Any]]:
    """Per scope: measurement (or subquery index), fields read by functions, tags filtered/grouped on, other
    identifiers, tag values compared against, aliases."""
    out = []
    for scope in split_scopes(q):
        m = re.search(r'FROM "(\w+)"', scope)
        sub = re.search(r"FROM __SUBQ(\d+)__", scope)
        group = re.search(r"GROUP BY (.*?)(?: fill\(|$)", scope)
        info: dict[str, Any] = {
            "measurement": m.group(1) if m else None, "subquery": int(sub.group(1)) if sub else None,
            "fields": set(re.findall(r'\w+\("(\w+)"\)', scope)),
            "tags": set(re.findall(r'"(\w+)" (?:=~|!~|=|!=) ', scope))
            | set(re.findall(r'"(\w+)"', group.group(1) if group else "")),
            "aliases": set(re.findall(r'AS "(\w+)"', scope)),
            "key": set(re.findall(r'WITH KEY = "(\w+)"', scope)),
            "values": [(t, v) for t, v in re.findall(r'"(\w+)" = \'([^\']*)\'', scope)]
            + [(t, alt) for t, rx in re.findall(r'"(\w+)" =~ /\^([^/$]*)\$/', scope) for alt in expand(rx)],
        }
        quoted = set(re.findall(r'"(\w+)"', scope))
        info["other"] = quoted - info["fields"] - info["tags"] - info["aliases"] - info["key"] - (
            {info["measurement"]} if info["measurement"] else set())
        out.append(info)
    return out


def expand(rx: str) -> list[str]:
    """Literal alternatives of a simple anchored regex: ``a`` → [a], ``(a|b)`` → [a, b], ``__(x|y)__`` →
    [__x__, __y__]; anything with template variables or other regex syntax → []."""
    m = re.fullmatch(r"([\w]*)\(([\w|]+)\)([\w]*)", rx)
    if m:
        return [m.group(1) + alt + m.group(3) for alt in m.group(2).split("|")]
    return [rx] if re.fullmatch(r"\w+", rx) else []


def test_the_influxql_reader() -> None:
    scopes = read_by('SELECT sum("firing") FROM (SELECT last("firing") AS "firing" FROM "alerts" WHERE '
                     '"model" =~ /^$model$/ AND "metric" =~ /^(a|b)$/ GROUP BY "alertname", "feature")')
    assert scopes[0]["measurement"] == "alerts" and scopes[0]["tags"] == {"model", "metric", "alertname", "feature"}
    assert scopes[0]["values"] == [("metric", "a"), ("metric", "b")]
    assert scopes[1]["subquery"] == 0 and scopes[1]["fields"] == {"firing"}
    assert read_by('SELECT "firing", "severity" FROM "alerts"')[0]["other"] == {"firing", "severity"}


def test_every_measurement_field_tag_and_tag_value_read_is_written() -> None:
    doc = documented()
    problems = []
    for b in BOARDS:
        for title, q in queries(load(b)):
            scopes = read_by(q)
            for s in scopes:
                where = f"{b.name} / {title}"
                if s["subquery"] is not None:
                    inner = scopes[s["subquery"]]
                    known = inner["aliases"] | inner["tags"]
                    problems += [f"{where}: {x} is not selected by its subquery"
                                 for x in s["fields"] | s["tags"] | s["other"] if x not in known]
                    continue
                meas = s["measurement"]
                if meas not in doc:
                    problems.append(f"{where}: measurement {meas} is not one the service writes")
                    continue
                tags, fields = doc[meas]["tags"], doc[meas]["fields"]
                problems += [f"{where}: {meas}.{f} is not a field the service writes" for f in s["fields"] - fields]
                problems += [f"{where}: {meas} has no tag {t}" for t in (s["tags"] | s["key"]) - tags]
                problems += [f"{where}: {meas} has neither tag nor field {x}" for x in s["other"] - tags - fields]
                for tag, value in s["values"]:
                    if tag != "window" and not re.search(rf"(?<!\w){re.escape(value)}(?!\w)", doc[meas]["notes"]):
                        problems.append(f"{where}: {meas}.{tag} = {value!r} is not a documented value")
    assert not problems, "\n".join(problems)


# --- JSON structure --------------------------------------------------------------------------------------------

def test_committed_json_is_the_builders_output() -> None:
    spec = importlib.util.spec_from_file_location("dash_build", ROOT / "dashboards" / "build.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rendered = mod.render()
    assert set(rendered) == {b.name for b in BOARDS}
    for name, text in rendered.items():
        assert (ROOT / "dashboards" / name).read_text() == text, f"run python dashboards/build.py ({name})"


def test_uids_ids_tags_and_datasource_references_resolve() -> None:
    boards = [load(b) for b in BOARDS]
    uids = [b["uid"] for b in boards]
    assert len(uids) == len(set(uids)) and set(uids) == EXPECTED_UIDS
    prov = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/driftline.yaml").read_text())
    ds_uids = {d["uid"] for d in prov["datasources"]}
    assert DATASOURCE_UID in ds_uids, "push and provisioning must create the same datasource uid"
    for board in boards:
        assert DASHBOARD_TAG in board["tags"] and "id" not in board
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), board["uid"]
        refs = [(p["title"], p["datasource"]) for p in board["panels"] if p["type"] != "row"]
        refs += [(p["title"], t["datasource"]) for p in board["panels"] for t in p.get("targets", [])]
        refs += [(f"variable {v['name']}", v["datasource"]) for v in board["templating"]["list"]
                 if v["type"] == "query"]
        refs += [(f"annotation {a['name']}", a["datasource"]) for a in board["annotations"]["list"]]
        for what, ref in refs:
            assert ref == {"type": "influxdb", "uid": ref["uid"]} and ref["uid"] in ds_uids, f"{board['uid']}: {what}"
        for p in board["panels"]:
            if p["type"] != "row":
                assert p["targets"] and all(t["rawQuery"] for t in p["targets"]), p["title"]
                assert len({t["refId"] for t in p["targets"]}) == len(p["targets"]), p["title"]


def test_template_variables() -> None:
    for b in BOARDS:
        board = load(b)
        names = [v["name"] for v in board["templating"]["list"]]
        assert {"model", "model_version", "window"} <= set(names), b.name
        if board["uid"] == "driftline-drift":
            assert "feature" in names
        for v in board["templating"]["list"]:
            if v["type"] == "custom":
                check_custom(b.name, v)
                continue
            assert v["query"].startswith("SHOW TAG VALUES FROM ") and v["includeAll"] and v["allValue"] == ".*"
            used = set(re.findall(r"\$(\w+)", v["query"]))
            assert used <= set(names[:names.index(v["name"])]), f"{b.name}: {v['name']} uses a later variable"
        for title, q in queries(board):
            used = {u for u in re.findall(r"\$(\w+)", q) if not u.startswith("tag_")}
            assert used <= set(names) | BUILTINS, f"{b.name} / {title}: undefined {used - set(names) - BUILTINS}"
            if not title.startswith("variable"):
                assert "$timeFilter" in q, f"{b.name} / {title}: no $timeFilter"


def check_custom(board: str, v: dict[str, Any]) -> None:
    """A custom variable (``baseline``): its ``text : value`` pairs, options and default agree; every value is a
    regular expression (used raw, ``${name:raw}``) that matches exactly the tag value its text names."""
    pairs = [tuple(part.split(" : ")) for part in v["query"].split(",")]
    assert [(o["text"], o["value"]) for o in v["options"]] == pairs, f"{board}: {v['name']} options"
    assert v["current"]["value"] == pairs[0][1] and not v["multi"] and not v["includeAll"], v["name"]
    if v["name"] == "baseline":
        tag_value = {"training": ""}  # training: the points without the tag
        for text, value in pairs:
            assert re.fullmatch(value, tag_value.get(text, text)), (text, value)
            assert not any(re.fullmatch(value, other) for other in ("", "trailing", "seasonal")
                           if other != tag_value.get(text, text)), (text, value)


def test_drift_queries_follow_the_baseline_variable() -> None:
    """Every panel reading drift or drift_summary filters on the baseline picked (untagged = training), or
    pins the training comparison explicitly (the multivariate statistic exists against training only) —
    except the segment panels: segments are compared with the training profile only (no baseline tag)."""
    pinned = 0
    for b in BOARDS:
        board = load(b)
        names = {v["name"] for v in board["templating"]["list"]}
        for title, q in queries(board):
            if re.search(r'FROM "drift(_summary)?"', q) and not title.startswith("variable") \
                    and '"segment" != \'\'' not in q:
                if '"baseline" = \'\'' in q:
                    pinned += 1
                    assert "training" in title.lower() and "__multivariate__" in q, f"{b.name} / {title}"
                    continue
                assert "baseline" in names and '"baseline" =~ /^${baseline:raw}$/' in q, f"{b.name} / {title}"
    assert pinned == 2  # the multivariate panel's score and threshold


def test_panels_do_not_overlap() -> None:
    for b in BOARDS:
        cells: dict[tuple[int, int], str] = {}
        for p in load(b)["panels"]:
            g = p["gridPos"]
            assert g["x"] >= 0 and g["w"] > 0 and g["h"] > 0 and g["x"] + g["w"] <= 24, p["title"]
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    assert (x, y) not in cells, f"{b.name}: {p['title']} overlaps {cells[(x, y)]}"
                    cells[(x, y)] = p["title"]


def test_the_issues_panels_are_there() -> None:
    titles = {load(b)["uid"]: " | ".join(p["title"] for p in load(b)["panels"]).lower() for b in BOARDS}
    for word in ("throughput", "latency", "error rate", "accuracy", "drifted features", "open alerts"):
        assert word in titles["driftline-fleet"], word
    for word in ("heatmap", "psi", "ks", "p-values", "prediction and score", "multivariate", "missing",
                 "out-of-range", "unseen", "invalid"):
        assert word in titles["driftline-drift"], word
    for word in ("events/s", "window lag", "sink queue", "dlq", "retraining"):
        assert word in titles["driftline-ops"], word
    fleet = load(ROOT / "dashboards" / "fleet.json")
    assert fleet["panels"][0]["type"] == "row" and fleet["panels"][0]["repeat"] == "model"
    ops = load(ROOT / "dashboards" / "ops.json")
    assert {a["name"] for a in ops["annotations"]["list"]} == {"Alerts", "Retraining"}


# --- provisioning, compose, Dockerfile -------------------------------------------------------------------------

def test_provisioning_files() -> None:
    ds = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/driftline.yaml").read_text())
    (d,) = ds["datasources"]
    assert d["type"] == "influxdb" and d["uid"] == DATASOURCE_UID and d["url"] == "http://influxdb:8086"
    assert d["jsonData"]["dbName"] and d["secureJsonData"]["httpHeaderValue1"].startswith("Token ")
    dash = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/driftline.yaml").read_text())
    (provider,) = dash["providers"]
    assert provider["folderUid"] == FOLDER_UID and provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/driftline"
    am = yaml.safe_load((ROOT / "deploy/alertmanager/alertmanager.yml").read_text())
    receivers = {r["name"]: r for r in am["receivers"]}
    assert am["route"]["receiver"] in receivers
    assert all(r["receiver"] in receivers for r in am["route"].get("routes", []))
    assert any(w["url"].startswith("http://alertmanager-webhook:") for r in receivers.values()
               for w in r.get("webhook_configs", []))
    script = ROOT / "deploy/influxdb/create-dbrp.sh"
    assert script.stat().st_mode & 0o111 and "influx v1 dbrp create" in script.read_text()


def test_dockerfile_is_slim_and_non_root() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r"pip install .*\s\.\s*$", text, re.M)
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] == "nonroot"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv"} <= set(ignored)


def compose(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker-compose", "-f", "docker-compose.yml", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


needs_compose = pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")


@needs_compose
def test_docker_compose_config_is_valid() -> None:
    r = compose("config", "-q")
    assert r.returncode == 0, r.stderr
    r = compose("--env-file", ".env.example", "config", "-q")
    assert r.returncode == 0 and "WARNING" not in r.stderr, r.stderr


@needs_compose
def test_docker_compose_services() -> None:
    r = compose("--env-file", ".env.example", "config")
    assert r.returncode == 0, r.stderr
    services = yaml.safe_load(r.stdout)["services"]
    assert {"kafka", "kafka-init", "influxdb", "grafana", "alertmanager", "webhook-echo", "worker-1", "worker-2",
            "simulator"} <= set(services)
    assert services["kafka"]["image"].startswith("apache/kafka:")
    kafka_env = services["kafka"]["environment"]
    assert "controller" in kafka_env["KAFKA_PROCESS_ROLES"]
    # host clients (docs/deploy.md: localhost:9094) get an advertised address they can reach
    assert "EXTERNAL://localhost:9094" in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert "EXTERNAL://:9094" in kafka_env["KAFKA_LISTENERS"].split(",")
    assert "EXTERNAL:PLAINTEXT" in kafka_env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    assert services["kafka"]["ports"] == ["127.0.0.1:9094:9094/tcp"]  # 9092 advertises kafka:9092: not published
    init = " ".join(map(str, services["kafka-init"]["command"]))
    for topic in ("predictions", "labels", "monitor.retraining", "monitor.dlq"):
        assert topic in init
    influx = services["influxdb"]
    assert influx["image"].startswith("influxdb:2")
    assert {"DOCKER_INFLUXDB_INIT_MODE", "DOCKER_INFLUXDB_INIT_ORG", "DOCKER_INFLUXDB_INIT_BUCKET",
            "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"} <= set(influx["environment"])
    assert any("docker-entrypoint-initdb.d" in str(v) for v in influx["volumes"])
    for name in ("kafka", "influxdb", "grafana", "alertmanager"):
        assert services[name]["healthcheck"]["test"], name
    for name in ("worker-1", "worker-2"):
        w = services[name]
        assert w["command"][:2] == ["monitor", "run"]
        env = w["environment"]
        assert env["MONITOR_BROKER"] == "kafka://kafka:9092"
        assert env["MONITOR_INFLUX_URL"] == "http://influxdb:8086" and env["MONITOR_INFLUX_TOKEN"]
        assert env["MONITOR_INFLUX_ORG"] and env["MONITOR_INFLUX_BUCKET"] and env["MONITOR_WINDOW"]
        assert env["MONITOR_ALERTMANAGER_URL"] == "http://alertmanager:9093" and env["MONITOR_WEBHOOK_URL"]
        assert "MONITOR_REFERENCE" in env or int(env["MONITOR_WARMUP_EVENTS"]) > 0
        deps = w["depends_on"]
        assert deps["kafka"]["condition"] == deps["influxdb"]["condition"] == "service_healthy"
        assert deps["kafka-init"]["condition"] == "service_completed_successfully"
    sim = services["simulator"]["command"]
    assert sim[:2] == ["monitor", "simulate"] and "--broker" in sim
    assert services["grafana"]["depends_on"]["influxdb"]["condition"] == "service_healthy"
    mounts = {}
    for vol in services["grafana"]["volumes"]:
        src, dst = (vol["source"], vol["target"]) if isinstance(vol, dict) else vol.split(":")[:2]
        if "/" not in src:
            continue  # a named volume
        assert Path(src).exists(), src
        mounts[dst] = Path(src).resolve()
    assert mounts["/etc/grafana/provisioning"] == (ROOT / "deploy/grafana/provisioning").resolve()
    assert mounts["/var/lib/grafana/dashboards/driftline"] == (ROOT / "dashboards").resolve()
    env_example = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines()
                   if "=" in line and not line.startswith("#")}
    used = set(re.findall(r"\$\{(\w+)(?::?-[^}]*)?\}", (ROOT / "docker-compose.yml").read_text()))
    assert used - env_example <= {v for v in used if re.search(rf"\${{{v}:-", (ROOT / "docker-compose.yml").read_text())}
