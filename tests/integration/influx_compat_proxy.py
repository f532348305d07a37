"""A tiny /api/v2/write → /write proxy so influxdb-client's writer can be tested against InfluxDB 1.6.7
(which lacks the v2 compatibility endpoint that 1.8+ has). Test-only."""

from __future__ import annotations

import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PRECISION = {"ns": "n", "us": "u", "ms": "ms", "s": "s"}  # 1.6.7 silently takes "us" as ns


class CompatProxy:
    def __init__(self, influx1_url: str) -> None:
        target = influx1_url.rstrip("/")
        self.writes = 0

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                url = urllib.parse.urlparse(self.path)
                if url.path != "/api/v2/write":
                    self._reply(404, b'{"code":"not found"}')
                    return
                q = urllib.parse.parse_qs(url.query)
                bucket = q.get("bucket", [""])[0]
                precision = PRECISION.get(q.get("precision", ["ns"])[0], "n")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    import gzip

                    body = gzip.decompress(body)
                req = urllib.request.Request(
                    f"{target}/write?db={urllib.parse.quote(bucket)}&precision={precision}", data=body, method="POST")
                try:
                    with urllib.request.urlopen(req, timeout=10) as resp:
                        outer.writes += 1
                        self._reply(resp.status, b"")
                except urllib.error.HTTPError as exc:
                    self._reply(exc.code, exc.read())

            def do_GET(self) -> None:
                self._reply(204 if self.path.startswith("/ping") else 404, b"")

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
