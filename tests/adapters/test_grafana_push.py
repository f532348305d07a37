"""`monitor dashboards push|list` against a loopback server that answers like Grafana's HTTP API.

The fake keeps state (datasources, folders, dashboards with versions), checks credentials (a service-account
token or basic auth; a viewer token may read but not write), enforces the dashboard version check
(``overwrite: false`` + stale version → 412) and records every request.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import typer
from typer.testing import CliRunner

from monitor.adapters.grafana import DATASOURCE_UID, FOLDER_UID, PushError, push, remote_status
from monitor.cli_dashboards import register
from monitor.devservices import free_port

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"
ADMIN, VIEWER = "Bearer glsa_admin", "Bearer glsa_viewer"
BASIC = "Basic " + base64.b64encode(b"admin:secret").decode()
UIDS = ["driftline-drift", "driftline-fleet", "driftline-ops"]


class FakeGrafana:
    def __init__(self) -> None:
        self.datasources: dict[str, dict[str, Any]] = {}
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.dashboard_folder: dict[str, str] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        #: called after a dashboard GET (uid) — lets a test change it "concurrently"
        self.after_get: Callable[[str], None] | None = None
        outer = self

        class H(BaseHTTPRequestHandler):
            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> Any:
                return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")

            def handle_one(self, method: str) -> None:
                auth = self.headers.get("Authorization")
                outer.requests.append((method, self.path, auth))
                if auth not in (ADMIN, VIEWER, BASIC):
                    return self._send(401, {"message": "invalid API key"})
                if auth == VIEWER and method != "GET":
                    return self._send(403, {"message": "You'll need additional permissions to perform this action."})
                with outer_lock:
                    return self.route(method)

            def route(self, method: str) -> None:
                split = urlsplit(self.path)
                p, query = split.path, parse_qs(split.query)
                if method == "GET" and p.startswith("/api/datasources/uid/"):
                    uid = p.rsplit("/", 1)[1]
                    if uid not in outer.datasources:
                        return self._send(404, {"message": "Data source not found"})
                    return self._send(200, outer.datasources[uid])
                if method == "POST" and p == "/api/datasources":
                    b = self._body()
                    if any(d["name"] == b["name"] for d in outer.datasources.values()):
                        return self._send(409, {"message": "data source with the same name already exists"})
                    outer.datasources[b["uid"]] = outer.stored_datasource(b)
                    return self._send(200, {"message": "Datasource added", "id": 1})
                if method == "PUT" and p.startswith("/api/datasources/uid/"):
                    uid = p.rsplit("/", 1)[1]
                    if uid not in outer.datasources:
                        return self._send(404, {"message": "Data source not found"})
                    outer.datasources[uid] = outer.stored_datasource(self._body(), outer.datasources[uid])
                    return self._send(200, {"message": "Datasource updated"})
                if method == "GET" and p.startswith("/api/folders/"):
                    uid = p.rsplit("/", 1)[1]
                    if uid not in outer.folders:
                        return self._send(404, {"message": "folder not found"})
                    return self._send(200, outer.folders[uid])
                if method == "POST" and p == "/api/folders":
                    b = self._body()
                    if b["uid"] in outer.folders:
                        return self._send(409, {"message": "a folder with the same uid already exists"})
                    outer.folders[b["uid"]] = {"uid": b["uid"], "title": b["title"], "id": 3, "version": 1}
                    return self._send(200, outer.folders[b["uid"]])
                if method == "PUT" and p.startswith("/api/folders/"):
                    uid, b = p.rsplit("/", 1)[1], self._body()
                    f = outer.folders[uid]
                    if not b.get("overwrite") and b.get("version") != f["version"]:
                        return self._send(412, {"message": "the folder has been changed by someone else"})
                    f.update(title=b["title"], version=f["version"] + 1)
                    return self._send(200, f)
                if method == "GET" and p.startswith("/api/dashboards/uid/"):
                    uid = p.rsplit("/", 1)[1]
                    if uid not in outer.dashboards:
                        return self._send(404, {"message": "Dashboard not found"})
                    body = {"dashboard": outer.dashboards[uid],
                            "meta": {"folderUid": outer.dashboard_folder.get(uid, ""), "provisioned": False}}
                    if outer.after_get:
                        outer.after_get(uid)
                    return self._send(200, body)
                if method == "POST" and p == "/api/dashboards/db":
                    b = self._body()
                    d = dict(b["dashboard"])
                    old = outer.dashboards.get(d["uid"])
                    if old is not None and not b.get("overwrite") and d.get("version") != old["version"]:
                        return self._send(412, {"status": "version-mismatch",
                                                "message": "The dashboard has been changed by someone else"})
                    if any(o["title"] == d["title"] and u != d["uid"]
                           and outer.dashboard_folder.get(u) == b.get("folderUid", "")
                           for u, o in outer.dashboards.items()):
                        return self._send(412, {"status": "name-exists", "message": "A dashboard with the same "
                                                "name in the folder already exists"})
                    if b.get("folderUid") and b["folderUid"] not in outer.folders:
                        return self._send(400, {"message": "folder not found"})
                    d["version"] = (old["version"] if old else 0) + 1
                    d["id"] = 7
                    outer.dashboards[d["uid"]] = d
                    outer.dashboard_folder[d["uid"]] = b.get("folderUid", "")
                    return self._send(200, {"status": "success", "uid": d["uid"], "version": d["version"], "id": 7})
                if method == "GET" and p == "/api/search":
                    tag = query.get("tag", [None])[0]
                    hits = [{"uid": uid, "title": d["title"], "type": "dash-db", "tags": d.get("tags", [])}
                            for uid, d in outer.dashboards.items() if tag is None or tag in d.get("tags", [])]
                    return self._send(200, hits)
                return self._send(404, {"message": f"unexpected {method} {p}"})

            def do_GET(self) -> None:
                self.handle_one("GET")

            def do_POST(self) -> None:
                self.handle_one("POST")

            def do_PUT(self) -> None:
                self.handle_one("PUT")

            def log_message(self, *a: Any) -> None:
                return

        outer_lock = threading.RLock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @staticmethod
    def stored_datasource(body: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
        """What Grafana returns for a datasource: no secrets, but secureJsonFields and a few keys of its own."""
        secure = dict((old or {}).get("secureJsonFields", {}))
        secure.update({k: True for k in body.get("secureJsonData", {})})
        stored = {k: v for k, v in body.items() if k != "secureJsonData"}
        stored.update(id=1, orgId=1, readOnly=False, basicAuth=False, withCredentials=False,
                      secureJsonFields=secure, version=(old or {}).get("version", 0) + 1)
        stored["_secrets"] = {**(old or {}).get("_secrets", {}), **body.get("secureJsonData", {})}
        return stored

    def writes(self, since: int = 0) -> list[tuple[str, str, str | None]]:
        return [r for r in self.requests[since:] if r[0] != "GET"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    g = FakeGrafana()
    try:
        yield g
    finally:
        g.close()


def run_push(g: FakeGrafana, token: str = "glsa_admin", **kw: Any) -> list[tuple[str, str, str, str]]:
    kw.setdefault("influx_url", "http://influxdb:8086")
    kw.setdefault("database", "driftline")
    return [(c.kind, c.uid, c.action, c.detail) for c in push(g.url, token, DASHBOARDS, **kw)]


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:  # a callback keeps `dashboards` a sub-command
        pass

    return app


def test_push_creates_everything_then_is_idempotent(grafana: FakeGrafana) -> None:
    first = run_push(grafana)
    assert [(k, a) for k, _, a, _ in first] == [("datasource", "created"), ("folder", "created")] + [
        ("dashboard", "created")] * 3
    assert sorted(grafana.dashboards) == UIDS and set(grafana.dashboard_folder.values()) == {FOLDER_UID}
    assert all(auth == ADMIN for _, _, auth in grafana.requests)
    ds = grafana.datasources[DATASOURCE_UID]
    assert ds["type"] == "influxdb" and ds["url"] == "http://influxdb:8086" and ds["jsonData"]["dbName"] == "driftline"
    for uid in UIDS:
        assert grafana.dashboards[uid]["version"] == 1
        assert next(d for _, u, _, d in first if u == uid).endswith("(v1)")

    n = len(grafana.requests)
    second = run_push(grafana)
    assert {a for _, _, a, _ in second} == {"unchanged"}
    assert grafana.writes(n) == [], "an unchanged push must not write"
    assert all(grafana.dashboards[uid]["version"] == 1 for uid in UIDS)


def test_changed_datasource_is_updated_with_what_changed(grafana: FakeGrafana) -> None:
    run_push(grafana)
    changed = run_push(grafana, influx_url="http://other:8086", database="metrics")
    ds_change = changed[0]
    assert ds_change[:3] == ("datasource", DATASOURCE_UID, "updated")
    assert "url" in ds_change[3] and "jsonData.dbName" in ds_change[3]
    assert {a for k, _, a, _ in changed if k == "dashboard"} == {"unchanged"}
    assert grafana.datasources[DATASOURCE_UID]["url"] == "http://other:8086"


def test_influx_token_is_sent_as_a_secret_and_a_same_token_repush_is_unchanged(grafana: FakeGrafana) -> None:
    run_push(grafana, influx_token="tok-1")
    ds = grafana.datasources[DATASOURCE_UID]
    assert ds["_secrets"] == {"httpHeaderValue1": "Token tok-1"}
    assert "tok-1" not in json.dumps({k: v for k, v in ds.items() if k != "_secrets"})
    assert run_push(grafana, influx_token="tok-1")[0][2] == "unchanged"
    assert run_push(grafana)[0][2] == "unchanged", "a push without --influx-token keeps the stored token"
    assert grafana.datasources[DATASOURCE_UID]["jsonData"]["httpHeaderName1"] == "Authorization"
    rotated = run_push(grafana, influx_token="tok-2")
    assert rotated[0][2] == "updated" and "driftlineTokenSha256" in rotated[0][3]
    assert grafana.datasources[DATASOURCE_UID]["_secrets"] == {"httpHeaderValue1": "Token tok-2"}


def test_a_dashboard_edited_in_grafana_is_updated_version_aware(grafana: FakeGrafana) -> None:
    run_push(grafana)
    edited = grafana.dashboards["driftline-drift"]
    edited["panels"][1]["title"] = "renamed in the UI"
    edited["version"] = 5
    n = len(grafana.requests)
    result = {u: (a, d) for k, u, a, d in run_push(grafana) if k == "dashboard"}
    assert result["driftline-drift"][0] == "updated"
    assert "v5 → v6" in result["driftline-drift"][1]
    assert "1 panels added" in result["driftline-drift"][1] and "1 panels removed" in result["driftline-drift"][1]
    assert result["driftline-fleet"][0] == result["driftline-ops"][0] == "unchanged"
    assert [p for _, p, _ in grafana.writes(n)] == ["/api/dashboards/db"]
    assert grafana.dashboards["driftline-drift"]["panels"][1]["title"] != "renamed in the UI"


def test_a_dashboard_changed_between_read_and_write_is_not_overwritten(grafana: FakeGrafana) -> None:
    run_push(grafana)
    grafana.dashboards["driftline-ops"]["title"] = "old title"

    def concurrent_edit(uid: str) -> None:
        if uid == "driftline-ops":
            grafana.dashboards[uid] = {**grafana.dashboards[uid], "version": grafana.dashboards[uid]["version"] + 1}

    grafana.after_get = concurrent_edit
    with pytest.raises(PushError, match=r"changed in Grafana since it was read \(412 version-mismatch"):
        run_push(grafana)
    assert grafana.dashboards["driftline-ops"]["title"] == "old title"


def test_a_same_title_dashboard_with_another_uid_is_reported(grafana: FakeGrafana) -> None:
    run_push(grafana)
    grafana.dashboards["hand-made"] = {**grafana.dashboards.pop("driftline-fleet"), "uid": "hand-made"}
    grafana.dashboard_folder["hand-made"] = FOLDER_UID
    with pytest.raises(PushError, match=r"creating dashboard driftline-fleet: .*another uid \(412 name-exists"):
        run_push(grafana)


def test_folder_is_renamed_to_the_requested_title(grafana: FakeGrafana) -> None:
    run_push(grafana)
    out = run_push(grafana, folder_title="ML monitoring")
    assert out[1][:3] == ("folder", FOLDER_UID, "updated") and "ML monitoring" in out[1][3]
    assert grafana.folders[FOLDER_UID]["title"] == "ML monitoring"


def test_basic_auth_user_password(grafana: FakeGrafana) -> None:
    run_push(grafana, token="admin:secret")
    assert {auth for _, _, auth in grafana.requests} == {BASIC}


@pytest.mark.parametrize("token, words", [
    ("glsa_wrong", r"rejected the credentials \(401\) while reading the datasource"),
    ("glsa_viewer", r"lacks permission \(403\) while creating the datasource"),
])
def test_auth_and_permission_errors_are_clear(grafana: FakeGrafana, token: str, words: str) -> None:
    with pytest.raises(PushError, match=words):
        run_push(grafana, token=token)
    assert grafana.writes() == [] or token == "glsa_viewer"
    assert not grafana.dashboards


def test_datasource_name_taken_by_another_uid(grafana: FakeGrafana) -> None:
    grafana.datasources["someone-elses"] = {"uid": "someone-elses", "name": "Driftline InfluxDB"}
    with pytest.raises(PushError, match=r"creating the datasource: .*409.*another uid"):
        run_push(grafana)


def test_connection_refused_is_clear() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(PushError, match="cannot connect to Grafana at " + url):
        push(url, "glsa_admin", DASHBOARDS, influx_url="http://i", database="d", timeout=2)


def test_cli_push_prints_changes_and_errors(grafana: FakeGrafana) -> None:
    runner = CliRunner()
    args = ["dashboards", "push", "--url", grafana.url, "--influx-url", "http://influxdb:8086", "--bucket", "driftline"]
    r = runner.invoke(cli(), args, env={"GRAFANA_TOKEN": "glsa_admin", "COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert r.output.count("created") == 5 and "5 change(s)" in r.output
    r = runner.invoke(cli(), [*args, "--token", "glsa_admin"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and r.output.count("unchanged") == 5 and "everything up to date" in r.output
    r = runner.invoke(cli(), [*args, "--token", "glsa_wrong"], env={"COLUMNS": "200"})
    assert r.exit_code == 1 and "401" in r.output
    refused = ["dashboards", "push", "--url", f"http://127.0.0.1:{free_port()}", "--token", "t", "--timeout", "2"]
    r = runner.invoke(cli(), refused, env={"COLUMNS": "200"})
    assert r.exit_code == 1 and "cannot connect" in r.output


def test_list_compares_with_grafana_through_search(grafana: FakeGrafana) -> None:
    assert {s.state for s in remote_status(grafana.url, "glsa_viewer", DASHBOARDS)} == {"missing"}
    runner = CliRunner()
    r = runner.invoke(cli(), ["dashboards", "list", "--url", grafana.url, "--token", "glsa_viewer"],
                      env={"COLUMNS": "200"})
    assert r.exit_code == 3 and "missing" in r.output
    run_push(grafana)
    grafana.dashboards["other"] = {"uid": "other", "title": "Someone's", "tags": ["driftline"], "version": 1}
    status = {s.uid: s.state for s in remote_status(grafana.url, "glsa_viewer", DASHBOARDS)}
    assert status == {**dict.fromkeys(UIDS, "in sync"), "other": "not local"}
    assert any(p.startswith("/api/search?") and "tag=driftline" in p for _, p, _ in grafana.requests)
    r = runner.invoke(cli(), ["dashboards", "list", "--url", grafana.url, "--token", "glsa_viewer"],
                      env={"COLUMNS": "200"})
    assert r.exit_code == 0 and r.output.count("in sync") == 3
    r = runner.invoke(cli(), ["dashboards", "list"], env={"COLUMNS": "200"})
    assert r.exit_code == 0 and all(uid in r.output for uid in UIDS)


def test_the_main_cli_has_the_dashboards_commands() -> None:
    from monitor.cli import app

    r = CliRunner().invoke(app, ["dashboards", "push", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    for opt in ("--url", "--token", "--influx-url", "--influx-db", "--bucket", "--folder", "GRAFANA_URL", "GRAFANA_TOKEN"):
        assert opt in r.output, opt


def test_push_never_reports_credentials_in_the_datasource_url(grafana: FakeGrafana) -> None:
    url = "http://reader:pw-7f3a@influx:8086/?u=reader&p=pq-55e1&token=tk-19c2"
    for _ in range(2):  # created, then unchanged
        details = " ".join(detail for _k, _u, _a, detail in run_push(grafana, influx_url=url))
        assert not {"pw-7f3a", "pq-55e1", "tk-19c2"} & set(details.replace("=", " ").replace("&", " ").split())
        assert "pw-7f3a" not in details and "influx:8086" in details
