"""The docs are true: every ``monitor`` command and flag, every ``MONITOR_*`` variable, every setting and
every measurement/field the README and docs/ name exists — in the typer CLI, in ``MonitorSettings`` and in
what the pipeline writes (docs/measurements.md both ways). Each checker returns its problems as
sentences; a negative check feeds it a doc that names what does not exist and expects it to complain."""

from __future__ import annotations

import os
import re
import shlex
import typing
from collections import defaultdict
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import MonitorSettings, load_settings
from tests.clitree import commands, options

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", ROOT / "simulations" / "README.md", *(ROOT / "docs").glob("*.md")])
MEASUREMENTS_MD = ROOT / "docs" / "measurements.md"

_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
_SPAN = re.compile(r"`([^`\n]+)`")


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def code_fragments(text: str) -> list[str]:
    """Shell-ish fragments: each line of a fenced block (continuation lines joined) and each inline code span."""
    out: list[str] = []
    for block in _FENCE.findall(text):
        out += block.replace("\\\n", " ").splitlines()
    out += _SPAN.findall(_FENCE.sub("", text))
    return out


# ------------------------------------------------------------------------------------------------ commands

_TREE = {path: cmd for path, cmd in commands()}
_ALL_OPTIONS = set().union(*(options(c) for c in _TREE.values()))
_MONITOR = re.compile(r"(?:^|(?<=[\s`$(]))monitor((?:\s+[^\s#]+)*)")


def check_commands(text: str, where: str) -> list[str]:
    """``monitor <command> [--flag …]`` in code: the command exists and takes every flag shown."""
    problems = []
    for frag in code_fragments(text):
        frag = frag.split(" # ")[0].replace("\\|", " ")
        for m in _MONITOR.finditer(frag):
            try:
                words = shlex.split(m.group(1).strip())
            except ValueError:
                words = m.group(1).split()
            if not words or words[0].startswith("."):
                continue
            path: tuple[str, ...] = ()
            while words and (*path, words[0]) in _TREE:
                path = (*path, words.pop(0))
            if not path and not words[0].startswith("-"):
                problems.append(f"{where}: `monitor {words[0]}`: no such command (in {frag.strip()!r})")
                continue
            accepted = options(_TREE[path])
            for w in words:
                flag = re.sub(r"[\]\[)(,.…]+$", "", w.strip("[]()")).split("=")[0]
                if re.fullmatch(r"--?[a-z][a-z0-9-]*", flag) and flag not in accepted:
                    problems.append(f"{where}: `monitor {' '.join(path)}` has no option {flag} "
                                    f"(in {frag.strip()!r})")
    return problems


def _example_flags() -> set[str]:
    """Options of the example scripts under examples/ (their argparse parsers, read from the source)."""
    out: set[str] = set()
    for script in (ROOT / "examples").glob("*.py"):
        out |= set(re.findall(r"add_argument\(\s*\"(--[a-z][a-z0-9-]*)\"", script.read_text(encoding="utf-8")))
    return out


#: flags of other tools that docs show on their own, outside a `monitor …` command line
OTHER_TOOLS_FLAGS = {"--headless", "--no-sandbox", "--doctest-modules", "--no-deps", "--bootstrap-server",
                     "--topic", "--from-beginning"} | _example_flags()


def check_lone_flags(text: str, where: str) -> list[str]:
    """A code span that is just a flag (``--reference``) names an option some ``monitor`` command takes."""
    problems = []
    for span in _SPAN.findall(_FENCE.sub("", text)):
        m = re.fullmatch(r"(--[a-z][a-z0-9-]*)(?:[ =]\S+)?", span.strip())
        if m and m.group(1) not in _ALL_OPTIONS and m.group(1) not in OTHER_TOOLS_FLAGS:
            problems.append(f"{where}: `{span}`: no `monitor` command has this option")
    return problems


# ------------------------------------------------------------------------------------------------ settings


