"""The ``monitor`` command tree as typer builds it: command paths and the options each accepts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer.main

from monitor.cli import app


def commands() -> Iterator[tuple[tuple[str, ...], Any]]:
    """``(path, command)`` for the root and every (sub)command, e.g. ``(("dashboards", "push"), cmd)``."""

    def walk(cmd: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
        yield path, cmd
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            yield from walk(sub, (*path, name))

    yield from walk(typer.main.get_command(app), ())


def options(cmd: Any) -> set[str]:
    """Every option string a command accepts (``--out``, ``-c``, ``--help``)."""
    out = {"--help"}
    for p in cmd.params:
        if p.param_type_name == "option":
            out.update(p.opts)
            out.update(p.secondary_opts)
    return out
