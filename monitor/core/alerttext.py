"""Alert wording and links: the parts of a page an on-call engineer reads first. Pure.

* :func:`deep_link` — the ``generatorURL``: the dashboard opened on the alert's window (``from``/``to``
  in epoch milliseconds, a few windows around it) with its labels as dashboard variables
  (``var-model``, ``var-window``, ``var-model_version``, ``var-feature``, ``var-segment``,
  ``var-baseline``).
* :func:`window_text` — the window in RFC 3339 with its length and event count.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from monitor.config import format_duration
from monitor.types import WindowRange, rfc3339

#: the link shows this many windows before the first window of the alert …
LOOKBACK_WINDOWS = 3
#: … and this many after the last one
LOOKAHEAD_WINDOWS = 2
#: alert labels passed to the dashboard as ``var-<label>``, in this order (model and window come first)
LINK_LABELS = ("model_version", "feature", "segment", "baseline")


def deep_link(base_url: str, labels: Mapping[str, str], window_s: float, first_start: float,
              last_end: float) -> str:
    """Dashboard URL for an alert spanning ``[first_start, last_end)`` (epoch seconds).

    ``from``/``to`` cover :data:`LOOKBACK_WINDOWS` windows before and :data:`LOOKAHEAD_WINDOWS` after;
    an empty ``base_url`` gives an empty link.

    >>> deep_link("http://g/d/driftline-drift", {"model": "fraud", "feature": "amount", "severity": "warning"},
    ...           300.0, 1_767_226_800.0, 1_767_227_100.0)
    'http://g/d/driftline-drift?from=1767225900000&to=1767227700000&var-model=fraud&var-window=5m&var-feature=amount'
    """
    if not base_url:
        return ""
    params: list[tuple[str, str]] = [
        ("from", str(round((first_start - LOOKBACK_WINDOWS * window_s) * 1000))),
        ("to", str(round((last_end + LOOKAHEAD_WINDOWS * window_s) * 1000))),
        ("var-model", labels.get("model", "")), ("var-window", format_duration(window_s)),
    ]
    params += [(f"var-{key}", labels[key]) for key in LINK_LABELS if labels.get(key)]
    return base_url + ("&" if "?" in base_url else "?") + urlencode(params)


def window_text(window: WindowRange, events: int, segment: str = "") -> str:
    """``"2026-01-01T00:20:00.000Z – 2026-01-01T00:25:00.000Z (5m window, 3,012 events)"``; with a
    ``segment`` the events are the segment's.

    >>> window_text(WindowRange(0.0, 300.0), 3012)
    '1970-01-01T00:00:00.000Z – 1970-01-01T00:05:00.000Z (5m window, 3,012 events)'
    >>> window_text(WindowRange(0.0, 300.0), 151, "country=PL")[-37:]
    '(5m window, 151 events in country=PL)'
    """
    where = f" in {segment}" if segment else ""
    return (f"{rfc3339(window.start)} – {rfc3339(window.end)} "
            f"({format_duration(window.end - window.start)} window, {events:,} events{where})")


def scope(labels: Mapping[str, str]) -> str:
    """The model (and segment, when the alert has one) a summary starts with.

    >>> scope({"model": "fraud"}), scope({"model": "fraud", "segment": "country=PL"})
    ('fraud', 'fraud [country=PL]')
    """
    model = labels.get("model", "")
    return f"{model} [{labels['segment']}]" if labels.get("segment") else model
