"""Tumbling and hopping event-time windows, and the watermark that closes them. Pure time maths.

A window is ``[start, start + size)`` with ``start`` a multiple of ``hop`` (tumbling: ``hop == size``).
The watermark of a stream is ``max event time seen − allowed lateness``; a window closes when the
watermark reaches its end — not when the next event arrives (faust #250). An event whose every window
is already closed is *late*: it is counted in data quality, never silently dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from monitor.types import WindowRange


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """Window geometry in seconds.

    >>> w = WindowSpec(size=300.0, hop=60.0)
    >>> [r.start for r in w.windows_of(610.0)]
    [360.0, 420.0, 480.0, 540.0, 600.0]
    >>> w.last_end(610.0)
    900.0
    >>> WindowSpec(300.0).windows_of(610.0)
    [WindowRange(start=600.0, end=900.0)]
    """

    size: float
    hop: float | None = None

    def __post_init__(self) -> None:
        if not self.size > 0:
            raise ValueError(f"window size must be > 0, got {self.size}")
        if self.hop is not None and not 0 < self.hop <= self.size:
            raise ValueError(f"hop must be in (0, size], got {self.hop} for size {self.size}")

    @property
    def step(self) -> float:
        return self.hop if self.hop is not None else self.size

    @property
    def per_event(self) -> int:
        """How many windows contain each event."""
        return math.ceil(self.size / self.step - 1e-9)

    def windows_of(self, ts: float) -> list[WindowRange]:
        """Every window containing event time ``ts``, oldest first."""
        last = math.floor(ts / self.step) * self.step
        out = []
        for k in range(self.per_event - 1, -1, -1):
            start = last - k * self.step
            if start <= ts < start + self.size:
                out.append(WindowRange(start, start + self.size))
        return out

    def last_end(self, ts: float) -> float:
        """End of the last window containing ``ts``: once the watermark passes it the event is done."""
        return math.floor(ts / self.step) * self.step + self.size

    def starts(self, ts: np.ndarray) -> list[tuple[float, np.ndarray]]:
        """Vectorised assignment: ``[(window_start, row_indices), …]`` for a batch of event times."""
        out: list[tuple[float, np.ndarray]] = []
        base = np.floor(ts / self.step) * self.step
        for k in range(self.per_event):
            starts = base - k * self.step
            inside = ts < starts + self.size
            s = starts[inside]
            idx = np.flatnonzero(inside)
            if s.size == 0:
                continue
            if s.size == 1 or bool((s[1:] >= s[:-1]).all()):  # in time order (the usual case): no sort
                cut = np.flatnonzero(s[1:] != s[:-1]) + 1
                runs = [0, *cut.tolist(), s.size]
                out.extend((float(s[a]), idx[a:b]) for a, b in pairwise(runs))
                continue
            uniq, inverse = np.unique(s, return_inverse=True)
            order = np.argsort(inverse, kind="stable")
            bounds = np.searchsorted(inverse[order], np.arange(len(uniq) + 1))
            for j, start in enumerate(uniq):
                out.append((float(start), idx[order[bounds[j]:bounds[j + 1]]]))
        return out


def watermark(max_event_time: float | None, allowed_lateness: float) -> float | None:
    """``max event time − allowed lateness`` (None before any event).

    >>> watermark(1000.0, 60.0)
    940.0
    """
    return None if max_event_time is None else max_event_time - allowed_lateness


def idle_watermark(
    event_watermark: float | None,
    last_event_wall: float | None,
    now: float | None,
    idle_timeout: float,
) -> float | None:
    """Advance a watermark by wall-clock time while a stream is idle, so windows close when traffic stops.

    After ``idle_timeout`` seconds of wall time with no event, the watermark moves forward with the wall
    clock (from where event time stood at the last event). Event time is never assumed to equal wall time,
    so replaying a backlog is unaffected: only the *idle* stretch is extrapolated.

    >>> idle_watermark(100.0, 1_000.0, 1_010.0, 30.0)  # idle 10 s: not yet
    100.0
    >>> idle_watermark(100.0, 1_000.0, 1_100.0, 30.0)  # idle 100 s: +100 s
    200.0
    """
    if event_watermark is None or last_event_wall is None or now is None:
        return event_watermark
    idle = now - last_event_wall
    if idle <= idle_timeout:
        return event_watermark
    return event_watermark + idle
