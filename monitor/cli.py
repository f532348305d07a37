"""Command line: ``monitor`` (also ``python -m monitor``). The composition root."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TimeElapsedColumn, TransferSpeedColumn
from rich.table import Table

from monitor.config import ConfigError, MonitorSettings, load_settings

if TYPE_CHECKING:
    from monitor.replay import ReplaySummary

def _flags_take_no_value() -> None:
    """typer's rich help prints a value type beside flags (``--help <bool>``, ``--list <bool>``) although a
    flag takes no value; its plain help leaves it out. Do the same in the rich help (tests/test_cli.py)."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "_driftline", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag and self.metavar is None else shown(self, ctx)

    display_type_rich._driftline = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_take_no_value()

app = typer.Typer(
    name="monitor",
    help="Driftline: streaming model monitoring — drift, latency, errors and performance per window.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
reference_app = typer.Typer(help="Reference profiles (the distribution drift is measured against).",
                            no_args_is_help=True)
app.add_typer(reference_app, name="reference")
console = Console(stderr=True)
out = Console()


def fail(message: str, code: int = 2) -> typer.Exit:
    # one line per problem, never re-wrapped (logs and CI read it), and the message is not markup
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def settings_or_exit(config: Path | None, **overrides: object) -> MonitorSettings:
    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        raise fail(str(exc)) from None


ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML config file (or MONITOR_CONFIG).")]


@reference_app.command("build")
def reference_build(
    model: Annotated[str, typer.Option(help="Model name the profile is for.")],
    data: Annotated[Path, typer.Option(help="CSV, Parquet or JSON lines (flat rows or prediction events).")],
    out_path: Annotated[Path, typer.Option("--out", help="Where to write the profile JSON.")] = Path(
        "reference.json"),
    fine_bins: Annotated[int, typer.Option(help="Fine quantile bins per numeric feature (KS, Wasserstein).")] = 100,
    psi_bins: Annotated[int, typer.Option(help="Coarse quantile bins for PSI.")] = 10,
    ks_sample: Annotated[int, typer.Option(help="Reference values kept for exact KS.")] = 5000,
    segments: Annotated[str, typer.Option(
        help="Categorical features to profile per value too, comma-separated (as `segments` in the config).",
        metavar="FEATURE,…")] = "",
    segment_max_values: Annotated[int, typer.Option(
        min=1, help="Per segment feature, the N most frequent values get a segment; the rest pool into "
                    "__other__ (as `segment_max_values` in the config).")] = 20,
    resamples: Annotated[int, typer.Option(
        min=50, help="Draws per window size when calibrating each statistic's null distribution.")] = 400,
    calibrate: Annotated[bool, typer.Option(
        help="Calibrate thresholds and fit the multivariate model (docs/reference.md).")] = True,
    config: ConfigOpt = None,
) -> None:
    """Build a reference profile from a table of reference data (``policy.features`` of the config: ignored
    features are left out, forced kinds applied)."""
    from monitor.core.reference import build_profile, read_table
    from monitor.core.segment_profiles import with_segments

    if not out_path.parent.is_dir():
        raise fail(f"--out {out_path}: directory {out_path.parent} does not exist")
    if out_path.is_dir():
        raise fail(f"--out {out_path} is a directory; give the profile's file name, e.g. {out_path / (model + '.json')}")
    features = [f.strip() for f in segments.split(",") if f.strip()]
    overrides = settings_or_exit(config).policy.build_overrides() if config is not None else {}
    try:
        table = read_table(data)
        profile = build_profile(model, table, fine_bins=fine_bins, psi_bins=psi_bins, ks_sample_size=ks_sample,
                                calibrate=calibrate, resamples=resamples, **overrides)
        if features:
            profile = with_segments(profile, table, features, segment_max_values, fine_bins=fine_bins,
                                    psi_bins=psi_bins)
    except (OSError, ValueError) as exc:
        raise fail(f"{data}: {exc}") from None
    try:
        profile.save(out_path)
    except OSError as exc:
        raise fail(f"--out {out_path}: cannot write: {exc.strerror or exc}") from None
    t = Table(title=f"reference profile for {model}: {profile.rows} rows → {out_path}")
    t.add_column("feature")
    t.add_column("kind")
    t.add_column("bins / categories", justify="right")
    t.add_column("missing", justify="right")
    for name, num in profile.numeric.items():
        t.add_row(name, "numeric" + (" (discrete)" if num.discrete else ""), str(len(num.proportions)),
                  f"{num.missing_rate:.1%}")
    for name, cat in profile.categorical.items():
        t.add_row(name, "categorical", str(len(cat.categories)), f"{cat.missing_rate:.1%}")
    out.print(t)
    mv = profile.multivariate
    if mv is not None:
        out.print(f"multivariate drift: {mv.width} features, {mv.components.shape[1]} PCA components "
                  f"({mv.explained:.0%} of the variance), reference mean reconstruction error {mv.ref_mean:.3f}")
    for feature, values in profile.segments.items():
        out.print(f"segments of {feature}: " + ", ".join(f"{v} ({p.rows:,} rows)" for v, p in values.items()))
    if profile.performance:
        out.print("baseline performance: " + ", ".join(f"{k}={v:.4f}" for k, v in profile.performance.items()))


@app.command()
def replay(
    file: Annotated[Path, typer.Argument(help="JSON lines of prediction and label events, in time order.",
                                         metavar="FILE")],
    reference: Annotated[Path | None, typer.Option(help="Reference profile, or a directory of them.")] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Output directory.")] = Path("out"),
    window: Annotated[str | None, typer.Option(help="Window size, e.g. 5m (default from config: 5m).")] = None,
    config: ConfigOpt = None,
) -> None:
    """Backtest a monitor configuration on logged traffic: the streaming pipeline over a file."""
    from monitor.pipeline import load_references
    from monitor.replay import replay_file
    from monitor.segments import check_references

    settings = settings_or_exit(config, window=window, reference=reference)
    if not file.is_file():
        raise fail(f"{file}: no such file")
    if out_dir.exists() and not out_dir.is_dir():
        raise fail(f"--out {out_dir} is a file; give a directory for metrics.lp, alerts.jsonl, ...")
    if settings.timestamp_source == "record":
        raise fail("timestamp_source is 'record' (the Kafka record's time), but a file has no record "
                   "timestamps: replay needs the events' own timestamp field (timestamp_source: event)")
    refs = {}
    if settings.reference is not None:
        try:
            refs = load_references(settings.reference)
            check_references(refs, settings)
        except (OSError, ValueError) as exc:
            raise fail(f"reference {settings.reference}: {exc}") from None
    elif settings.warmup_events == 0:
        settings = settings.model_copy(update={"warmup_events": 2000})
        console.print("[yellow]no --reference: each model's first 2000 events become its reference[/]")
    size = file.stat().st_size
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), TimeElapsedColumn(), console=console,
                  disable=not console.is_terminal) as progress:
        task = progress.add_task(f"replaying {file.name}", total=size)
        summary = replay_file(file, refs, out_dir, settings,
                              progress=lambda n: progress.update(task, completed=n))
    if summary.events + summary.labels + summary.rejected == 0:
        raise fail(f"{file}: no events (the file is empty or has only blank lines); nothing written", code=1)
    out.print(replay_table(summary, out_dir))
    out.print(f"{summary.seconds:.1f} s, {summary.events / max(summary.seconds, 1e-9):,.0f} events/s")
    _check_references(summary.windows, refs, settings.warmup_events)


