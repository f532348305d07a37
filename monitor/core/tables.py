"""Reading reference tables: CSV, Parquet or JSON lines (flat rows or prediction/label events)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from monitor.lazy import lazy_module

if TYPE_CHECKING:
    import pandas as pd
else:
    pd = lazy_module("pandas")

#: model outputs: not features
OUTPUTS = ("score", "prediction", "label")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read reference rows from CSV (``.csv``/``.tsv``), Parquet (``.parquet``/``.pq``) or JSON lines.

    JSON lines (``.jsonl``/``.ndjson``/``.json``; a ``.json`` file may also hold one JSON array) may be
    flat rows or events in the shape of docs/events.md. A prediction event
    ``{"features": {...}, "prediction": ..., "score": ..., "label": ...}`` becomes one row: its features
    become columns and ``prediction``/``score``/``label`` are kept (plus ``request_id``, which
    :func:`build_profile` ignores). A label event (``label`` and ``request_id`` but neither ``features``
    nor ``prediction``) is joined onto the prediction row with the same ``request_id``; labels with no
    matching prediction are dropped.

    Raises
    ------
    ValueError
        On an unknown suffix or a line that is not a JSON object (the message names the line).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",")
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(p)
    if suffix not in (".jsonl", ".ndjson", ".json"):
        raise ValueError(f"unsupported file type {p.suffix!r}: use .csv, .parquet or .jsonl")
    raw = p.read_bytes()
    if suffix == ".json" and raw.lstrip().startswith(b"["):
        try:
            objs: list[Any] = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"{p}: invalid JSON ({exc})") from None
        numbered = list(enumerate(objs, 1))
    else:
        numbered = []
        for i, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                numbered.append((i, orjson.loads(line)))
            except orjson.JSONDecodeError as exc:
                raise ValueError(f"{p}: line {i}: invalid JSON ({exc})") from None
    rows: list[dict[str, Any]] = []
    labels: dict[str, Any] = {}
    for i, obj in numbered:
        if not isinstance(obj, dict):
            raise ValueError(f"{p}: line {i}: expected a JSON object")
        if "label" in obj and "features" not in obj and "prediction" not in obj and "request_id" in obj:
            labels[str(obj["request_id"])] = obj["label"]  # a label event: joined below
            continue
        feats = obj.get("features")
        if isinstance(feats, dict):
            keep = {k: v for k, v in obj.items() if k in OUTPUTS or k == "request_id"}
            obj = {**feats, **keep}
        rows.append(obj)
    table = pd.DataFrame(rows)
    if labels and "request_id" in table:
        joined = table["request_id"].astype(str).map(labels)
        table["label"] = table["label"].where(table["label"].notna(), joined) if "label" in table else joined
    return table
