"""A bounded count of strings (the window's error messages): space-saving with a small cap.

The summary is a plain ``dict[str, int]`` of at most ``cap`` keys, so it is cheap to keep per window and
to serialise. While a window has at most ``cap`` distinct strings it is exact, and merging two windows'
summaries is plain addition (the same counts as one summary over the concatenated events). Past the
cap, a new string takes the slot of the currently smallest count and inherits that count plus its own
(Metwally et al., "space-saving"): counts may be over-estimated by at most the evicted count, and any
string seen more than ``total / cap`` times is guaranteed to be kept — the frequent errors an on-call
engineer needs to see are never lost to a long tail of one-off messages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

#: distinct strings kept per window
CAP = 32
#: longer strings are cut to this many characters before counting
MAX_CHARS = 200


def add_counts(summary: dict[str, int], counts: Mapping[str, int], cap: int = CAP) -> None:
    """Add weighted ``counts`` into ``summary`` in place (space-saving past ``cap`` keys).

    Keys are added largest count first (ties by key), so the result does not depend on ``counts``' order.

    >>> s = {"timeout": 3}
    >>> add_counts(s, {"timeout": 2, "503": 1})
    >>> s
    {'timeout': 5, '503': 1}
    >>> add_counts(s, {"oom": 4}, cap=2)  # full: "oom" takes the smallest slot ("503") and its count
    >>> s
    {'timeout': 5, 'oom': 5}
    """
    for key, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        if key in summary:
            summary[key] += n
        elif len(summary) < cap:
            summary[key] = n
        else:
            victim = min(summary, key=lambda k: (summary[k], k))
            summary[key] = summary.pop(victim) + n


def add_strings(summary: dict[str, int], strings: Iterable[str], cap: int = CAP) -> None:
    """Count ``strings`` (each cut to :data:`MAX_CHARS`) into ``summary``.

    >>> s: dict[str, int] = {}
    >>> add_strings(s, ["upstream timeout", "upstream timeout", "503"])
    >>> s
    {'upstream timeout': 2, '503': 1}
    """
    add_counts(summary, Counter(s[:MAX_CHARS] for s in strings), cap)


def top(summary: Mapping[str, int], k: int = 3) -> list[tuple[str, int]]:
    """The ``k`` largest counts, largest first (ties by key).

    >>> top({"a": 1, "b": 5, "c": 5}, 2)
    [('b', 5), ('c', 5)]
    """
    return sorted(summary.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
