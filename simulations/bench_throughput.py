"""Throughput benchmark on the real broker: a `monitor run` worker (all metrics on, writing to an
InfluxDB-protocol store) against a bare aiokafka consumer that only decodes the JSON, in the same run.

    python -m simulations.bench_throughput [--events 200000] [--runs 3] [--window-events 10000,100000]
                                           [--json out.json]

Prints, per run, events/s and CPU per event of the bare consumer and of one worker right after it (each run
has its own bare baseline) and the median ratio; 2 workers on 4 partitions against 1; the worker's RSS
after a backlog at several events-per-window sizes, with and without a labels topic, and the bytes per
prediction held for the label join and duplicate detection.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

from monitor.adapters.health import scrape
from monitor.core.reference import build_profile
from monitor.devservices import create_topics, free_port, start_kafka, start_victoriametrics

NUMERIC = [f"n{i}" for i in range(14)]
CATEGORICAL = [f"c{i}" for i in range(6)]
MODELS = ["model-a", "model-b", "model-c", "model-d"]
T0 = 1_767_225_600.0


def make_events(n: int, models: list[str], per_second: float, seed: int = 0) -> list[bytes]:
    """``n`` prediction events with 20 features (14 numeric, 6 categorical), score, latency, 1% errors."""
    rng = np.random.default_rng(seed)
    num = rng.normal(0, 1, (n, len(NUMERIC))).round(5)
    cat = rng.choice(list("abcdefgh"), (n, len(CATEGORICAL)))
    score = rng.uniform(0, 1, n).round(5).tolist()
    lat = rng.lognormal(3, 0.3, n).round(3).tolist()
    err = rng.uniform(size=n) < 0.01
    out = []
    for i in range(n):
        feats: dict[str, Any] = dict(zip(NUMERIC, num[i].tolist(), strict=True))
        feats.update(zip(CATEGORICAL, cat[i].tolist(), strict=True))
        ev = {"model": models[i % len(models)], "model_version": "v1", "request_id": f"r{i}",
              "timestamp": T0 + i / per_second, "features": feats,
              "prediction": None if err[i] else int(score[i] >= 0.5), "score": None if err[i] else score[i],
              "latency_ms": lat[i], "error": "boom" if err[i] else None}
        out.append(orjson.dumps(ev, option=orjson.OPT_SERIALIZE_NUMPY))
    return out


def produce(bootstrap: str, topic: str, events: list[bytes], models: list[str]) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=512 * 1024, acks=1)
    for i, raw in enumerate(events):
        p.send(topic, key=models[i % len(models)].encode(), value=raw)
    p.flush()
    p.close()


async def bare_consumer(bootstrap: str, topic: str, n: int) -> tuple[float, float]:
    """events/s of an aiokafka consumer that only decodes the JSON, and its CPU µs per event (this process,
    from the first fetched batch on)."""
    from aiokafka import AIOKafkaConsumer

    c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"bare-{time.time()}",
                         auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=5000)
    await c.start()
    got = 0
    started: float | None = None
    cpu0 = 0.0
    try:
        while got < n:
            batch = await c.getmany(timeout_ms=1000, max_records=5000)
            for records in batch.values():
                if started is None:
                    started, cpu0 = time.perf_counter(), time.process_time()
                for r in records:
                    orjson.loads(r.value)
                got += len(records)
        cpu = time.process_time() - cpu0
    finally:
        await c.stop()
    assert started is not None
    return n / (time.perf_counter() - started), cpu / n * 1e6


def _metric(port: int, name: str) -> float:
    return scrape(f"http://127.0.0.1:{port}/metrics", name, default=-1.0)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: CPU seconds used while the last run_workers() call consumed its events: workers and the other servers
LAST_CPU: dict[str, float] = {}
#: the last run_workers() call's predictions held for the label join and duplicate detection, and their bytes
LAST_HELD: dict[str, float] = {}


def run_workers(k: int, bootstrap: str, topic: str, n: int, env: dict[str, str], workdir: Path,
                timeout: float = 600, label: str = "", others: dict[str, int] | None = None
                ) -> tuple[float, list[float]]:
    """Start k workers, wait until they consumed n events; events/s from the moment every worker consumes
    (replays after a rebalance count: they are work) until n, and RSS (MB).

    Each run has its own consumer group and checkpoint topic (a checkpoint of an earlier run would make
    every event of this one late), and fails if any event was late or no window closed."""
    procs = []
    ports = []
    group = f"bench-{time.time()}"
    for i in range(k):
        port = free_port()
        e = dict(os.environ, **env, MONITOR_WEB_PORT=str(port), MONITOR_CONSUMER_GROUP=group,
                 MONITOR_CHECKPOINT_TOPIC=f"{group}-checkpoints",
                 MONITOR_WORKER_NAME=f"bench-{i}", MONITOR_PREDICTIONS_TOPIC=topic)
        log = (workdir / f"worker-{k}-{i}{label}.log").open("wb")
        procs.append(subprocess.Popen([sys.executable, "-m", "monitor", "run"], env=e, stdout=log,
                                      stderr=subprocess.STDOUT))
        ports.append(port)
    try:
        first: float | None = None
        first_count = 0.0
        deadline = time.monotonic() + timeout
        pids = {**{f"worker {i}": p.pid for i, p in enumerate(procs)}, **(others or {})}
        cpu0: dict[str, float] = {}
        while time.monotonic() < deadline:
            counts = [max(0.0, _metric(p, "driftline_events_total")) for p in ports]
            total = sum(counts)
            # the clock starts once every worker consumes: with k > 1 the group's last rebalance is over
            if first is None and all(c > 0 for c in counts):
                first, first_count = time.perf_counter(), total
                cpu0 = {name: _cpu_s(pid) for name, pid in pids.items()}
            if total >= n:
                LAST_CPU.clear()
                LAST_CPU.update({name: _cpu_s(pid) - cpu0[name] for name, pid in pids.items()})
                LAST_CPU["wall"] = time.perf_counter() - (first or 0.0)
                LAST_CPU["events"] = n - first_count
                break
            # a /metrics scrape costs the worker ~1 ms of CPU (the bare consumer pays nothing alike): poll
            # sparsely while it consumes and finely only at the start and near the end
            pause = 0.05
            if first is not None and total < 0.95 * n:
                rate = (total - first_count) / max(time.perf_counter() - first, 1e-3)
                pause = min(0.5, max(0.05, (0.95 * n - total) / rate)) if rate > 0 else 0.25
            time.sleep(pause)
        else:
            raise TimeoutError(f"workers consumed {total:.0f}/{n} events")
        assert first is not None
        rate = (n - first_count) / max(time.perf_counter() - first, 1e-9)
        time.sleep(2.0)  # let the last windows close (idle timeout) before reading memory
        rss = [_rss_mb(p.pid) for p in procs]
        late = sum(_metric(p, "driftline_late_events") for p in ports)
        closed = sum(_metric(p, "driftline_windows_closed_total") for p in ports)
        LAST_HELD.clear()
        LAST_HELD.update(predictions=sum(_metric(p, "driftline_label_join_pending") for p in ports),
                         bytes=sum(_metric(p, "driftline_held_prediction_bytes") for p in ports))
        if late > 0 or closed <= 0:
            raise RuntimeError(f"invalid run: {late:.0f} late events, {closed:.0f} windows closed (see {workdir})")
        return rate, rss
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
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3, help="bare consumer + one worker pairs (the median is reported)")
    ap.add_argument("--window-events", default="10000,100000",
                    help="events per window for the memory measurement (comma separated)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    console = Console()
    work = Path(tempfile.mkdtemp(prefix="driftline-bench-"))
    broker = start_kafka(work / "kafka")
    vm = start_victoriametrics(work / "vm")
    results: dict[str, Any] = {"events": args.events}
    try:
        n = args.events
        refdir = work / "refs"
        refdir.mkdir()
        ref_rows = [orjson.loads(r) for r in make_events(5000, ["x"], 100.0, seed=9)]
        import pandas as pd

        frame = pd.DataFrame([{**r["features"], "score": r["score"], "prediction": r["prediction"]} for r in ref_rows])
        for m in MODELS:
            build_profile(m, frame).save(refdir / f"{m}.json")
        env = {"MONITOR_BROKER": f"kafka://{broker.url}", "MONITOR_REFERENCE": str(refdir),
               "MONITOR_INFLUX_URL": vm.url, "MONITOR_INFLUX_TOKEN": "bench", "MONITOR_WINDOW": "10s",
               "MONITOR_ALLOWED_LATENESS": "1s", "MONITOR_IDLE_TIMEOUT": "1s", "MONITOR_SESSION_TIMEOUT": "6s",
               "MONITOR_REBALANCE_TIMEOUT": "6s", "MONITOR_HEARTBEAT_INTERVAL": "1s", "MONITOR_PARTITIONS": "4"}
        with console.status(f"producing {n:,} events (20 features) to 4 partitions"):
            events = make_events(n, MODELS, per_second=1000.0)
            create_topics(broker.url, {"bench": 4, "labels": 4})
            produce(broker.url, "bench", events, MODELS)
        servers = {"broker": broker.pid, "VictoriaMetrics": vm.pid}
        runs: list[dict[str, float]] = []
        for r in range(args.runs):
            with console.status(f"run {r + 1}/{args.runs}: bare aiokafka consumer (decode only)"):
                bare, bare_cpu = asyncio.run(bare_consumer(broker.url, "bench", n))
            with console.status(f"run {r + 1}/{args.runs}: 1 monitor run worker"):
                one, rss_one = run_workers(1, broker.url, "bench", n, env, work, others=servers, label=f"-run{r}")
                cpu_one = dict(LAST_CPU)
            runs.append({"bare_events_per_s": bare, "bare_cpu_us_per_event": bare_cpu, "worker_events_per_s": one,
                         "worker_cpu_us_per_event": cpu_one["worker 0"] / cpu_one["events"] * 1e6,
                         "ratio": one / bare, "rss_mb": rss_one[0]})
        median = sorted(runs, key=lambda x: x["ratio"])[len(runs) // 2]
        bare, one = median["bare_events_per_s"], median["worker_events_per_s"]
        results["runs"] = runs
        with console.status("2 monitor run workers"):
            two, rss_two = run_workers(2, broker.url, "bench", n, env, work, others=servers)
            cpu_two = dict(LAST_CPU)
        results.update(cpu_one_worker=cpu_one, cpu_two_workers=cpu_two)
        if cpu_two["events"] < n / 2:
            console.print(f"[yellow]2 workers: only {cpu_two['events']:,.0f} events after both joined; "
                          "use more --events for a steadier figure[/]")
        results.update(bare_events_per_s=bare, worker_events_per_s=one, ratio=median["ratio"],
                       two_workers_events_per_s=two, two_vs_one=two / one, rss_mb_one_worker=median["rss_mb"])
        memory: dict[int, float] = {}
        memory_no_labels: dict[int, float] = {}
        held: dict[int, dict[str, float]] = {}
        for per_window in [int(x) for x in args.window_events.split(",") if x]:
            total = max(per_window * 2, 20_000)
            topic = f"mem-{per_window}"
            create_topics(broker.url, {topic: 4})
            with console.status(f"memory: {per_window:,} events per window ({total:,} events, one model)"):
                evs = make_events(total, MODELS[:1], per_second=per_window / 10.0, seed=3)
                produce(broker.url, topic, evs, MODELS[:1])
                del evs
                _, rss = run_workers(1, broker.url, topic, total, env, work, label=f"-mem{per_window}")
                memory[per_window] = rss[0]
                held[per_window] = dict(LAST_HELD)  # with labels, every prediction is held for label_grace
                _, rss = run_workers(1, broker.url, topic, total, {**env, "MONITOR_LABELS_TOPIC": ""}, work,
                                     label=f"-mem{per_window}-nolabels")
                memory_no_labels[per_window] = rss[0]
        results["rss_mb_by_events_per_window"] = memory
        results["rss_mb_by_events_per_window_no_label_join"] = memory_no_labels
        results["held_bytes_per_prediction"] = held
    finally:
        vm.stop()
        broker.stop()
    t = Table(title=f"worker throughput on the tansu broker, {n:,} events × 20 features (VictoriaMetrics sink)")
    t.add_column("run")
    t.add_column("bare aiokafka consumer (orjson decode only)", justify="right")
    t.add_column("1 × monitor run (all metrics, InfluxDB writes)", justify="right")
    t.add_column("ratio", justify="right")
    for i, r in enumerate(results["runs"]):
        t.add_row(f"{i + 1}", f"{r['bare_events_per_s']:,.0f}/s, {r['bare_cpu_us_per_event']:.1f} µs CPU",
                  f"{r['worker_events_per_s']:,.0f}/s, {r['worker_cpu_us_per_event']:.1f} µs CPU", f"{r['ratio']:.2f}")
    t.add_row("median", f"{bare:,.0f}/s", f"{one:,.0f}/s", f"{results['ratio']:.2f}")
    console.print(t)
    console.print(f"2 × monitor run, 4 partitions: {two:,.0f} events/s ({two / one:.2f}× one worker)")
    console.print(f"worker RSS after the backlog: {results['rss_mb_one_worker']:.0f} MB")
    for title, cpu in (("1 worker", results["cpu_one_worker"]), ("2 workers", results["cpu_two_workers"])):
        per = {k: v / cpu["events"] * 1e6 for k, v in cpu.items() if k not in ("wall", "events")}
        busy = sum(v for k, v in cpu.items() if k not in ("wall", "events")) / cpu["wall"]
        console.print(f"CPU per event, {title}: " + ", ".join(f"{k} {v:.1f} µs" for k, v in per.items())
                      + f"; all together {busy:.2f} of {os.cpu_count()} cores busy")
    cpu = results["cpu_one_worker"]
    total_us = sum(v for k, v in cpu.items() if k not in ("wall", "events")) / cpu["events"] * 1e6
    worker_us = cpu["worker 0"] / cpu["events"] * 1e6
    results["model"] = {"worker_cpu_us_per_event": worker_us, "all_cpu_us_per_event": total_us}
    console.print(f"scaling model: k workers on c cores ≈ min(k × {1e6 / worker_us:,.0f}, "
                  f"c × {1e6 / total_us:,.0f}) events/s (worker CPU alone; worker + broker + sink CPU)")
    if results["rss_mb_by_events_per_window"]:
        m = Table(title="worker RSS (MB) after a backlog of 2 windows, one model")
        m.add_column("events per window", justify="right")
        m.add_column("label join on (default)", justify="right")
        m.add_column("no labels topic", justify="right")
        m.add_column("predictions held (label join on)", justify="right")
        for k, v in results["rss_mb_by_events_per_window"].items():
            h = results["held_bytes_per_prediction"][k]
            m.add_row(f"{k:,}", f"{v:.0f}", f"{results['rss_mb_by_events_per_window_no_label_join'][k]:.0f}",
                      f"{h['predictions']:,.0f} × {h['bytes'] / max(h['predictions'], 1):.1f} B")
        console.print(m)
    console.print(f"machine: {os.cpu_count()} cores")
    if args.json:
        Path(args.json).write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    return results


if __name__ == "__main__":
    main()
