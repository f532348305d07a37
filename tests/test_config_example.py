"""config.example.yaml names every setting and loads to exactly the defaults of monitor/config.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from monitor.config import MethodThresholds, MonitorSettings, PolicyConfig, load_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.yaml"
#: settings whose default is computed at run time: the example names them in a comment (``# key: …``)
COMMENTED = {"worker_name"}


@pytest.fixture(autouse=True)
def _no_monitor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("MONITOR_"):
            monkeypatch.delenv(name)


def _keys(model: type[BaseModel], data: dict[str, Any], where: str) -> list[str]:
    """Every field of ``model`` missing from ``data`` (nested models and dicts of models recursively)."""
    missing = []
    for name, info in model.model_fields.items():
        if name not in data:
            missing.append(f"{where}{name}")
            continue
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            missing += _keys(ann, data[name], f"{where}{name}.")
    return missing


def test_every_setting_appears_in_the_example() -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    text = EXAMPLE.read_text(encoding="utf-8")
    for name in COMMENTED:
        assert name not in data and re.search(rf"^# {name}: ", text, re.M), name
        data[name] = None
    missing = _keys(MonitorSettings, data, "")
    for method, thresholds in data["policy"]["methods"].items():
        missing += _keys(MethodThresholds, thresholds, f"policy.methods.{method}.")
    assert not missing, f"settings without an entry in config.example.yaml: {missing}"
    assert set(data["policy"]["methods"]) == set(PolicyConfig().methods)


def test_every_entry_has_a_comment() -> None:
    for i, line in enumerate(EXAMPLE.read_text(encoding="utf-8").splitlines(), 1):
        if re.match(r"^ *[a-z_0-9]+:", line):
            assert "#" in line, f"config.example.yaml line {i} has no comment: {line!r}"


def test_the_example_loads_to_the_defaults() -> None:
    loaded = load_settings(EXAMPLE).model_dump()
    defaults = MonitorSettings().model_dump()
    loaded.pop("worker_name"), defaults.pop("worker_name")
    assert loaded == defaults


def test_a_new_setting_without_an_example_fails() -> None:
    """The check above is not vacuous: a settings class with one more field is reported."""

    class Extended(MonitorSettings):
        brand_new_setting: int = 1

    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["worker_name"] = None
    assert _keys(Extended, data, "") == ["brand_new_setting"]
