"""Decode benchmark: what event validation costs, against bare ``orjson.loads`` run in the same process.

    python -m simulations.bench_decode [--events 50000] [--repeats 5]

Events are the ``mixed`` scenario's predictions (11 features, score, latency, model version; ~340 bytes).
Rows: the default one-pass decode without and with the wall-clock rule (the worker's case), the same
events in epoch milliseconds, events whose names hold escapes (the name check runs), and the producer's
own nested field names through a ``fields`` mapping (generic decode, then remap).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import orjson
from rich.console import Console
from rich.table import Table

from monitor.events import DecodeOptions, decode_any, producer_shaped
from monitor.scenarios import get_scenario
from monitor.types import Rejection

FIELDS = {"model": "model_name", "request_id": "meta.id", "timestamp": "meta.ts", "features": "payload.inputs",
          "prediction": "output", "score": "proba", "latency_ms": "latency", "error": "err",
          "model_version": "meta.version"}




def events(n: int) -> list[dict]:
    spec = get_scenario("mixed")
    out = []
    for e in spec.events(seed=0, windows=1000, window_s=300.0, rate=20.0):
        if isinstance(e, dict) and "label" not in e:
            out.append({**e, "model_version": "v3"})
            if len(out) == n:
                break
    return out


def rates(rows: list[tuple[str, list[bytes], Callable[[bytes], object]]], repeats: int) -> list[float]:
    """Median events/s of each row over ``repeats`` rounds; every round runs every row once (interleaved,
    so load from other processes falls on all rows alike)."""
    times: list[list[float]] = [[] for _ in rows]
    for _ in range(repeats):
        for i, (_name, raws, fn) in enumerate(rows):
            t = time.perf_counter()
            for raw in raws:
                fn(raw)
            times[i].append(time.perf_counter() - t)
    return [len(raws) / statistics.median(ts) for (_n, raws, _f), ts in zip(rows, times, strict=True)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    evs = events(args.events)
    now = max(float(e["timestamp"]) if not isinstance(e["timestamp"], str) else 0.0 for e in evs) + 60.0
    plain = [orjson.dumps(e) for e in evs]
    default = DecodeOptions()
    sane = DecodeOptions(max_event_age_s=365 * 86_400.0)
    mapped_opts = DecodeOptions(fields=tuple(FIELDS.items()))
    from monitor.timestamps import parse_timestamp

    millis = [orjson.dumps({**e, "timestamp": round(parse_timestamp(e["timestamp"]) * 1000)}) for e in evs]
    escaped = [json.dumps({**e, "features": {f"{k}\\x": v for k, v in e["features"].items()}}).encode() for e in evs]
    producer = [orjson.dumps(producer_shaped(e, FIELDS)) for e in evs]
    for raws, opts in ((plain, default), (millis, default), (escaped, default), (producer, mapped_opts)):
        bad = [r for r in raws[:2000] if isinstance(decode_any(r, options=opts, now=now), Rejection)]
        assert not bad, bad[0][:300]

    rows = [
        ("orjson.loads (baseline)", plain, orjson.loads),
        ("decode, default (replay: no clock)", plain, lambda r: decode_any(r, options=default)),
        ("decode, wall-clock rule (worker)", plain, lambda r: decode_any(r, options=sane, now=now)),
        ("decode, epoch milliseconds", millis, lambda r: decode_any(r, options=sane, now=now)),
        ("decode, names with escapes", escaped, lambda r: decode_any(r, options=sane, now=now)),
        ("decode, producer's field names (fields)", producer, lambda r: decode_any(r, options=mapped_opts, now=now)),
    ]
    table = Table(title=f"decode of {len(evs):,} prediction events (median of {args.repeats})")
    for col in ("what", "events/s", "µs/event", "ratio to orjson.loads"):
        table.add_column(col, justify="left" if col == "what" else "right")
    measured = rates(rows, args.repeats)
    for (name, _raws, _fn), r in zip(rows, measured, strict=True):
        table.add_row(name, f"{r:,.0f}", f"{1e6 / r:.2f}", f"{r / measured[0]:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
