"""A small local webhook receiver (the demo's pager, and the tests' on-call): verifies
``X-Driftline-Signature``, records payloads, can fail or stall on purpose."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from monitor.adapters.notify import SIGNATURE_HEADER, verify_signature


class WebhookServer:
    """HTTP server on 127.0.0.1 in a background thread.

    ``fail_first`` requests get ``status_on_fail``; every request waits ``delay_s`` first. Requests with a
    bad or missing signature (when ``secret`` is set) get 401 and are counted in ``rejected``.
    """

    def __init__(self, secret: str | None = None, host: str = "127.0.0.1", port: int = 0,
                 on_alert: Callable[[dict[str, Any]], None] | None = None, fail_first: int = 0,
                 status_on_fail: int = 503, delay_s: float = 0.0) -> None:
        self.secret, self.on_alert = secret, on_alert
        self.fail_first, self.status_on_fail, self.delay_s = fail_first, status_on_fail, delay_s
        self.received: list[dict[str, Any]] = []
        self.requests = 0
        self.rejected = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                with outer._lock:
                    outer.requests += 1
                    failing = outer.requests <= outer.fail_first
                if failing:
                    self._reply(outer.status_on_fail)
                    return
                if outer.secret and not verify_signature(outer.secret, body, self.headers.get(SIGNATURE_HEADER)):
                    with outer._lock:
                        outer.rejected += 1
                    self._reply(401)
                    return
                try:
                    payload = orjson.loads(body)
                except orjson.JSONDecodeError:
                    self._reply(400)
                    return
                with outer._lock:
                    outer.received.append(payload)
                if outer.on_alert is not None:
                    outer.on_alert(payload)
                self._reply(200)

            def _reply(self, status: int) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/alerts"

    def start(self) -> WebhookServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def alerts(self) -> list[dict[str, Any]]:
        with self._lock:
            return [a for p in self.received for a in p.get("alerts", [])]

    def __enter__(self) -> WebhookServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m monitor.adapters.receiver``: print every page received (secret from MONITOR_WEBHOOK_SECRET)."""
    import argparse
    import os

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    args = ap.parse_args(argv)

    def show(payload: dict[str, Any]) -> None:
        for a in payload.get("alerts", []):
            labels = a.get("labels", {})
            print(f"PAGE {a.get('status')} {labels.get('alertname')} model={labels.get('model')} "
                  f"feature={labels.get('feature', '')} severity={labels.get('severity')}", flush=True)

    server = WebhookServer(secret=os.environ.get("MONITOR_WEBHOOK_SECRET") or None, host=args.host, port=args.port,
                           on_alert=show)
    print(f"listening on {server.url}", flush=True)
    server._server.serve_forever()


if __name__ == "__main__":
    main()