def _setting(path: list[str]) -> bool:
    model: type[BaseModel] = MonitorSettings
    for i, name in enumerate(path):
        field = model.model_fields.get(name)
        if field is None:
            return False
        ann = field.annotation
        if i < len(path) - 1:
            if typing.get_origin(ann) is dict:  # a mapping setting with fixed keys (``fields``): a Literal key
                keys = typing.get_args(typing.get_args(ann)[0])
                return i == len(path) - 2 and path[i + 1] in keys
            if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
                return False
            model = ann
    return True


def check_env_vars(text: str, where: str) -> list[str]:
    """``MONITOR_X`` is setting ``x`` (``MONITOR_A__B`` is ``a.b``); ``MONITOR_X_FILE`` reads secret ``x``."""
    problems = []
    for var in sorted(set(re.findall(r"\bMONITOR_[A-Z0-9_]*[A-Z0-9]\b", text))):
        name = var.removeprefix("MONITOR_")
        if name == "CONFIG":
            continue
        if name.endswith("_FILE") and _setting([name.removesuffix("_FILE").lower()]):
            continue  # checked for real in test_secret_file_variables_work
        if not _setting(name.lower().split("__")):
            problems.append(f"{where}: {var} is not a setting of MonitorSettings")
    return problems


def check_readme_setting_keys(text: str, where: str) -> list[str]:
    """First column of the README configuration table: every key (or glob like ``sasl_*``) is a setting."""
    problems = []
    settings = set(MonitorSettings.model_fields)
    for line in text.splitlines():
        cells = line.split("|")
        if len(cells) < 4 or not cells[1].strip().startswith("`"):
            continue
        for key in _SPAN.findall(cells[1]):
            if key.startswith(("MONITOR_", "monitor", "_")) or not re.fullmatch(r"[a-z_.*]+", key):
                continue
            if key.startswith("policy."):
                ok = key == "policy.*" or _setting(key.split("."))
            elif "*" in key:
                ok = any(re.fullmatch(key.replace("*", ".*"), s) for s in settings)
            else:
                ok = key in settings
            if not ok:
                problems.append(f"{where}: configuration key `{key}` is not a setting")
    return problems


# ------------------------------------------------------------------------------------------------ measurements


def documented_measurements(text: str) -> dict[str, tuple[set[str], set[str]]]:
    """measurement → (tags, fields) from the table of docs/measurements.md."""
    out = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) < 5 or not re.fullmatch(r"`[a-z_]+`", cells[1]):
            continue
        tags = {t.strip() for t in cells[2].split(",") if t.strip()}
        fields = set(re.findall(r"`([a-z][a-z_0-9]*)`", cells[3]))
        out[cells[1].strip("`")] = (tags, fields)
    return out


def check_measurement_mentions(text: str, where: str, known: dict[str, tuple[set[str], set[str]]]) -> list[str]:
    """``measurement `x` ``, ``measurements `a`, `b` ``, ``(`m`, … field `f`)`` and ``m.f`` name documented things."""
    problems = []
    flat = text.replace("\n", " ")
    for m in re.finditer(r"measurements?((?:\s*(?:,|and|plus)?\s*`[a-z_]+`)+)", flat, re.I):
        for name in re.findall(r"`([a-z_]+)`", m.group(1)):
            if name not in known:
                problems.append(f"{where}: measurement `{name}` is not in docs/measurements.md")
    for m in re.finditer(r"`([a-z_]+)`[^.;()`]{0,40}(?:`[^`]*`[^.;()`]{0,40})?fields? `([a-z_]+)`", flat):
        meas, field = m.groups()
        if meas in known and field not in known[meas][1]:
            problems.append(f"{where}: `{meas}` has no field `{field}` in docs/measurements.md")
    for meas, field in re.findall(r"`([a-z_]+)\.([a-z_0-9]+)`", flat):
        if meas in known and field not in known[meas][1] and field not in ("jsonl", "json", "lp", "md"):
            problems.append(f"{where}: `{meas}.{field}`: no such field in docs/measurements.md")
    return problems


