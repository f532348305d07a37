"""``monitor dashboards push|list``: provision Driftline's Grafana datasource and dashboards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from monitor.redact import redact_url

_COLOURS = {"created": "green", "updated": "yellow", "unchanged": "dim", "in sync": "green", "differs": "yellow",
            "missing": "red", "not local": "dim"}

UrlOpt = Annotated[str, typer.Option("--url", envvar="GRAFANA_URL", help="Grafana base URL.")]
TokenOpt = Annotated[str | None, typer.Option(
    "--token", envvar="GRAFANA_TOKEN",
    help="Grafana service-account token (or user:password for basic auth).")]
DirOpt = Annotated[Path | None, typer.Option("--dir", help=(
    "Dashboards directory (default: the checkout's dashboards/, /app/dashboards in the container image, "
    "else ./dashboards)."))]


def register(app: typer.Typer) -> None:
    dash = typer.Typer(help="Grafana dashboards.", no_args_is_help=True)
    app.add_typer(dash, name="dashboards")

    @dash.command("push")
    def push_cmd(
        url: UrlOpt = "http://localhost:3000",
        token: TokenOpt = None,
        influx_url: Annotated[str, typer.Option(
            "--influx-url", envvar="MONITOR_INFLUX_URL",
            help="InfluxDB URL as Grafana's server sees it.")] = "http://influxdb:8086",
        database: Annotated[str, typer.Option(
            "--influx-db", "--bucket", "--database", envvar="MONITOR_INFLUX_BUCKET",
            help="InfluxQL database (on InfluxDB 2.x: the bucket's DBRP database).")] = "driftline",
        influx_token: Annotated[str | None, typer.Option(
            "--influx-token", envvar="MONITOR_INFLUX_TOKEN",
            help="InfluxDB token (sent as 'Authorization: Token …'); omit for an open 1.x.")] = None,
        folder: Annotated[str, typer.Option("--folder", help="Grafana folder title (uid 'driftline').")] = "Driftline",
        directory: DirOpt = None,
        timeout: Annotated[float, typer.Option(help="HTTP timeout, seconds.")] = 10.0,
    ) -> None:
        """Create or update the Driftline datasource, folder and dashboards (idempotent, uid-stable)."""
        from monitor.adapters.grafana import PushError, default_dashboards_dir, push

        try:
            changes = push(url, token, directory or default_dashboards_dir(), influx_url=influx_url,
                           database=database, influx_token=influx_token, folder_title=folder, timeout=timeout)
        except PushError as exc:
            Console(stderr=True).print(f"[red]error:[/] {exc}", highlight=False)
            raise typer.Exit(1) from None
        t = Table(title=f"Grafana {redact_url(url)}")
        for col in ("kind", "uid", "action", "detail"):
            t.add_column(col)
        for c in changes:
            t.add_row(c.kind, c.uid, f"[{_COLOURS.get(c.action, 'white')}]{c.action}[/]", c.detail)
        console = Console()
        console.print(t)
        n = sum(c.action != "unchanged" for c in changes)
        console.print(f"{n} change(s)" if n else "everything up to date")

    @dash.command("list")
    def list_cmd(
        directory: DirOpt = None,
        url: Annotated[str | None, typer.Option(
            "--url", envvar="GRAFANA_URL", help="Also compare with this Grafana (search by tag 'driftline').")] = None,
        token: TokenOpt = None,
    ) -> None:
        """List the dashboards push would provision; with --url, whether Grafana holds them up to date."""
        from monitor.adapters.grafana import PushError, default_dashboards_dir, load_dashboards, remote_status

        d = directory or default_dashboards_dir()
        console = Console()
        try:
            if url is None:
                t = Table(title=f"dashboards in {d}")
                for col in ("uid", "title", "panels", "variables"):
                    t.add_column(col)
                for board in load_dashboards(d):
                    t.add_row(board["uid"], board["title"], str(len(board.get("panels", []))),
                              ", ".join(v["name"] for v in board.get("templating", {}).get("list", [])))
                console.print(t)
                return
            status = remote_status(url, token, d)
        except PushError as exc:
            Console(stderr=True).print(f"[red]error:[/] {exc}", highlight=False)
            raise typer.Exit(1) from None
        t = Table(title=f"Grafana {redact_url(url)}")
        for col in ("uid", "title", "remote version", "state"):
            t.add_column(col)
        for s in status:
            t.add_row(s.uid, s.title, "" if s.remote_version is None else str(s.remote_version),
                      f"[{_COLOURS.get(s.state, 'white')}]{s.state}[/]")
        console.print(t)
        if any(s.state in ("missing", "differs") for s in status):
            console.print("run [bold]monitor dashboards push[/] to update")
            raise typer.Exit(3)

