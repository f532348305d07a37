"""The streaming worker does not load pandas (~60 MB resident) unless it builds a profile."""

from __future__ import annotations

import subprocess
import sys


def test_worker_imports_without_pandas() -> None:
    code = ("import sys, monitor.adapters.worker, monitor.cli, monitor.owner, monitor.source; "
            "print(sorted(m for m in ('pandas', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_building_a_profile_loads_pandas_on_first_use() -> None:
    code = ("import sys; from monitor.core.reference import build_profile; from monitor.core import tables; "
            "import pandas; p = build_profile('m', pandas.DataFrame({'x': [1.0, 2.0, 3.0]})); "
            "print(type(tables.pd.DataFrame).__name__, sorted(p.numeric))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["type", "['x']"]
