"""One hot model over every partition: 1 worker vs 2 workers in one run, with exact window counts.

    python -m simulations.bench_scale_out [--events 300000] [--json out.json]

Producers key by request id (the way most services key their logs), so one model's events spread over the
topic's 4 partitions and both workers aggregate it (stage 1); its owner merges their partial windows (stage
2). For each run the benchmark measures events/s from the moment every worker consumes until all events are
consumed, the CPU seconds per event of workers, broker and sink (from /proc), and then checks that every
closed window's `throughput.events` equals the number of events produced into it.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from monitor.core.reference import build_profile
from monitor.devservices import create_topics, free_port, start_kafka
from monitor.lineprotocol import read_lp
from simulations.bench_throughput import T0, _cpu_s, _metric, _rss_mb, make_events

MODEL = "hot"
WINDOW_S = 10.0


def produce_by_request_id(bootstrap: str, topic: str, events: list[bytes]) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024, acks=1)
    for i, raw in enumerate(events):
        p.send(topic, key=f"r{i}".encode(), value=raw)
    p.flush()
    p.close()


def run(k: int, broker: Any, topic: str, n: int, env: dict[str, str], work: Path,
        expected: Counter[int]) -> dict[str, Any]:
    """Start k workers on ``topic``; events/s, CPU per event, RSS, and the windows' exactness."""
    group = f"scale-{k}-{time.time():.0f}"
    procs, ports, files = [], [], []
    for i in range(k):
        port = free_port()
        lp = work / f"{group}-{i}.lp"
        e = dict(os.environ, **env, MONITOR_WEB_PORT=str(port), MONITOR_CONSUMER_GROUP=group,
                 MONITOR_WORKER_NAME=f"w{i}", MONITOR_PREDICTIONS_TOPIC=topic, MONITOR_LP_FILE=str(lp))
        log = (work / f"{group}-{i}.log").open("wb")
        procs.append(subprocess.Popen([sys.executable, "-m", "monitor", "run"], env=e, stdout=log,
                                      stderr=subprocess.STDOUT))
        ports.append(port)
        files.append(lp)
    try:
        first: float | None = None
        first_count = 0.0
        pids = {**{f"worker {i}": p.pid for i, p in enumerate(procs)}, "broker": broker.pid}
        cpu0: dict[str, float] = {}
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            counts = [max(0.0, _metric(p, "driftline_events_total")) for p in ports]
            total = sum(counts)
            if first is None and all(c > 0 for c in counts):
                first, first_count = time.perf_counter(), total
                cpu0 = {name: _cpu_s(pid) for name, pid in pids.items()}
            if total >= n:
                break
            time.sleep(0.05)
        else:
            raise TimeoutError(f"{k} workers consumed {total:.0f}/{n} events (see {work})")
        assert first is not None
        wall = time.perf_counter() - first
        cpu = {name: _cpu_s(pid) - cpu0[name] for name, pid in pids.items()}
        rate = (n - first_count) / wall
        rss = [_rss_mb(p.pid) for p in procs]

        def written() -> dict[int, set[int]]:
            out: dict[int, set[int]] = {}
            for f in files:
                if f.exists():
                    for p in read_lp(f):
                        if p.measurement == "throughput" and p.tag("model") == MODEL:
                            w = round((p.time_ns / 1e9 - T0) / WINDOW_S) - 1
                            out.setdefault(w, set()).add(int(p.field("events")))  # type: ignore[arg-type]
            return out

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not expected.keys() <= written().keys():
            time.sleep(0.5)
        got = written()
        wrong = {w: (sorted(got.get(w, ())), c) for w, c in expected.items() if got.get(w) != {c}}
        events = n - first_count
        return {"workers": k, "events_per_s": rate, "rss_mb": rss, "windows": len(expected), "wrong_windows": wrong,
                "cpu_us_per_event": {name: v / events * 1e6 for name, v in cpu.items()},
                "cores_busy": sum(cpu.values()) / wall, "measured_events": events}
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    console = Console()
    work = Path(tempfile.mkdtemp(prefix="driftline-scale-"))
    broker = start_kafka(work / "kafka")
    n = args.events
    per_second = 1000.0
    try:
        refdir = work / "refs"
        refdir.mkdir()
        import pandas as pd

        ref_rows = [orjson.loads(r) for r in make_events(5000, [MODEL], 100.0, seed=9)]
        frame = pd.DataFrame([{**r["features"], "score": r["score"], "prediction": r["prediction"]} for r in ref_rows])
        build_profile(MODEL, frame).save(refdir / f"{MODEL}.json")
        events = make_events(n, [MODEL], per_second=per_second)
        expected = Counter(int(i / per_second // WINDOW_S) for i in range(n))
        env = {"MONITOR_BROKER": f"kafka://{broker.url}", "MONITOR_REFERENCE": str(refdir), "MONITOR_WINDOW": "10s",
               "MONITOR_ALLOWED_LATENESS": "1s", "MONITOR_IDLE_TIMEOUT": "1s", "MONITOR_SESSION_TIMEOUT": "6s",
               "MONITOR_REBALANCE_TIMEOUT": "6s", "MONITOR_HEARTBEAT_INTERVAL": "1s", "MONITOR_PARTITIONS": "4",
               "MONITOR_LABELS_TOPIC": ""}
        results = []
        for k in (1, 2):
            topic = f"hot-{k}"
            with console.status(f"producing {n:,} events of one model keyed by request id to 4 partitions"):
                create_topics(broker.url, {topic: 4})
                produce_by_request_id(broker.url, topic, events)
            with console.status(f"{k} worker(s)"):
                results.append(run(k, broker, topic, n, env, work, expected))
    finally:
        broker.stop()
    one, two = results
    t = Table(title=f"one model keyed by request id over 4 partitions, {n:,} events × 20 features")
    for col in ("workers", "events/s", "vs 1 worker", "exact windows", "CPU µs/event (workers; broker)",
                "cores busy", "RSS MB"):
        t.add_column(col, justify="right")
    for r in results:
        workers_us = sum(v for name, v in r["cpu_us_per_event"].items() if name.startswith("worker"))
        t.add_row(str(r["workers"]), f"{r['events_per_s']:,.0f}", f"{r['events_per_s'] / one['events_per_s']:.2f}×",
                  f"{r['windows'] - len(r['wrong_windows'])}/{r['windows']}",
                  f"{workers_us:.1f}; {r['cpu_us_per_event']['broker']:.1f}", f"{r['cores_busy']:.2f}",
                  ", ".join(f"{x:.0f}" for x in r["rss_mb"]))
    console.print(t)
    w1 = sum(v for name, v in one["cpu_us_per_event"].items() if name.startswith("worker"))
    total1 = w1 + one["cpu_us_per_event"]["broker"]
    console.print(f"CPU model: k workers on c cores ≈ min(k × {1e6 / w1:,.0f}, c × {1e6 / total1:,.0f}) events/s "
                  f"(worker CPU alone; worker + broker CPU); this machine has {os.cpu_count()} cores")
    for r in results:
        if r["wrong_windows"]:
            console.print(f"[red]{r['workers']} worker(s): windows with wrong counts: {r['wrong_windows']}[/]")
    out = {"events": n, "runs": results, "two_vs_one": two["events_per_s"] / one["events_per_s"]}
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    if any(r["wrong_windows"] for r in results):
        raise SystemExit(1)
    return out


if __name__ == "__main__":
    main()
