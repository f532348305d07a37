"""When a segment's alert may page: the guard :meth:`Policy.evaluate <monitor.core.policy.Policy.evaluate>`
applies to each segment-window's conditions.

A segment-window is small and one of many, so its conditions flag only when (1) it has at least
``min_window_events`` events, (2) its value clears the threshold with 95 % one-sided confidence at its size —
error, missing and unseen rates and accuracy by :data:`Z_95` binomial standard errors (drift was decided with
noise margins already, :func:`monitor.segments.noise_margins`) — and (3) the whole model does not raise the
same alert (alert name, feature, metric) at the same or a higher severity in the window: a change everywhere
pages once, for the model. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.core.policy import WindowFacts, _Condition

RANK: dict[str | None, int] = {None: 0, "warning": 1, "critical": 2}
#: one-sided 95 %: a segment's rate or accuracy must clear its threshold by this many standard errors
Z_95 = 1.645
SEVERITIES = ("warning", "critical")


def guard(conds: Sequence[_Condition], model_conds: Sequence[_Condition], f: WindowFacts,
          opened: Collection[tuple[str, str, str]], min_events: int) -> list[_Condition]:
    """``conds`` (the conditions of segment-window ``f``) labelled ``segment``, their severities lowered by the
    rules of the module docstring; ``model_conds`` are the whole model's conditions of the window, ``opened``
    the (alert name, feature, metric) of the segment's open alerts. A clean condition without an open alert
    is left out (it cannot change anything)."""
    covered = {(c.alertname, c.feature, c.metric): RANK[c.severity] for c in model_conds if c.severity}
    extra = (("segment", f.segment),)
    out = []
    for c in conds:
        severity = c.severity
        if severity is not None:
            severity = None if f.events < min_events else min(severity, confident(f, c), key=lambda v: RANK[v])
            if severity is not None and covered.get((c.alertname, c.feature, c.metric), 0) >= RANK[severity]:
                severity = None
        if severity is not None or (c.alertname, c.feature, c.metric) in opened:
            out.append(replace(c, severity=severity, extra=extra))
    return out


def confident(f: WindowFacts, c: _Condition) -> str | None:
    """The highest severity whose threshold ``c``'s value clears by :data:`Z_95` binomial standard errors
    (at the threshold) for the segment-window's size; conditions without a rate (drift, latency) keep theirs.

    >>> from monitor.core.policy import WindowFacts, _Condition
    >>> from monitor.types import WindowRange
    >>> cond = _Condition("ErrorRate", "", "error_rate", "warning", {"warning": (0.06, 0.05), "critical": (0.06, 0.2)},
    ...                   "", "")
    >>> f = WindowFacts("m", None, WindowRange(0, 1), 200, (), None, 12, 0.06, False, False, None, 0, None, {}, {},
    ...                 None, {})
    >>> confident(f, cond) is None  # 12 errors in 200 events: not surely over 5 %
    True
    >>> confident(f, replace(cond, levels={"warning": (0.09, 0.05), "critical": (0.09, 0.2)}))  # 18 in 200: surely
    'warning'
    """
    lower_is_worse = c.alertname in ("AccuracyDrop", "EstimatedAccuracyDrop")
    if not (lower_is_worse or c.alertname in ("ErrorRate", "DataQuality")):
        return c.severity
    n = f.accuracy_n if c.alertname == "AccuracyDrop" else f.events
    best: str | None = None
    for level in SEVERITIES:
        if level not in c.levels:
            continue
        value, threshold = c.levels[level]
        p = min(max(threshold, 1e-9), 1 - 1e-9)
        margin = Z_95 * math.sqrt(p * (1 - p) / max(n, 1))
        if (value + margin <= threshold) if lower_is_worse else (value - margin >= threshold):
            best = level
    return best