# ------------------------------------------------------------------------------------------------ the tests


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_commands_and_flags_in_the_docs_exist(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    assert check_commands(text, _rel(doc)) + check_lone_flags(text, _rel(doc)) == []


@pytest.mark.parametrize("doc", [*DOCS, ROOT / "config.example.yaml", ROOT / "docker-compose.yml",
                                 ROOT / ".env.example"], ids=_rel)
def test_monitor_variables_in_the_docs_are_settings(doc: Path) -> None:
    assert check_env_vars(doc.read_text(encoding="utf-8"), _rel(doc)) == []


def test_readme_configuration_keys_are_settings() -> None:
    assert check_readme_setting_keys((ROOT / "README.md").read_text(encoding="utf-8"), "README.md") == []


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_measurements_named_in_the_docs_are_documented(doc: Path) -> None:
    known = documented_measurements(MEASUREMENTS_MD.read_text(encoding="utf-8"))
    assert check_measurement_mentions(doc.read_text(encoding="utf-8"), _rel(doc), known) == []


def test_secret_file_variables_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``MONITOR_*_FILE`` the docs name really reads the secret from the file."""
    named = set()
    for doc in DOCS:
        named |= set(re.findall(r"\bMONITOR_([A-Z_]+)_FILE\b", doc.read_text(encoding="utf-8")))
    assert named, "the README names the secret-file variables"
    for var in list(os.environ):
        if var.startswith("MONITOR_"):
            monkeypatch.delenv(var)
    for name in sorted(named):
        secret = tmp_path / name
        secret.write_text(f"s3cret-{name}\n", encoding="utf-8")
        monkeypatch.setenv(f"MONITOR_{name}_FILE", str(secret))
        assert getattr(load_settings(), name.lower()).get_secret_value() == f"s3cret-{name}", name
        monkeypatch.delenv(f"MONITOR_{name}_FILE")


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[set[str], set[str]]]:
    """measurement → (tags, fields) of everything a replay of the `mixed` scenario writes (with a trailing
    baseline, so the optional ``baseline`` tag is written too), and one of `segment_shift` with segments on
    (segment points and a segment's alerts)."""
    from monitor.lineprotocol import read_lp
    from monitor.scenarios import write_reference_table, write_scenario

    d = tmp_path_factory.mktemp("docs-replay")
    events, _ = write_scenario("mixed", d / "mixed.jsonl", seed=2, windows=12, window_s=60.0, rate=8.0)
    table = write_reference_table("mixed", d, rows=5000)["fraud"]
    r = CliRunner().invoke(app, ["reference", "build", "--model", "fraud", "--data", str(table),
                                 "--out", str(d / "fraud.json")])
    assert r.exit_code == 0, r.output
    config = d / "config.yaml"  # the windows before amount shifts (window 4) form a trailing baseline
    config.write_text("baselines: {trailing: 10m, block: 1m, min_events: 100}\n")
    r = CliRunner().invoke(app, ["replay", str(events), "--out", str(d / "out"), "--window", "1m", "--config",
                                 str(config), "--reference", str(d / "fraud.json")])
    assert r.exit_code == 0, r.output
    seg_events, _ = write_scenario("segment_shift", d / "seg.jsonl", seed=2, windows=6, window_s=60.0, rate=20.0)
    table = write_reference_table("segment_shift", d / "refs", rows=20_000, seed=2)["fraud"]
    r = CliRunner().invoke(app, ["reference", "build", "--model", "fraud", "--data", str(table), "--out",
                                 str(d / "seg.json"), "--segments", "country,device"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["replay", str(seg_events), "--out", str(d / "seg-out"), "--window", "1m",
                                 "--reference", str(d / "seg.json")], env={"MONITOR_SEGMENTS": "country,device"})
    assert r.exit_code == 0, r.output
    seen: dict[str, tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    for p in [*read_lp(d / "out" / "metrics.lp"), *read_lp(d / "seg-out" / "metrics.lp")]:
        seen[p.measurement][0].update(k for k, _ in p.tags)
        seen[p.measurement][1].update(k for k, _ in p.fields)
    assert "segment" in seen["alerts"][0], "the segment_shift replay pages for country=PL"
    return dict(seen)


def test_measurements_md_matches_what_the_pipeline_writes(written: dict[str, tuple[set[str], set[str]]]) -> None:
    documented = documented_measurements(MEASUREMENTS_MD.read_text(encoding="utf-8"))
    common_tags = {"window", "model_version"}  # on every point (the page says so above its table)
    for name, (tags, fields) in written.items():
        assert name in documented, f"{name} is written but not in docs/measurements.md"
        doc_tags, doc_fields = documented[name]
        assert fields <= doc_fields, f"{name}: fields written but not documented: {fields - doc_fields}"
        assert tags - common_tags <= doc_tags, f"{name}: tags written but not documented: {tags - doc_tags}"
    for name, (doc_tags, doc_fields) in documented.items():
        if name == "driftline_worker":
            continue  # the streaming worker's own point: test_worker_measurement_fields_are_in_the_code
        assert name in written, f"docs/measurements.md lists {name}, which a replay never writes"
        tags, fields = written[name]
        assert doc_fields <= fields, f"{name}: documented fields never written: {doc_fields - fields}"
        assert doc_tags <= tags, f"{name}: documented tags never written: {doc_tags - tags}"


def test_worker_measurement_fields_are_in_the_code() -> None:
    documented = documented_measurements(MEASUREMENTS_MD.read_text(encoding="utf-8"))
    tags, fields = documented["driftline_worker"]
    sources = [p.read_text(encoding="utf-8") for p in (ROOT / "monitor").rglob("*.py")]
    writer = [s for s in sources if '"driftline_worker"' in s]
    assert writer, "no module writes the driftline_worker measurement"
    for name in sorted(tags | fields):
        assert any(f'"{name}"' in s for s in writer), f"driftline_worker: {name} is documented, not written"


def test_the_checks_catch_what_does_not_exist() -> None:
    """Negative check: each checker complains about a doc naming things that do not exist."""
    bad = ("Run `monitor replay FILE --no-such-flag` or\n\n```bash\nmonitor simulate mixed --out x.jsonl --colour red\n"
           "monitor frobnicate now\n```\n\nWithout `--reference-table`, … `MONITOR_WINDOW_SIZE=5m`, "
           "`MONITOR_POLICY__NO_SUCH=1`. Measurements `drift`, `drift_score` …; `latency.p42`; "
           "(`data_quality`, feature `__event__`, field `bogus`).\n\n| `MONITOR_BROKER` / `brokers` | x | y |\n")
    problems = check_commands(bad, "bad.md") + check_lone_flags(bad, "bad.md")
    assert any("--no-such-flag" in p for p in problems), problems
    assert any("--colour" in p for p in problems), problems
    assert any("frobnicate" in p for p in problems), problems
    assert any("--reference-table" in p for p in problems), problems
    env = check_env_vars(bad, "bad.md")
    assert any("MONITOR_WINDOW_SIZE" in p for p in env) and any("MONITOR_POLICY__NO_SUCH" in p for p in env), env
    assert check_readme_setting_keys(bad, "bad.md") == ["bad.md: configuration key `brokers` is not a setting"]
    known = documented_measurements(MEASUREMENTS_MD.read_text(encoding="utf-8"))
    meas = check_measurement_mentions(bad, "bad.md", known)
    assert any("drift_score" in p for p in meas) and any("p42" in p for p in meas), meas
    assert any("bogus" in p for p in meas), meas
    good = "`monitor replay FILE --reference REF --window 5m`, `MONITOR_POLICY__RETRAIN_COOLDOWN`, `latency.p95`"
    assert check_commands(good, "g") + check_env_vars(good, "g") + check_measurement_mentions(good, "g", known) == []
