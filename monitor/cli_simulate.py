"""``monitor simulate``: synthetic traffic with known drift points, to a JSON-lines file or to Kafka."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Parse ``"5m"``, ``"30s"``, ``"1h"``, ``"250ms"``, ``"1d"`` or a bare number of seconds into seconds.

    >>> parse_duration("5m"), parse_duration("30s"), parse_duration("1.5h"), parse_duration("90")
    (300.0, 30.0, 5400.0, 90.0)
    """
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"invalid duration {text!r}: use a number with a unit (ms, s, m, h, d), e.g. 30s, 5m, 1h")
    seconds = float(m.group(1)) * _UNIT_S[m.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: must be greater than zero")
    return seconds


def _print_scenarios() -> None:
    from monitor.scenarios import SCENARIOS

    table = Table(title="monitor simulate — scenarios")
    table.add_column("name", style="bold")
    table.add_column("models")
    table.add_column("what changes, when")
    for spec in SCENARIOS.values():
        table.add_row(spec.name, ", ".join(spec.models), spec.description)
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` command to ``app``."""

    @app.command()
    def simulate(
        scenario: Annotated[str, typer.Argument(help="Scenario name (see --list).", metavar="SCENARIO")] = "mixed",
        out: Annotated[Path | None, typer.Option(
            help="Write JSON lines here, and the ground truth beside it: events.jsonl → events.truth.json.")] = None,
        broker: Annotated[str | None, typer.Option(
            help="Produce to Kafka at this bootstrap (default: env MONITOR_BROKER).")] = None,
        seed: Annotated[int, typer.Option(help="Random seed: same seed, same bytes.")] = 0,
        windows: Annotated[int, typer.Option(min=1, help="Windows of traffic.")] = 12,
        window: Annotated[str, typer.Option(help="Window size the change points refer to, e.g. 5m.")] = "5m",
        rate: Annotated[float, typer.Option(
            min=0.0, help="Prediction events per second of event time, per model.")] = 20.0,
        wall_rate: Annotated[float | None, typer.Option(
            min=0.001, help="Cap on events/s sent to Kafka, wall clock (default: as fast as possible).")] = None,
        start: Annotated[float | None, typer.Option(
            help="Event time of window 0, epoch s (default: 2026-01-01 for files, the current window for Kafka).",
        )] = None,
        reference_dir: Annotated[Path | None, typer.Option(
            help="Also write each model's reference table here (<model>.reference.csv).")] = None,
        reference_rows: Annotated[int, typer.Option(min=1, help="Rows per reference table.")] = 20_000,
        predictions_topic: Annotated[str, typer.Option(help="Kafka topic for predictions.")] = "predictions",
        labels_topic: Annotated[str, typer.Option(help="Kafka topic for labels.")] = "labels",
        list_: Annotated[bool, typer.Option("--list", help="List the scenarios and exit.")] = False,
    ) -> None:
        """Produce synthetic traffic with known change points (ground truth in a sidecar JSON)."""
        import orjson

        from monitor.scenarios import DEFAULT_START, dump_line, get_scenario, write_reference_table

        if list_:
            _print_scenarios()
            return
        bootstrap = broker if broker is not None else (None if out is not None else os.environ.get("MONITOR_BROKER"))
        try:
            spec = get_scenario(scenario)
            window_s = parse_duration(window)
            if out is not None and bootstrap is not None:
                raise ValueError("give either --out or --broker, not both")
            if out is None and not bootstrap:
                raise ValueError("give --out FILE or --broker HOST:PORT (or set MONITOR_BROKER)")
            if bootstrap:
                from monitor.scenarios.produce import normalize_bootstrap

                bootstrap = normalize_bootstrap(bootstrap)
        except ValueError as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2) from None
        if reference_dir is not None:
            for model, path in write_reference_table(scenario, reference_dir, rows=reference_rows, seed=seed).items():
                console.print(f"reference table for {model}: {path}")
        if start is not None:
            t0 = start
        elif out is not None:
            t0 = DEFAULT_START
        else:  # live traffic: start at the current window boundary so truth windows match the worker's
            t0 = float(int(time.time() // window_s * window_s))
        truth = spec.truth(seed=seed, windows=windows, window_s=window_s, rate=rate, start=t0)

        def events() -> Iterator[dict[str, Any] | str]:
            return spec.events(seed=seed, windows=windows, window_s=window_s, rate=rate, start=t0)

        # predictions (+ malformed lines) + the labelled share of them: an estimate, corrected at the end
        predictions = sum(truth["rates"].values()) * window_s * windows / (1.0 - truth["malformed_share"])
        total = int(predictions * (1.0 + truth["labelled_share"]))
        with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=False) as progress:
            task = progress.add_task(scenario, total=total)
            if out is not None:
                n = 0
                out.parent.mkdir(parents=True, exist_ok=True)
                with out.open("wb") as fh:
                    for item in events():
                        fh.write(dump_line(item) + b"\n")
                        n += 1
                        if n % 5000 == 0:
                            progress.update(task, completed=n)
                truth_path = out.with_suffix(".truth.json")
                truth_path.write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2))
                progress.update(task, completed=n, total=n)
                console.print(f"wrote {n:,} lines to {out} (truth: {truth_path})")
                return
            from monitor.scenarios.produce import produce_events

            assert bootstrap is not None
            try:
                n = produce_events(events(), bootstrap, predictions_topic=predictions_topic,
                                   labels_topic=labels_topic, rate=wall_rate,
                                   progress=lambda k: progress.update(task, completed=k))
            except Exception as exc:  # noqa: BLE001 — kafka-python raises many types; report, exit 1
                console.print(f"[red]error:[/] producing to {bootstrap} failed: {exc}")
                raise typer.Exit(1) from None
            progress.update(task, completed=n, total=n)
        console.print(f"produced {n:,} events to {bootstrap} (topics {predictions_topic}, {labels_topic}); "
                      f"window 0 starts at {t0:.0f}")
