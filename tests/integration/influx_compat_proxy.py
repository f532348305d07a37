"""A tiny ``/api/v2/write`` → ``/write`` proxy so influxdb-client's writer can be tested against InfluxDB
1.6.7, which lacks the v2 compatibility endpoint that 1.8+ has. Test-only; runs in a thread on 127.0.0.1.

``POST /api/v2/write?org=&bucket=B&precision=P`` is forwarded to ``/write?db=B&precision=P'`` with the
precision renamed for 1.x (``ns``→``n``, ``us``→``u``: 1.6.7 silently takes ``us`` as nanoseconds).
1.x error bodies ``{"error": ...}`` are answered as v2 ``{"code": ..., "message": ...}`` so the client
reports InfluxDB's own message. ``GET /ping`` and ``/health`` are forwarded too.
"""

from __future__ import annotations

import gzip
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PRECISION = {"ns": "n", "us": "u", "ms": "ms", "s": "s"}
_V2_CODES = {400: "invalid", 401: "unauthorized", 403: "forbidden", 404: "not found", 413: "request too large"}


def _v2_error(status: int, body: bytes) -> bytes:
    try:
        message = str(json.loads(body).get("error", body.decode(errors="replace")))
    except (ValueError, AttributeError):
        message = body.decode(errors="replace")
    return json.dumps({"code": _V2_CODES.get(status, "internal error"), "message": message}).encode()


class CompatProxy:
    """Start with :meth:`start`, stop with :meth:`stop`; ``writes`` counts forwarded successful writes."""

    def __init__(self, influx1_url: str) -> None:
        target = influx1_url.rstrip("/")
        self.writes = 0
        self.precisions: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                url = urllib.parse.urlparse(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if url.path != "/api/v2/write":
                    self._reply(404, b'{"code":"not found","message":"path not found"}')
                    return
                q = urllib.parse.parse_qs(url.query)
                bucket = q.get("bucket", [""])[0]
                if not bucket:
                    self._reply(400, b'{"code":"invalid","message":"bucket is required"}')
                    return
                v2_precision = q.get("precision", ["ns"])[0]
                if v2_precision not in PRECISION:
                    self._reply(400, b'{"code":"invalid","message":"invalid precision"}')
                    return
                outer.precisions.append(v2_precision)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                query = urllib.parse.urlencode({"db": bucket, "precision": PRECISION[v2_precision]})
                req = urllib.request.Request(f"{target}/write?{query}", data=body, method="POST")
                try:
                    with urllib.request.urlopen(req, timeout=10) as resp:
                        outer.writes += 1
                        self._reply(resp.status, b"")
                except urllib.error.HTTPError as exc:
                    self._reply(exc.code, _v2_error(exc.code, exc.read()))
                except OSError as exc:
                    self._reply(503, json.dumps({"code": "unavailable", "message": str(exc)}).encode())

            def do_GET(self) -> None:
                path = urllib.parse.urlparse(self.path).path
                if path not in ("/ping", "/health"):
                    self._reply(404, b"")
                    return
                try:
                    with urllib.request.urlopen(f"{target}/ping", timeout=5) as resp:
                        self._reply(resp.status if path == "/ping" else 200,
                                    b"" if path == "/ping" else b'{"status":"pass"}')
                except OSError:
                    self._reply(503, b"")

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` to give influxdb-client as its server URL."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
