"""Runs Evidently's DataDriftPreset per window; executed by the benchmark in Evidently's own virtualenv.

    <venv>/bin/python simulations/evidently_runner.py REFERENCE.parquet CURRENT.parquet OUT.json

``CURRENT`` has a ``_w`` column (window index). Writes ``{"flags": {column: [windows]}, "seconds": s}``:
the windows in which Evidently's per-column drift verdict was positive (a p-value method drifts when
``p < threshold``, a distance when ``value >= threshold``: Evidently's own rules and defaults). Only the
standard library, pandas and evidently are imported: this file runs outside Driftline's environment.
"""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> None:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    ref_path, cur_path, out_path = argv
    reference = pd.read_parquet(ref_path)
    current = pd.read_parquet(cur_path)
    columns = [c for c in reference.columns if c != "_w"]
    flags: dict[str, list[int]] = {c: [] for c in columns}
    t0 = time.perf_counter()
    for w, frame in current.groupby("_w"):
        result = Report([DataDriftPreset()]).run(frame[columns], reference[columns]).dict()
        for metric in result["metrics"]:
            cfg = metric.get("config", {})
            column, value = cfg.get("column"), metric.get("value")
            if column not in flags or not isinstance(value, int | float):
                continue
            threshold = float(cfg.get("threshold", 0.1))
            method = str(cfg.get("method", ""))
            drifted = value < threshold if "p_value" in method else value >= threshold
            if drifted:
                flags[column].append(int(w))
    with open(out_path, "w") as fh:
        json.dump({"flags": flags, "seconds": time.perf_counter() - t0}, fh)


if __name__ == "__main__":
    main(sys.argv[1:])
