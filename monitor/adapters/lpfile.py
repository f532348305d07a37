"""A MetricSink that writes InfluxDB line protocol to a local file (replay, demo, no InfluxDB configured)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from monitor.types import MetricPoint


class LineProtocolFileSink:
    """Keeps one line per series and timestamp (a rewrite of a window's point replaces the old line, as
    InfluxDB would) and rewrites the file atomically on :meth:`flush`."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lines: dict[tuple[str, tuple[tuple[str, str], ...], int], str] = {}
        self._dirty = False
        self.points_written = 0

    def add(self, points: Sequence[MetricPoint]) -> None:
        """Remember ``points``; a point with the series key of an earlier one replaces it in place."""
        for p in points:
            self._lines[p.series_key()] = p.to_line()
        self._dirty = self._dirty or bool(points)

    @property
    def buffered(self) -> int:
        """Lines not yet on disk (the whole file is rewritten, so all of them while dirty)."""
        return len(self._lines) if self._dirty else 0

    @property
    def backpressure(self) -> bool:
        """A local file never pushes back."""
        return False

    def flush(self) -> None:
        """Rewrite the file atomically (temp file, fsync, rename); returns when it is durable."""
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for line in self._lines.values():
                fh.write(line)
                fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self.points_written = len(self._lines)
        self._dirty = False

    def close(self) -> None:
        """Flush what is left."""
        self.flush()
