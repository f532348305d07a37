"""Window-level change points of a model version's error and latency streams.

They run on finalized windows (stage 2), so they see the same numbers however producers key their
events and however many workers share the input: a per-event detector would see each partition's share
of the stream, and its verdict would depend on the keying.

* **Errors**: the window's error count against the pooled rate of the last ``HISTORY`` windows that were
  not flagged — a one-sided binomial test (``p < ERROR_ALPHA``) against the rate's upper 99.9 % confidence
  bound (the baseline is itself a sample), which also needs the rate to have doubled.
* **Latency**: river's ``PageHinkley`` (``mode="up"``) on ``log(p95)`` per window, so the threshold is a
  relative change (``threshold=0.3`` ≈ a persistent +35 %) and stable windows do not accumulate.

The state is a few numbers per model version; :meth:`ChangeDetector.to_dict` stores the recent window
values and :meth:`ChangeDetector.from_dict` rebuilds the detector by feeding them again (no pickles).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from river import drift as rdrift
from scipy import stats

#: binomial test level for an error-rate change
ERROR_ALPHA = 1e-5
#: windows (not flagged) whose pooled error rate is the baseline
HISTORY = 12
#: latency windows kept to rebuild the PageHinkley state after a restart
LATENCY_HISTORY = 50


def _page_hinkley() -> rdrift.PageHinkley:
    return rdrift.PageHinkley(mode="up", min_instances=3, delta=0.02, threshold=0.3, alpha=1 - 1e-4)


@dataclass
class ChangeDetector:
    """Change points of one model version, fed one finalized window at a time.

    Examples
    --------
    >>> d = ChangeDetector()
    >>> [d.update(errors=10, total=1000, p95=50.0) for _ in range(6)][-1]
    (False, False)
    >>> d.update(errors=60, total=1000, p95=50.0)
    (True, False)
    >>> d.update(errors=10, total=1000, p95=150.0)  # p95 tripled
    (False, True)
    """

    errors: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    latency: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_HISTORY))
    ph: rdrift.PageHinkley = field(default_factory=_page_hinkley)

    def update(self, errors: int, total: int, p95: float | None) -> tuple[bool, bool]:
        """(error change, latency change) for the next window."""
        error_change = self._errors(errors, total)
        latency_change = False
        if p95 is not None and p95 > 0 and math.isfinite(p95):
            x = math.log(p95)
            self.latency.append(x)
            self.ph.update(x)
            latency_change = bool(self.ph.drift_detected)
        return error_change, latency_change

    def _errors(self, errors: int, total: int) -> bool:
        if total <= 0:
            return False
        base_err = sum(e for e, _ in self.errors)
        base_n = sum(n for _, n in self.errors)
        flagged = False
        if len(self.errors) >= 3 and base_n >= 200:
            rate = errors / total
            p0 = float(stats.beta.ppf(0.999, base_err + 1, base_n - base_err)) if base_err < base_n else 1.0
            if rate >= 2 * base_err / base_n and p0 < 1:
                flagged = float(stats.binom.sf(errors - 1, total, p0)) < ERROR_ALPHA
        if not flagged:
            self.errors.append((errors, total))
        return flagged

    def to_dict(self) -> dict[str, Any]:
        return {"errors": [list(x) for x in self.errors], "latency": list(self.latency)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChangeDetector:
        out = cls()
        for e, n in d.get("errors", []):
            out.errors.append((int(e), int(n)))
        for x in d.get("latency", []):
            out.latency.append(float(x))
            out.ph.update(float(x))
        return out
