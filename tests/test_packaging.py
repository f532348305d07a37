"""What ``pip install driftline`` puts on a machine: the wheel holds the ``monitor`` package only, with an
SPDX licence, and the dependencies whose private internals Driftline uses are inside the verified range."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

#: packages whose private internals Driftline relies on: where, and a probe that the internals are there
PRIVATE_INTERNALS = {
    "faust-streaming": "monitor/adapters/batching.py (the consumer's fetch loop and ack bookkeeping)",
    "river": "monitor/core/aggregate.py and monitor/wire.py (ConfusionMatrix cells: merged and sent cell by cell)",
    "scipy": "monitor/core/drift/ks.py (scipy.stats._stats_py._attempt_exact_2kssamp)",
}


def _requirement(name: str) -> Requirement:
    for text in PYPROJECT["project"]["dependencies"]:
        req = Requirement(text)
        if req.name == name:
            return req
    raise AssertionError(f"{name} is not a dependency in pyproject.toml")


def test_wheel_contains_only_the_monitor_package(tmp_path: Path) -> None:
    # a copy of what the Dockerfile copies too (a build writes build/ and *.egg-info into its source tree);
    # build isolation installs the declared backend (setuptools>=77) into a temporary environment
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "monitor", src / "monitor", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "simulations", src / "simulations", ignore=shutil.ignore_patterns("__pycache__"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(tmp_path)],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    wheels = list(tmp_path.glob("driftline-*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    top = {n.split("/")[0] for n in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"monitor"}, f"the wheel installs more than `monitor`: {sorted(top - dist_info)}"
    assert "monitor/scenarios/__init__.py" in names  # `monitor simulate` works from an installed wheel
    assert "monitor/py.typed" in names
    assert not any(n.startswith(("simulations/", "tests/")) for n in names)
    assert "License-Expression: Apache-2.0" in meta
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_licence_is_an_spdx_expression() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"  # a TOML table is deprecated by setuptools
    backend = [Requirement(r) for r in PYPROJECT["build-system"]["requires"]]
    setuptools = next(r for r in backend if r.name == "setuptools")
    assert not setuptools.specifier.contains("76.9"), "an SPDX `license` string needs setuptools>=77"


@pytest.mark.parametrize("name", sorted(PRIVATE_INTERNALS))
def test_private_internals_are_used_only_within_the_verified_range(name: str) -> None:
    req = _requirement(name)
    assert any(s.operator in ("<", "<=", "~=", "==") for s in req.specifier), (
        f"{name}: Driftline uses its private internals in {PRIVATE_INTERNALS[name]}; pyproject.toml must give "
        f"an upper bound (it says {req})")
    installed = Version(metadata.version(name))
    if not req.specifier.contains(installed, prereleases=True):
        pytest.fail(f"{name} {installed} is installed, outside the range verified for Driftline ({req.specifier}): "
                    f"{PRIVATE_INTERNALS[name]} uses its private internals. Re-run the tests against it "
                    f"(tests/test_wire.py, tests/adapters/test_batching.py, tests/core/test_drift.py, "
                    f"the integration tests) and widen the bound in pyproject.toml only if they pass.")


def test_the_private_internals_exist_in_the_installed_versions() -> None:
    """A probe per package, so a release that renames an internal fails here with the package named, not
    deep inside a worker."""
    import inspect
    import re

    from faust.transport import consumer as faust_consumer
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer

    missing = [f"faust-streaming: Consumer.{a}" for a in ("_wait_next_records", "_new_offset", "_drain_messages",
                                                          "_to_message", "perform_seek", "_new_consumer_thread")
               if not hasattr(Consumer, a)]
    if not hasattr(AIOKafkaConsumerThread, "_create_worker_consumer"):
        missing.append("faust-streaming: AIOKafkaConsumerThread._create_worker_consumer")
    # instance state set in faust's Consumer.__init__ (a consumer needs a running app to construct)
    assigned = set(re.findall(r"self\.(_[a-z_]+)\s*[:=]", inspect.getsource(faust_consumer.Consumer.__init__)))
    missing += [f"faust-streaming: Consumer().{a}" for a in ("_read_offset", "_acked", "_acked_index",
                                                             "_committed_offset") if a not in assigned]
    from river.metrics import ConfusionMatrix

    cm = ConfusionMatrix()
    cm.update(1, 0)
    missing += [f"river: ConfusionMatrix.{a}" for a in ("data", "total_weight") if not hasattr(cm, a)]
    from scipy.stats import _stats_py

    if not hasattr(_stats_py, "_attempt_exact_2kssamp"):
        missing.append("scipy: scipy.stats._stats_py._attempt_exact_2kssamp")
    assert not missing, "private internals Driftline uses are gone: " + ", ".join(missing)
