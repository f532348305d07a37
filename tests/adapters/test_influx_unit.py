"""InfluxSink retry/backpressure behaviour against a scripted local HTTP server."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from monitor.adapters.influx import BufferFull, InfluxSink
from monitor.types import MetricPoint


class Scripted:
    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.bodies = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = outer.statuses.pop(0) if outer.statuses else 204
                if status == 204:
                    outer.bodies.append(body)
                payload = b'{"code":"invalid","message":"bad line"}' if status == 400 else b""
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *a):
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()


def pts(n):
    return [MetricPoint("errors", (("model", "m"),), (("errors", i),), i) for i in range(n)]


def test_503_then_ok_delivers_everything_once():
    srv = Scripted([503, 503, 503])
    sink = InfluxSink(srv.url, "t", "o", "b", backoff_s=0.001, max_retries=5)
    sink.add(pts(10))
    sink.flush()
    srv.close()
    assert sink.stats.retries == 3 and sink.stats.points_written == 10 and sink.buffered == 0
    assert len(srv.bodies) == 1 and srv.bodies[0].count(b"\n") == 9


def test_400_is_not_retried_and_the_batch_is_dropped_loudly():
    srv = Scripted([400])
    sink = InfluxSink(srv.url, "t", "o", "b", backoff_s=0.001, batch_size=5)
    sink.add(pts(10))
    sink.flush()
    srv.close()
    assert sink.stats.rejected_batches == 1 and sink.stats.retries == 0
    assert "bad line" in sink.stats.last_error and sink.stats.points_written == 5


def test_bounded_buffer():
    sink = InfluxSink("http://127.0.0.1:9", "t", "o", "b", max_buffer_points=5)
    sink.add(pts(5))
    with pytest.raises(BufferFull):
        sink.add(pts(1))
    assert sink.backpressure
