"""InfluxSink against a scripted loopback HTTP server (real influxdb-client, real sockets, no mocks):
retries, 4xx handling, connection refused, bounded buffer. Plus the line-protocol file sink."""

import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from monitor.adapters.influx import BufferFull, InfluxSink, SinkRejected, SinkUnavailable
from monitor.adapters.lpfile import LineProtocolFileSink
from monitor.devservices import free_port
from monitor.types import MetricPoint


class Scripted:
    """Answers POSTs with the scripted statuses in order, then 204; records accepted bodies."""

    def __init__(self, statuses=(), port=0, headers=None, reject_larger_than=None):
        self.statuses = list(statuses)
        self.bodies: list[bytes] = []
        self.requests: list[tuple[str, dict]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                url = urllib.parse.urlparse(self.path)
                outer.requests.append((url.path, urllib.parse.parse_qs(url.query)))
                status = outer.statuses.pop(0) if outer.statuses else 204
                if reject_larger_than is not None and body.count(b"\n") + 1 > reject_larger_than:
                    status = 413
                if status == 204:
                    outer.bodies.append(body)
                payload = {400: b'{"code":"invalid","message":"bad line 3: field type conflict"}',
                           401: b'{"code":"unauthorized","message":"unauthorized access"}'}.get(status, b"")
                self.send_response(status)
                for k, v in (headers or {}).get(status, {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", port), H)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def lines(self) -> list[bytes]:
        return [line for body in self.bodies for line in body.split(b"\n") if line]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted():
    servers = []

    def make(*args, **kwargs):
        srv = Scripted(*args, **kwargs)
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.close()


def pts(n, start=0):
    return [MetricPoint("errors", (("model", "m"),), (("errors", i),), i) for i in range(start, start + n)]


def test_503_then_ok_retries_with_growing_backoff_and_delivers_everything_once(scripted):
    srv = scripted([503, 503, 503])
    sleeps: list[float] = []
    sink = InfluxSink(srv.url, "t", "my-org", "bkt", backoff_s=0.1, max_retries=5, sleep=sleeps.append)
    sink.add(pts(10))
    sink.flush()
    assert sink.stats.retries == 3 and sink.stats.write_errors == 3 and "503" in sink.stats.last_error
    assert sink.stats.points_written == 10 and sink.buffered == 0 and not sink.backpressure
    assert srv.lines() == [p.to_line().encode() for p in pts(10)]
    path, query = srv.requests[-1]
    assert path == "/api/v2/write" and query["bucket"] == ["bkt"] and query["org"] == ["my-org"]
    assert query["precision"] == ["ns"]
    # exponential backoff with jitter in [0.5, 1.5) x base
    for i, s in enumerate(sleeps):
        assert 0.1 * 2**i * 0.5 <= s < 0.1 * 2**i * 1.5


def test_retry_after_is_honoured_and_capped(scripted):
    srv = scripted([429, 503], headers={429: {"Retry-After": "7"}, 503: {"Retry-After": "100"}})
    sleeps: list[float] = []
    sink = InfluxSink(srv.url, "t", "o", "b", backoff_s=0.01, max_backoff_s=9, sleep=sleeps.append)
    sink.add(pts(2))
    sink.flush()
    assert sleeps[0] == pytest.approx(7) and sleeps[1] == pytest.approx(9)
    assert sink.stats.points_written == 2


def test_5xx_past_the_budget_keeps_points_and_the_next_flush_delivers(scripted):
    srv = scripted([500, 502, 503])
    sink = InfluxSink(srv.url, "t", "o", "b", max_retries=2, sleep=lambda s: None)
    sink.add(pts(4))
    with pytest.raises(SinkUnavailable, match="3 attempts"):
        sink.flush()
    assert sink.buffered == 4 and sink.backpressure and not sink.stats.up
    sink.add(pts(2, start=4))
    sink.flush()
    assert srv.lines() == [p.to_line().encode() for p in pts(6)]
    assert sink.buffered == 0 and sink.stats.up and not sink.backpressure


def test_400_is_not_retried_the_bad_batch_is_dropped_and_the_rest_written(scripted):
    srv = scripted([400])
    sink = InfluxSink(srv.url, "t", "o", "b", backoff_s=0.001, batch_size=5, sleep=lambda s: None)
    sink.add(pts(10))
    with pytest.raises(SinkRejected, match="field type conflict") as info:
        sink.flush()
    assert info.value.status == 400 and info.value.dropped == 5
    assert sink.stats.rejected_batches == 1 and sink.stats.retries == 0 and sink.stats.points_dropped == 5
    assert sink.stats.points_written == 5 and sink.buffered == 0 and sink.stats.up
    assert srv.lines() == [p.to_line().encode() for p in pts(5, start=5)]


def test_401_is_not_retried_and_keeps_the_points(scripted):
    srv = scripted([401])
    sink = InfluxSink(srv.url, "bad-token", "o", "b", sleep=lambda s: None)
    sink.add(pts(3))
    with pytest.raises(SinkRejected, match="unauthorized access") as info:
        sink.flush()
    assert info.value.dropped == 0 and sink.buffered == 3 and sink.stats.retries == 0 and sink.backpressure
    sink.flush()  # credentials fixed (the server now accepts): nothing was lost
    assert srv.lines() == [p.to_line().encode() for p in pts(3)]


def test_413_splits_the_batch(scripted):
    srv = scripted(reject_larger_than=3)
    sink = InfluxSink(srv.url, "t", "o", "b", batch_size=10, sleep=lambda s: None)
    sink.add(pts(10))
    sink.flush()
    assert sorted(srv.lines()) == sorted(p.to_line().encode() for p in pts(10))
    assert sink.stats.points_written == 10 and sink.buffered == 0


def test_connection_refused_raises_keeps_points_and_recovers(scripted):
    port = free_port()
    sink = InfluxSink(f"http://127.0.0.1:{port}", "t", "o", "b", max_retries=2, backoff_s=0.001, timeout_s=2)
    sink.add(pts(3))
    with pytest.raises(SinkUnavailable, match="unavailable after 3 attempts"):
        sink.flush()
    assert sink.buffered == 3 and sink.backpressure and sink.stats.retries == 2 and sink.stats.write_errors == 3
    assert not sink.ping()
    srv = scripted(port=port)  # InfluxDB comes back on the same address
    assert sink.ping()
    sink.flush()
    assert srv.lines() == [p.to_line().encode() for p in pts(3)] and sink.buffered == 0


def test_bounded_buffer_and_backpressure_threshold():
    sink = InfluxSink("http://127.0.0.1:9", "t", "o", "b", max_buffer_points=10)
    sink.add(pts(7))
    assert not sink.backpressure
    sink.add(pts(1))
    assert sink.backpressure  # 80 % full
    with pytest.raises(BufferFull):
        sink.add(pts(3))
    assert sink.buffered == 8  # a refused add adds nothing


def test_line_protocol_file_sink_replaces_rewritten_points(tmp_path):
    path = tmp_path / "out" / "metrics.lp"
    sink = LineProtocolFileSink(path)
    first = [MetricPoint("drift", (("model", "m"), ("feature", "x")), (("score", 0.1),), 10),
             MetricPoint("drift", (("model", "m"), ("feature", "y")), (("score", 0.2),), 10)]
    sink.add(first)
    sink.flush()
    assert path.read_text().splitlines() == [p.to_line() for p in first]
    # the same series and time again (tags in another order): replaces the old line, keeps its place
    again = MetricPoint("drift", (("feature", "x"), ("model", "m")), (("score", 0.9),), 10)
    sink.add([again])
    assert sink.buffered == 2
    sink.close()
    assert path.read_text().splitlines() == [again.to_line(), first[1].to_line()]
    assert sink.buffered == 0 and not (tmp_path / "out" / "metrics.lp.tmp").exists()
