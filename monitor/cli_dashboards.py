"""``monitor dashboards push|list``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def register(app: typer.Typer) -> None:
    dash = typer.Typer(help="Grafana dashboards.", no_args_is_help=True)
    app.add_typer(dash, name="dashboards")

    @dash.command("push")
    def push_cmd(
        url: Annotated[str, typer.Option(envvar="GRAFANA_URL", help="Grafana base URL.")] = "http://localhost:3000",
        token: Annotated[str | None, typer.Option(envvar="GRAFANA_TOKEN", help="Service-account token.")] = None,
        influx_url: Annotated[str, typer.Option(envvar="MONITOR_INFLUX_URL", help="InfluxDB URL as Grafana sees it.")]
        = "http://influxdb:8086",
        database: Annotated[str, typer.Option(envvar="MONITOR_INFLUX_BUCKET", help="InfluxQL database (bucket).")]
        = "driftline",
        influx_token: Annotated[str | None, typer.Option(envvar="MONITOR_INFLUX_TOKEN", help="InfluxDB token.")] = None,
        directory: Annotated[Path | None, typer.Option("--dir", help="Dashboards directory.")] = None,
    ) -> None:
        """Create or update the Driftline datasource and dashboards (idempotent, uid-stable)."""
        from monitor.adapters.grafana import PushError, default_dashboards_dir, push

        try:
            changes = push(url, token, directory or default_dashboards_dir(), influx_url=influx_url,
                           database=database, influx_token=influx_token)
        except PushError as exc:
            Console(stderr=True).print(f"[red]error:[/] {exc}")
            raise typer.Exit(1) from None
        t = Table(title=f"Grafana {url}")
        for col in ("kind", "uid", "action", "detail"):
            t.add_column(col)
        for c in changes:
            colour = {"created": "green", "updated": "yellow"}.get(c.action, "dim")
            t.add_row(c.kind, c.uid, f"[{colour}]{c.action}[/]", c.detail)
        Console().print(t)

    @dash.command("list")
    def list_cmd(directory: Annotated[Path | None, typer.Option("--dir")] = None) -> None:
        """List the dashboards that push would provision."""
        import json

        from monitor.adapters.grafana import default_dashboards_dir

        d = directory or default_dashboards_dir()
        for f in sorted(d.glob("*.json")):
            board = json.loads(f.read_text())
            typer.echo(f"{board['uid']:20} {board['title']} ({len(board['panels'])} panels) {f}")
