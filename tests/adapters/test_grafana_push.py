"""`monitor dashboards push` against a loopback server that answers like Grafana's HTTP API."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.adapters.grafana import PushError, push
from monitor.cli import app
from monitor.devservices import free_port

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"


class FakeGrafana:
    def __init__(self, status_override: int | None = None):
        self.datasources, self.folders, self.dashboards, self.requests = {}, {}, {}, []
        outer = self

        class H(BaseHTTPRequestHandler):
            def _send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self):
                return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")

            def handle_one(self, method):
                outer.requests.append((method, self.path, self.headers.get("Authorization")))
                if status_override:
                    return self._send(status_override, {"message": "nope"})
                p = self.path
                if method == "GET" and p.startswith("/api/datasources/uid/"):
                    uid = p.rsplit("/", 1)[1]
                    return self._send(200, outer.datasources[uid]) if uid in outer.datasources else self._send(
                        404, {"message": "Data source not found"})
                if method == "POST" and p == "/api/datasources":
                    b = self._body()
                    outer.datasources[b["uid"]] = {k: v for k, v in b.items() if k != "secureJsonData"}
                    return self._send(200, {"message": "Datasource added"})
                if method == "PUT" and p.startswith("/api/datasources/uid/"):
                    b = self._body()
                    outer.datasources[b["uid"]] = {k: v for k, v in b.items() if k != "secureJsonData"}
                    return self._send(200, {"message": "Datasource updated"})
                if method == "GET" and p.startswith("/api/folders/"):
                    uid = p.rsplit("/", 1)[1]
                    return self._send(200, outer.folders[uid]) if uid in outer.folders else self._send(
                        404, {"message": "folder not found"})
                if method == "POST" and p == "/api/folders":
                    b = self._body()
                    outer.folders[b["uid"]] = b
                    return self._send(200, b)
                if method == "GET" and p.startswith("/api/dashboards/uid/"):
                    uid = p.rsplit("/", 1)[1]
                    return self._send(200, {"dashboard": outer.dashboards[uid]}) if uid in outer.dashboards else \
                        self._send(404, {"message": "Dashboard not found"})
                if method == "POST" and p == "/api/dashboards/db":
                    b = self._body()
                    d = dict(b["dashboard"])
                    d["version"] = outer.dashboards.get(d["uid"], {}).get("version", 0) + 1
                    d["id"] = 7
                    outer.dashboards[d["uid"]] = d
                    return self._send(200, {"status": "success", "uid": d["uid"], "version": d["version"]})
                return self._send(404, {"message": f"unexpected {method} {p}"})

            def do_GET(self):
                self.handle_one("GET")

            def do_POST(self):
                self.handle_one("POST")

            def do_PUT(self):
                self.handle_one("PUT")

            def log_message(self, *a):
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()


def test_push_creates_then_is_idempotent_then_updates():
    g = FakeGrafana()
    try:
        first = push(g.url, "tok", DASHBOARDS, influx_url="http://influxdb:8086", database="driftline")
        assert [(c.kind, c.action) for c in first] == [("datasource", "created"), ("folder", "created")] + [
            ("dashboard", "created")] * 3
        assert all(auth == "Bearer tok" for _, _, auth in g.requests)
        second = push(g.url, "tok", DASHBOARDS, influx_url="http://influxdb:8086", database="driftline")
        assert {c.action for c in second} == {"unchanged"}
        assert not [r for r in g.requests[len(g.requests) - 5:] if r[0] == "POST"]
        changed = push(g.url, "tok", DASHBOARDS, influx_url="http://other:8086", database="driftline")
        assert changed[0].action == "updated"
    finally:
        g.close()


@pytest.mark.parametrize("status, words", [(401, "rejected the token"), (403, "lacks permission")])
def test_auth_and_permission_errors_are_clear(status, words):
    g = FakeGrafana(status_override=status)
    try:
        with pytest.raises(PushError, match=words):
            push(g.url, "bad", DASHBOARDS, influx_url="http://i", database="d")
    finally:
        g.close()


def test_connection_refused_via_cli():
    r = CliRunner().invoke(app, ["dashboards", "push", "--url", f"http://127.0.0.1:{free_port()}", "--token", "t"])
    assert r.exit_code == 1 and "cannot connect" in r.output
