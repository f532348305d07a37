"""Event timestamps: RFC 3339 strings or epoch numbers in seconds, milliseconds, microseconds or nanoseconds,
and the wall-clock sanity rule (``max_future_skew``, ``max_event_age``). Pure: the clock is an argument.

``timestamp_unit: auto`` (the default) reads an epoch number by its magnitude:

=================================  ============  =============================================
absolute value                     read as       dates it covers
=================================  ============  =============================================
below 10^11                        seconds       1970 – 5138
10^11 to below 10^14               milliseconds  1973-03-03 – 5138
10^14 to below 10^17               microseconds  1973-03-03 – 5138
10^17 and above                    nanoseconds   1973-03-03 onwards
=================================  ============  =============================================

So epoch seconds, Java's ``System.currentTimeMillis()``, Kafka's record timestamps (ms), microseconds and
``time.time_ns()`` are all read right for any date after March 1973; only a millisecond (or finer)
timestamp before 1973-03-03 would be misread (as seconds, and then refused as later than 2200). A fixed
unit (``s``, ``ms``, ``us``, ``ns``) reads every number in that unit. Whatever the unit, the result must lie
in 1970..2200 (anything else is a unit mistake), and a number given as a JSON string (``"1767225600"``) is
read like the number.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Literal

__all__ = ["MAX_TS", "MIN_TS", "TimestampUnit", "describe_offset", "format_ts", "parse_timestamp", "time_problem",
           "unit_divisor"]

TimestampUnit = Literal["s", "ms", "us", "ns", "auto"]
#: timestamps outside [1970, 2200) are refused whatever the unit: almost certainly a unit mistake
MIN_TS, MAX_TS = 0.0, 7_258_118_400.0
_DIVISOR = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
_UNIT_NAME = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
_NUMBER = re.compile(r"\s*-?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?\s*")


def unit_divisor(value: float, unit: TimestampUnit) -> tuple[float, str]:
    """``(divisor, unit)`` turning an epoch number in ``unit`` into seconds (``auto``: by magnitude).

    >>> unit_divisor(1767225600, "auto"), unit_divisor(1767225600123, "auto"), unit_divisor(1.7e18, "auto")
    ((1.0, 's'), (1000.0, 'ms'), (1000000000.0, 'ns'))
    """
    if unit != "auto":
        return _DIVISOR[unit], unit
    a = abs(value)
    u = "s" if a < 1e11 else "ms" if a < 1e14 else "us" if a < 1e17 else "ns"
    return _DIVISOR[u], u


def parse_timestamp(value: float | str, unit: TimestampUnit = "auto") -> float:
    """RFC 3339 string or epoch number (in ``unit``) → epoch seconds. Raises ValueError with a reason.

    >>> parse_timestamp("2026-01-01T00:00:00Z"), parse_timestamp(1767225600), parse_timestamp(1767225600000)
    (1767225600.0, 1767225600.0, 1767225600.0)
    >>> parse_timestamp(1767225600000, "s")
    Traceback (most recent call last):
    ...
    ValueError: timestamp 1.76723e+12 is outside 1970..2200 read as seconds (timestamp_unit s)
    """
    if isinstance(value, str) and _NUMBER.fullmatch(value) is None:
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"timestamp {value[:40]!r} is not RFC 3339 or an epoch number") from None
        if dt.tzinfo is None:
            raise ValueError(f"timestamp {value[:40]!r} has no time zone offset (RFC 3339 requires one)")
        ts = dt.timestamp()
        how = "as RFC 3339"
    else:
        number = float(value)
        if not math.isfinite(number):
            raise ValueError("timestamp is not a finite number")
        divisor, u = unit_divisor(number, unit)
        ts = number / divisor
        how = f"read as {_UNIT_NAME[u]} ({'by its magnitude, ' if unit == 'auto' else ''}timestamp_unit {unit})"
        if not MIN_TS <= ts < MAX_TS:
            raise ValueError(f"timestamp {number:g} is outside 1970..2200 {how}")
        return ts
    if not MIN_TS <= ts < MAX_TS:
        raise ValueError(f"timestamp {value[:40]!r} is outside 1970..2200 {how}")
    return ts


def format_ts(ts: float) -> str:
    """Epoch seconds as an RFC 3339 UTC second, for messages.

    >>> format_ts(4102444800.0)
    '2100-01-01T00:00:00Z'
    """
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def describe_offset(seconds: float) -> str:
    """A human length for an offset: ``'2,330 days'``, ``'5.0 hours'``, ``'12 minutes'``, ``'42 s'``.

    >>> describe_offset(2330 * 86400 + 5), describe_offset(5 * 3600), describe_offset(720), describe_offset(42)
    ('2,330 days', '5.0 hours', '12 minutes', '42 s')
    """
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:,.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} hours"
    if seconds >= 120:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.0f} s"


def time_problem(ts: float, now: float, max_future_skew_s: float | None, max_event_age_s: float | None,
                 skew_text: str = "", age_text: str = "") -> str | None:
    """Why event time ``ts`` is not sane against the wall clock ``now``, or ``None``.

    >>> time_problem(4102444800.0, 3901132800.0, 600, None, "10m")
    'timestamp 2100-01-01T00:00:00Z is 2,330 days ahead of the wall clock (max_future_skew 10m)'
    >>> time_problem(3901132800.0, 3901132800.0, 600, None) is None
    True
    """
    if max_future_skew_s is not None and ts > now + max_future_skew_s:
        return (f"timestamp {format_ts(ts)} is {describe_offset(ts - now)} ahead of the wall clock "
                f"(max_future_skew {skew_text or f'{max_future_skew_s:g}s'})")
    if max_event_age_s is not None and ts < now - max_event_age_s:
        return (f"timestamp {format_ts(ts)} is {describe_offset(now - ts)} behind the wall clock "
                f"(max_event_age {age_text or f'{max_event_age_s:g}s'})")
    return None
