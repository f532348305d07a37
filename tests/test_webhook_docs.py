"""docs/webhook-verification.md is true: its Python and shell (openssl) verification snippets accept a real
signed request and refuse a tampered, stale or replayed one; its example payload has exactly the shape a
real feature-drift alert is sent with."""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from monitor.adapters.notify import WebhookReceiver
from monitor.adapters.receiver import verify_timestamped
from monitor.config import MonitorSettings
from monitor.core.reference import build_profile
from monitor.pipeline import Monitor
from monitor.types import PredictionEvent, fingerprint

DOC = Path(__file__).resolve().parents[1] / "docs" / "webhook-verification.md"
SECRET = "wh-s3cret with spaces & $pecial"
GRAFANA = "http://grafana:3000/d/driftline-drift"


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def doc_verify() -> Any:
    (block,) = [b for b in code_blocks("python") if "def verify_timestamped" in b]
    namespace: dict[str, Any] = {}
    exec(compile(block, str(DOC), "exec"), namespace)  # the documented snippet, as a reader would paste it
    return namespace["verify_timestamped"]


def doc_shell() -> str:
    (block,) = [b for b in code_blocks("sh") if "openssl dgst" in b and "SIG" in b]
    return block


class Capture:
    """A real HTTP endpoint recording each request's raw body and headers."""

    def __init__(self) -> None:
        self.requests: list[tuple[bytes, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((body, dict(self.headers.items())))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"


@pytest.fixture
def capture() -> Iterator[Capture]:
    c = Capture()
    c.thread.start()
    try:
        yield c
    finally:
        c.server.shutdown()
        c.server.server_close()


def real_feature_drift_alerts() -> list[Any]:
    """A firing FeatureDrift alert from the pipeline: a +1 sd shift of ``amount`` in one window."""
    rng = np.random.default_rng(1)
    t0 = 1_767_225_600.0
    ref = build_profile("fraud", pd.DataFrame({"amount": rng.normal(size=5000), "age": rng.normal(size=5000)}))
    mon = Monitor(MonitorSettings(window="5m", allowed_lateness="0s", external_url=GRAFANA), {"fraud": ref})
    mon.observe([PredictionEvent(model="fraud", request_id=f"r{i}", timestamp=t0 + i * 0.2,
                                 features={"amount": float(rng.normal(1.0)), "age": float(rng.normal())},
                                 prediction=1) for i in range(1400)])
    alerts = [a for a in mon.close_all().alerts if a.labels["alertname"] == "FeatureDrift"]
    assert alerts
    return alerts


def signed_request(capture: Capture, signed_at: float | None = None) -> tuple[bytes, dict[str, str]]:
    clock = (lambda: signed_at) if signed_at is not None else time.time
    receiver = WebhookReceiver(capture.url, SECRET, external_url=GRAFANA,
                               wall_clock=clock)
    assert receiver.send(real_feature_drift_alerts()).ok
    receiver.close()
    return capture.requests[-1]


def run_shell(tmp_path: Path, body: bytes, sig: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "body.json").write_bytes(body)
    return subprocess.run(["bash", "-c", doc_shell()], cwd=tmp_path, capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", "SIG": sig, "MONITOR_WEBHOOK_SECRET": SECRET})


def test_documented_python_snippet_is_the_library_function() -> None:
    def without_docstring(source: str) -> str:
        fn = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef))
        if isinstance(fn.body[0], ast.Expr) and isinstance(fn.body[0].value, ast.Constant):
            fn.body = fn.body[1:]
        return ast.dump(fn)

    (block,) = [b for b in code_blocks("python") if "def verify_timestamped" in b]
    assert without_docstring(block) == without_docstring(inspect.getsource(verify_timestamped))


def test_documented_snippets_accept_a_real_signed_request(capture: Capture, tmp_path: Path) -> None:
    body, headers = signed_request(capture)
    sig = headers["X-Driftline-Signature-256"]
    assert headers["X-Driftline-Timestamp"] == sig.split(",")[0].removeprefix("t=")
    assert doc_verify()(SECRET, body, sig)
    done = run_shell(tmp_path, body, sig)
    assert done.returncode == 0 and done.stdout.strip() == "signature ok", done.stdout + done.stderr


@pytest.mark.parametrize("attack", ["tampered body", "wrong secret", "stale (replayed 10 min later)",
                                    "timestamp changed", "legacy header only"])
def test_documented_snippets_refuse_forged_or_replayed_requests(capture: Capture, tmp_path: Path,
                                                               attack: str) -> None:
    body, headers = signed_request(capture, signed_at=time.time() - 600 if attack.startswith("stale") else None)
    sig, secret = headers["X-Driftline-Signature-256"], SECRET
    if attack == "tampered body":
        assert b'"status":"firing"' in body
        body = body.replace(b'"status":"firing"', b'"status":"resolved"', 1)
    elif attack == "wrong secret":
        secret = "guess"
    elif attack == "timestamp changed":
        t = int(sig.split(",")[0].removeprefix("t="))
        sig = sig.replace(f"t={t}", f"t={t + 1}")
    elif attack == "legacy header only":
        sig = headers["X-Driftline-Signature"]
    assert not doc_verify()(secret, body, sig)
    if attack != "wrong secret":
        done = run_shell(tmp_path, body, sig)
        assert done.returncode != 0 and ("bad signature" in done.stdout or "stale" in done.stdout), done.stdout


def test_example_payload_has_the_shape_sent(capture: Capture) -> None:
    (block,) = [b for b in code_blocks("json") if '"version": "4"' in b]
    example = orjson.loads(block.replace("…", "..."))
    body, _ = signed_request(capture)
    real = orjson.loads(body)

    def shape(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: shape(v) for k, v in value.items()}
        if isinstance(value, list):
            return [shape(v) for v in value]
        return type(value).__name__

    assert shape(example) == shape(real)
    for alert in example["alerts"]:  # the example's fingerprints are the real ones of its labels
        assert alert["fingerprint"] == fingerprint(alert["labels"])
    assert example["groupKey"] == real["groupKey"] and example["externalURL"] == real["externalURL"]
    for key in ("status", "receiver", "groupLabels", "commonLabels", "truncatedAlerts", "version"):
        assert example[key] == real[key], key
    assert [a["labels"] for a in example["alerts"]] == [a["labels"] for a in real["alerts"]]
    assert [a["generatorURL"] for a in example["alerts"]] == [a["generatorURL"] for a in real["alerts"]]
