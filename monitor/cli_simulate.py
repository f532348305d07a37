"""``monitor simulate``: synthetic traffic with known drift points, to a file or to Kafka."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from monitor.config import parse_duration

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    @app.command()
    def simulate(
        scenario: Annotated[str, typer.Argument(help="Scenario name (see --list).")] = "mixed",
        out: Annotated[Path | None, typer.Option(help="Write JSON lines here (plus <out>.truth.json).")] = None,
        broker: Annotated[str | None, typer.Option(help="Produce to Kafka (default: MONITOR_BROKER).")] = None,
        seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
        windows: Annotated[int, typer.Option(help="Windows of traffic.")] = 12,
        window: Annotated[str, typer.Option(help="Window size the change points refer to.")] = "5m",
        rate: Annotated[float, typer.Option(help="Prediction events per second of event time, per model.")] = 20.0,
        wall_rate: Annotated[float | None, typer.Option(help="Cap on events/s sent to Kafka (wall clock).")] = None,
        start: Annotated[float | None, typer.Option(help="Event time of the first window (epoch s; default now).")] = None,
        reference_dir: Annotated[Path | None, typer.Option(help="Also write each model's reference table here.")] = None,
        list_: Annotated[bool, typer.Option("--list", help="List the scenarios and exit.")] = False,
    ) -> None:
        """Produce synthetic traffic with known change points (ground truth in a sidecar JSON)."""
        import time

        import orjson

        from simulations.scenarios import DEFAULT_START, SCENARIOS, get_scenario, write_reference_table

        if list_:
            t = Table(title="scenarios")
            t.add_column("name")
            t.add_column("what changes")
            for s in SCENARIOS.values():
                t.add_row(s.name, s.description)
            Console().print(t)
            return
        try:
            spec = get_scenario(scenario)
            window_s = parse_duration(window)
        except ValueError as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2) from None
        if reference_dir is not None:
            for model, path in write_reference_table(scenario, reference_dir, seed=seed).items():
                console.print(f"reference table for {model}: {path}")
        t0 = start if start is not None else (DEFAULT_START if out is not None else float(int(time.time())))
        truth = spec.truth(seed=seed, windows=windows, window_s=window_s, rate=rate, start=t0)

        def events() -> Iterator[dict[str, Any] | str]:
            return spec.events(seed=seed, windows=windows, window_s=window_s, rate=rate, start=t0)

        total = int(sum(truth["rates"].values()) * window_s * windows * 1.8)  # predictions + ~80% labels
        bootstrap = broker or os.environ.get("MONITOR_BROKER")
        with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task(f"{scenario}", total=total)
            if out is not None:
                n = 0
                out.parent.mkdir(parents=True, exist_ok=True)
                with out.open("wb") as fh:
                    for item in events():
                        fh.write(item.encode() if isinstance(item, str) else orjson.dumps(item))
                        fh.write(b"\n")
                        n += 1
                        if n % 5000 == 0:
                            progress.update(task, completed=n)
                out.with_suffix(".truth.json").write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2))
                progress.update(task, completed=n, total=n)
                console.print(f"wrote {n:,} lines to {out} (truth: {out.with_suffix('.truth.json')})")
            elif bootstrap:
                from simulations.produce import produce_events

                bootstrap = ",".join(b.strip().removeprefix("kafka://") for b in bootstrap.replace(";", ",").split(","))
                n = produce_events(events(), bootstrap, rate=wall_rate,
                                   progress=lambda k: progress.update(task, completed=k))
                progress.update(task, completed=n, total=n)
                console.print(f"produced {n:,} events to {bootstrap}")
            else:
                console.print("[red]error:[/] give --out FILE or --broker HOST:PORT (or set MONITOR_BROKER)")
                raise typer.Exit(2)
