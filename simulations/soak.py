"""Soak test: one `monitor run` worker under steady load on loopback for a bounded time.

    python -m simulations.soak [--minutes 3] [--rate 2000] [--malformed 0.01] [--json out.json]

Produces the `multi_model` scenario plus malformed lines at a steady wall-clock rate to an embedded broker,
samples the worker's RSS and /metrics every few seconds, then checks that every produced valid event is
counted in exactly one window (`throughput` points in the worker's line-protocol output) and every
malformed one reached the DLQ. Reports events/s, RSS over time, windows closed, DLQ count, lost points.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from monitor.core.reference import build_profile
from monitor.devservices import create_topics, free_port, start_kafka
from monitor.lineprotocol import read_lp
from monitor.scenarios import get_scenario
from monitor.scenarios.produce import produce_events
from simulations.bench_throughput import _metric, _rss_mb


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--rate", type=float, default=2000.0, help="events/s sent (wall clock)")
    ap.add_argument("--malformed", type=float, default=0.01, help="share of malformed lines")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    console = Console()
    work = Path(tempfile.mkdtemp(prefix="driftline-soak-"))
    broker = start_kafka(work / "kafka")
    spec = get_scenario("multi_model")
    window_s = 10.0
    seconds = args.minutes * 60
    # event time runs at wall speed: rate events/s over the three models (weights 0.25 / 1 / 2.5)
    per_model_rate = args.rate / sum(spec.rate_of(m, 1.0) for m in spec.models)
    windows = max(2, int(seconds / window_s))
    events: list[Any] = list(spec.events(seed=7, windows=windows, window_s=window_s, rate=per_model_rate,
                                         start=float(int(time.time()))))
    valid = [e for e in events if isinstance(e, dict) and "label" not in e]
    step = int(1 / args.malformed) if args.malformed > 0 else 0
    stream: list[Any] = []
    bad = 0
    for i, e in enumerate(events):
        stream.append(e)
        if step and i % step == 0:
            stream.append('{"model": "fraud", "broken": ')
            bad += 1
    refdir = work / "refs"
    refdir.mkdir()
    for model, frame in spec.reference(rows=5_000, seed=7).items():
        build_profile(model, frame).save(refdir / f"{model}.json")
    create_topics(broker.url, {"predictions": 4, "labels": 4})
    port = free_port()
    env = dict(os.environ, MONITOR_BROKER=f"kafka://{broker.url}", MONITOR_REFERENCE=str(refdir),
               MONITOR_LP_FILE=str(work / "metrics.lp"), MONITOR_WINDOW="10s", MONITOR_ALLOWED_LATENESS="5s",
               MONITOR_IDLE_TIMEOUT="3s", MONITOR_WEB_PORT=str(port), MONITOR_SESSION_TIMEOUT="6s",
               MONITOR_REBALANCE_TIMEOUT="6s", MONITOR_CONSUMER_GROUP="soak")
    log = (work / "worker.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    samples: list[dict[str, float]] = []
    try:
        deadline = time.monotonic() + 60
        while _metric(port, "driftline_up") < 1 and time.monotonic() < deadline:
            time.sleep(0.3)
        producer = threading.Thread(target=produce_events, args=(stream, broker.url), kwargs={"rate": args.rate},
                                    daemon=True)
        started = time.monotonic()
        producer.start()
        hard_stop = started + seconds * 3 + 120  # bounded even if the worker falls behind
        while time.monotonic() < hard_stop:
            time.sleep(5)
            sample = {"t": time.monotonic() - started, "rss_mb": _rss_mb(proc.pid),
                      "events": _metric(port, "driftline_events_total"),
                      "windows": _metric(port, "driftline_windows_closed_total"),
                      "dlq": _metric(port, "driftline_dlq_total")}
            samples.append(sample)
            console.print(f"t={sample['t']:5.0f}s rss={sample['rss_mb']:6.0f} MB events={sample['events']:>9,.0f} "
                          f"windows={sample['windows']:>4.0f} dlq={sample['dlq']:>5.0f}")
            if not producer.is_alive() and sample["events"] >= len(stream) and sample["dlq"] >= bad:
                time.sleep(8)  # idle timeout closes the last windows
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        broker.stop()
    counted = sum(int(p.field("events") or 0) for p in read_lp(work / "metrics.lp")  # type: ignore[arg-type]
                  if p.measurement == "throughput")
    elapsed = samples[-1]["t"] if samples else 0.0
    res = {"minutes": args.minutes, "sent": len(stream), "valid_predictions": len(valid), "malformed": bad,
           "counted_in_windows": counted, "lost": len(valid) - counted,
           "dlq": samples[-1]["dlq"] if samples else 0, "windows_closed": samples[-1]["windows"] if samples else 0,
           "events_per_s": (samples[-1]["events"] / elapsed) if elapsed else 0.0,
           "rss_mb": [round(s["rss_mb"]) for s in samples]}
    t = Table(title=f"soak: {args.minutes:g} min at {args.rate:,.0f} events/s")
    for k in ("sent", "valid_predictions", "counted_in_windows", "lost", "malformed", "dlq", "windows_closed"):
        t.add_row(k, f"{res[k]:,}" if isinstance(res[k], int) else f"{res[k]:,.0f}")
    t.add_row("events/s (consumed)", f"{res['events_per_s']:,.0f}")
    t.add_row("RSS MB over time", " ".join(str(x) for x in res["rss_mb"]))
    console.print(t)
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2))
    return res


if __name__ == "__main__":
    main()
