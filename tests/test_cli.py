"""The command line as users meet it: help text, placeholders, ``run --broker``, the replay summary."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.scenarios import write_scenario
from tests.clitree import commands


@pytest.fixture(autouse=True)
def _no_monitor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("MONITOR_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("path", [p for p, _ in commands()], ids=lambda p: " ".join(p) or "monitor")
def test_help_shows_no_value_type_for_flags(path: tuple[str, ...]) -> None:
    r = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "140"})
    assert r.exit_code == 0, r.output
    assert "--help" in r.output and "<bool>" not in r.output
    if path == ("simulate",):
        assert "--list " in r.output and "<path>" in r.output  # options with a value still show its type


def test_argument_placeholders_are_upper_case() -> None:
    """Usage lines read ``{FILE}``, ``{DIR}``, ``[SCENARIO]``: one convention, not ``{file}`` beside ``{DIR}``."""
    seen = {}
    for path, cmd in commands():
        for p in getattr(cmd, "params", []):
            if p.param_type_name == "argument":
                name = p.metavar or p.name
                seen[" ".join(path)] = name
                assert name == name.upper(), f"monitor {' '.join(path)}: argument placeholder {name!r}"
    assert seen == {"replay": "FILE", "report": "DIR", "simulate": "SCENARIO"}


def test_run_takes_the_broker_from_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import monitor.cli_run

    started: list[Any] = []
    monkeypatch.setattr(monitor.cli_run, "run_worker", lambda settings, references=None: started.append(settings))
    r = CliRunner().invoke(app, ["run", "--broker", "kafka://kafka-1:9094", "--worker-name", "w-7"])
    assert r.exit_code == 0, r.output
    assert started[0].broker == "kafka://kafka-1:9094" and started[0].bootstrap_servers == "kafka-1:9094"
    assert started[0].worker_name == "w-7"


def test_replay_summary_is_a_table_naming_every_output(tmp_path: Path) -> None:
    events, _ = write_scenario("mixed", tmp_path / "mixed.jsonl", seed=1, windows=12, window_s=60.0, rate=5.0)
    r = CliRunner().invoke(app, ["replay", str(events), "--out", str(tmp_path / "out"), "--window", "1m"],
                           env={"COLUMNS": "160"})
    assert r.exit_code == 0, r.output
    assert "{'" not in r.output and "Counter(" not in r.output  # no Python reprs
    lines = (tmp_path / "out" / "metrics.lp").read_text().count("\n")
    for row in ("predictions", "labels", "rejected", "windows of fraud", "points", "alerts fired",
                "alerts resolved", "retraining requests"):
        assert row in r.output, row
    assert f"metrics.lp: {lines:,} lines" in r.output
