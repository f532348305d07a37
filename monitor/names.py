"""Which names can reach the metrics store: one rule for events, reference profiles, configuration and
:meth:`monitor.types.MetricPoint.to_line`.

A model, model version or feature name becomes an InfluxDB tag value. The line protocol cannot carry a
newline or carriage return in a tag at all, and servers disagree on what a backslash means before a
backslash, a comma, an equals sign or a space (InfluxDB 1.x/2.x keep ``\\\\`` as two backslashes,
VictoriaMetrics reads it as one; a tag ending in ``\\`` escapes the separator after it). So a name is
refused when it contains

* a control character: C0 (``\\x00``–``\\x1f``: NUL, tab, LF, CR, ...), DEL, C1 (``\\x80``–``\\x9f``), or
  the Unicode line/paragraph separators U+2028/U+2029 (``str.splitlines`` splits on several of these);
* a backslash followed by another backslash, a comma, an equals sign or a space, or at its end.

Everything else (spaces, commas, ``=``, quotes, ``#``, any other Unicode) is escaped and read back
exactly (tests/integration/test_hostile_names.py writes such names to a real InfluxDB 1.6.7).
"""

from __future__ import annotations

import re

__all__ = ["check_name", "control_problem", "name_problem"]

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_BACKSLASH = re.compile(r"\\(?=[\\,= ]|\Z)")


def name_problem(name: str) -> str | None:
    r"""Why ``name`` cannot be written as a tag, or ``None`` when it can.

    >>> name_problem("fraud model, v=2"), name_problem("C:\\models\\fraud")
    (None, None)
    >>> name_problem("a\nevil,model=x value=1 0")
    'contains a control character (U+000A)'
    >>> name_problem("trailing\\")
    'has a backslash at its end or before a backslash, comma, equals sign or space'
    """
    m = _CONTROL.search(name)
    if m is not None:
        return f"contains a control character (U+{ord(m.group()):04X})"
    if "\\" in name and _BACKSLASH.search(name) is not None:
        return "has a backslash at its end or before a backslash, comma, equals sign or space"
    return None


def control_problem(text: str) -> str | None:
    """Why ``text`` (a request id: never a tag) cannot be accepted: only the control-character rule.

    >>> control_problem("req\\x00"), control_problem("a\\\\")
    ('contains a control character (U+0000)', None)
    """
    m = _CONTROL.search(text)
    return None if m is None else f"contains a control character (U+{ord(m.group()):04X})"


def check_name(name: str, what: str) -> str:
    r"""``name`` itself, or :class:`ValueError` naming ``what`` it is (e.g. ``"feature name"``).

    >>> check_name("amount", "feature name")
    'amount'
    >>> check_name("a\r", "model name")
    Traceback (most recent call last):
    ...
    ValueError: model name 'a\r' contains a control character (U+000D)
    """
    problem = name_problem(name)
    if problem is not None:
        raise ValueError(f"{what} {name[:80]!r} {problem}")
    return name