def _check_references(windows: Mapping[str, int], refs: Mapping[str, object], warmup_events: int) -> None:
    """Models whose events were replayed without a reference had no drift computed: say which, and fail
    when no model at all was measured (a profile built for another model name is the usual cause)."""
    unmatched = sorted(m for m in windows if m not in refs)
    if not refs or not unmatched or warmup_events > 0:
        return
    unused = sorted(m for m in refs if m not in windows)
    hint = f"; the reference is for {', '.join(map(repr, unused))}" if unused else ""
    message = (f"no reference for model(s) {', '.join(map(repr, unmatched))}: drift was not computed for "
               f"them{hint} (build one with `monitor reference build --model NAME`, or set warmup_events)")
    if len(unmatched) == len(windows):
        raise fail(message, code=1)
    console.print(f"[bold yellow]warning:[/] {escape(message)}", soft_wrap=True)


def replay_table(summary: ReplaySummary, out_dir: Path) -> Table:
    """What a replay read and wrote, one row per output, as a table."""
    t = Table(title=f"replay → {out_dir}/", title_justify="left")
    t.add_column("")
    t.add_column("count", justify="right")
    t.add_column("where")
    lines = _count_lines(out_dir / "metrics.lp")
    t.add_row("predictions", f"{summary.events:,}", "")
    t.add_row("labels", f"{summary.labels:,}", "")
    t.add_row("rejected", f"{summary.rejected:,}", "dlq.jsonl (with the reason)")
    for model in sorted(summary.windows):
        t.add_row(f"windows of {model}", f"{summary.windows[model]:,}",
                  f"{summary.drifted_windows.get(model, 0):,} with drifted features")
    t.add_row("points", f"{summary.points:,}",
              f"metrics.lp: {lines:,} lines" + (" (late labels rewrote points of closed windows in place)"
                                                 if lines != summary.points else ""))
    fired = ", ".join(f"{name} {n}" for name, n in sorted(summary.alertnames.items()))
    t.add_row("alerts fired", f"{summary.alerts_firing:,}", "alerts.jsonl" + (f": {fired}" if fired else ""))
    t.add_row("alerts resolved", f"{summary.alerts_resolved:,}", "alerts.jsonl")
    t.add_row("retraining requests", f"{summary.retraining:,}", "retraining.jsonl")
    return t


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    n = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            n += chunk.count(b"\n")
    return n


def _register_commands() -> None:
    """Commands defined beside this module (simulate, run, dashboards, demo, report)."""
    from monitor import cli_dashboards, cli_run, cli_simulate, demo, report

    for module in (cli_simulate, cli_run, cli_dashboards, demo, report):
        module.register(app)


_register_commands()


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(2)
