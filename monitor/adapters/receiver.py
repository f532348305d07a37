"""A small local webhook receiver: the demo's pager and the tests' on-call.

Standard library only, so :func:`verify_timestamped` and :func:`verify_signature` are the snippets documented
in ``docs/webhook-verification.md``. :class:`WebhookServer` verifies ``X-Driftline-Signature-256`` (the
timestamped signature, within a tolerance of its clock), records the payloads it accepts, and can fail or
stall on purpose to exercise retries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SIGNATURE_HEADER = "X-Driftline-Signature"
SIGNATURE_256_HEADER = "X-Driftline-Signature-256"
#: how far a signature's timestamp may be from the receiver's clock, either way (replay window)
TOLERANCE_S = 300
#: largest body the receiver reads (larger requests get 413)
MAX_BODY_BYTES = 10 * 1024 * 1024


def verify_signature(secret: bytes | str, body: bytes, header: str | None) -> bool:
    """Check an ``X-Driftline-Signature`` header against the raw request body, in constant time.

    Parameters
    ----------
    secret : bytes or str
        The shared secret (``str`` is UTF-8 encoded).
    body : bytes
        The raw request body, exactly as received (before any JSON parsing).
    header : str or None
        The header value, ``sha256=<hex>``; None or empty never verifies.

    Returns
    -------
    bool
        True when the header is the HMAC-SHA256 of ``body`` under ``secret``.

    Examples
    --------
    >>> import hashlib, hmac
    >>> body = b'{"version":"4"}'
    >>> header = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    >>> verify_signature("s3cret", body, header), verify_signature("wrong", body, header)
    (True, False)
    """
    if not header:
        return False
    key = secret.encode() if isinstance(secret, str) else secret
    expected = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.strip().encode())


def verify_timestamped(secret: bytes | str, body: bytes, header: str | None, now: float | None = None,
                       tolerance_s: float = TOLERANCE_S) -> bool:
    """Check an ``X-Driftline-Signature-256`` header (``t=<unix s>,v1=<hex>``): the HMAC-SHA256 of
    ``"<t>." + body`` under ``secret``, signed within ``tolerance_s`` of ``now`` (default: this clock).

    >>> import hashlib, hmac
    >>> body, t = b'{"version":"4"}', 1767225600
    >>> header = f"t={t},v1=" + hmac.new(b"s3cret", f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    >>> verify_timestamped("s3cret", body, header, now=t + 10), verify_timestamped("s3cret", body, header, now=t + 301)
    (True, False)
    """
    if not header:
        return False
    fields = dict(part.strip().split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False  # too old (a replay) or too far ahead
    key = secret.encode() if isinstance(secret, str) else secret
    expected = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), fields.get("v1", "").encode())


class WebhookServer:
    """HTTP receiver on a background thread (``ThreadingHTTPServer``).

    Parameters
    ----------
    secret : str or bytes or None
        When set, requests without a valid signature get 401 and are counted in ``rejected``.
    host : str
        Interface to bind (loopback by default).
    port : int
        Port; 0 picks a free one (read it back from :attr:`url`).
    on_alert : callable or None
        Called with each accepted payload (a dict), in the request's thread.
    fail_first : int
        The first ``fail_first`` requests get ``status_on_fail`` (before any signature check).
    status_on_fail : int
        Status returned while failing on purpose.
    delay_s : float
        Every request waits this long before answering (a slow receiver).
    wall_clock : callable
        The receiver's clock for the signature's tolerance check (injectable for tests).
    hold : threading.Event or None
        When set, every request waits until this event is set (at most 30 s) before it is answered.

    Examples
    --------
    >>> with WebhookServer() as server:
    ...     server.url.startswith("http://127.0.0.1:")
    True
    """

    def __init__(self, secret: str | bytes | None = None, host: str = "127.0.0.1", port: int = 0,
                 on_alert: Callable[[dict[str, Any]], None] | None = None, fail_first: int = 0,
                 status_on_fail: int = 503, delay_s: float = 0.0,
                 wall_clock: Callable[[], float] = time.time, hold: threading.Event | None = None) -> None:
        self.secret, self.on_alert, self.wall_clock, self.hold = secret or None, on_alert, wall_clock, hold
        self.fail_first, self.status_on_fail, self.delay_s = fail_first, status_on_fail, delay_s
        #: accepted payloads, in arrival order (read with :meth:`payloads` from other threads)
        self.received: list[dict[str, Any]] = []
        #: requests seen (including failed-on-purpose and rejected ones)
        self.requests = 0
        #: requests refused with 401 (bad or missing signature)
        self.rejected = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    self._reply(413)
                    return
                body = self.rfile.read(length)
                if outer.delay_s:
                    time.sleep(outer.delay_s)
                if outer.hold is not None:
                    outer.hold.wait(30)
                with outer._lock:
                    outer.requests += 1
                    failing = outer.requests <= outer.fail_first
                if failing:
                    self._reply(outer.status_on_fail)
                    return
                if outer.secret is not None and not verify_timestamped(
                        outer.secret, body, self.headers.get(SIGNATURE_256_HEADER), now=outer.wall_clock()):
                    with outer._lock:
                        outer.rejected += 1
                    self._reply(401)
                    return
                try:
                    payload = json.loads(body)
                except ValueError:
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

        return Handler

    @property
    def url(self) -> str:
        """The URL to configure as the webhook (``http://host:port/alerts``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/alerts"

    def payloads(self) -> list[dict[str, Any]]:
        """A copy of the accepted payloads."""
        with self._lock:
            return list(self.received)

    def alerts(self) -> list[dict[str, Any]]:
        """Every ``alerts[]`` entry of the accepted payloads, flattened."""
        return [a for p in self.payloads() for a in p.get("alerts", [])]

    def start(self) -> WebhookServer:
        """Serve in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="webhook-server",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

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

    secret = os.environ.get("MONITOR_WEBHOOK_SECRET")
    if secret is not None and not secret.strip():
        raise SystemExit("error: MONITOR_WEBHOOK_SECRET is set but empty: unset it to accept unsigned pages")
    server = WebhookServer(secret=secret, host=args.host, port=args.port, on_alert=show)
    print(f"listening on {server.url}", flush=True)
    try:
        server._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._server.server_close()


if __name__ == "__main__":
    main()
