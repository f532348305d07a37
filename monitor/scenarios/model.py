"""The synthetic world behind :mod:`monitor.scenarios`: features, the true model, planted changes.

Everything here is vectorised with numpy and takes an explicit :class:`numpy.random.Generator`, so a
scenario is a pure function of its seed. The scenario module assembles these columns into docs/events.md
events; this module never builds a dict per event.

The world: a binary classifier (think fraud) over eight numeric features — ``amount`` (lognormal),
``age`` (bounded integer 18–95), ``num_items`` (Poisson count), ``tenure_days`` (exponential),
``x1``..``x4`` (standard normal) — and three categorical ones — ``country``, ``device`` and the bool
``is_returning``. Labels are drawn from a logistic "true model"; the deployed model's ``score`` is that
same probability (calibrated), so in the stable regime accuracy is the Bayes accuracy (≈ 88 %).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

NUMERIC: tuple[str, ...] = ("amount", "age", "num_items", "tenure_days", "x1", "x2", "x3", "x4")
CATEGORICAL: tuple[str, ...] = ("country", "device", "is_returning")
FEATURES: tuple[str, ...] = NUMERIC + CATEGORICAL
COUNTRIES: tuple[str, ...] = ("US", "DE", "FR", "GB", "IN")
COUNTRY_P: tuple[float, ...] = (0.4, 0.2, 0.15, 0.15, 0.1)
DEVICES: tuple[str, ...] = ("mobile", "desktop", "tablet")
DEVICE_P: tuple[float, ...] = (0.6, 0.3, 0.1)
#: Reference standard deviations of the numeric features: "shift by k sd" adds ``k * SD[feature]``.
SD: dict[str, float] = {
    "amount": math.exp(3.3 + 0.75**2 / 2) * math.sqrt(math.exp(0.75**2) - 1),  # lognormal(3.3, 0.75): 31.2
    "age": 12.0, "num_items": math.sqrt(3.0), "tenure_days": 300.0,
    "x1": 1.0, "x2": 1.0, "x3": 1.0, "x4": 1.0,
}
#: Features of the concept-drift scenario, straight from river's SEA generator (uniform on [0, 10]).
SEA_FEATURES: tuple[str, ...] = ("x1", "x2", "x3")
#: SEA label thresholds by variant (label = x1 + x2 > threshold); the deployed model learned variant 0.
SEA_THRESHOLDS: tuple[float, ...] = (8.0, 9.0, 7.0, 9.5)
BASE_LATENCY_MS = 20.0
BASE_ERROR_RATE = 0.005
ERROR_MESSAGES: tuple[str, ...] = ("upstream timeout", "model server returned 503", "feature store unavailable")
#: Change kinds that alter a feature's distribution.
FEATURE_KINDS = frozenset({"mean_shift", "gradual", "new_category", "seasonal", "rhythm"})
#: Change kinds that describe a pattern also present in the reference: not a change a monitor should page on.
BENIGN_KINDS = frozenset({"seasonal"})


@dataclass(frozen=True)
class Change:
    """A change planted in a scenario, as written to the ground-truth sidecar.

    Parameters
    ----------
    target
        A feature name, ``"category:<feature>"`` (a new category value of a categorical feature),
        ``"__prediction__"``, ``"__score__"``, ``"latency"``, ``"errors"`` or ``"accuracy"``.
    kind
        ``mean_shift``, ``gradual``, ``new_category``, ``latency_regression``, ``error_burst``,
        ``accuracy_drop``, ``concept_drift``, ``score_shift``, ``seasonal`` (a cycle the reference also
        contains), ``rhythm`` (a cycle in event time the reference does not contain: :func:`apply_rhythm`) or
        ``correlation_flip`` (target ``__multivariate__``: the x3–x4 correlation changes sign, marginals
        unchanged).
    start_window
        First affected window (0-based; window ``w`` covers ``[start + w*window_s, start + (w+1)*window_s)``).
    end_window
        Last affected window, **inclusive**; ``None``: persists to the end. For ``gradual`` it is the first
        window at full magnitude (the shift then persists).
    magnitude
        Size, in the kind's unit: standard deviations (``mean_shift``, ``gradual``, ``seasonal`` amplitude),
        traffic share (``new_category``), latency factor, error rate, share of labels flipped, logits
        (``score_shift``), expected accuracy drop (``concept_drift``), change of correlation
        (``correlation_flip``).
    model
        The model whose traffic changes.
    segment
        ``<feature>=<value>`` (e.g. ``country=PL``): only the events of that segment change; None: all.
    """

    target: str
    kind: str
    start_window: int
    end_window: int | None
    magnitude: float
    model: str = "fraud"
    segment: str | None = None

    def active(self, w: int) -> bool:
        """Whether the change is in effect in window ``w`` (a gradual one: from its start on)."""
        if self.kind == "gradual":
            return w >= self.start_window
        return w >= self.start_window and (self.end_window is None or w <= self.end_window)

    def level(self, w: int) -> float:
        """Share of ``magnitude`` in effect in window ``w``: 0 or 1, or a linear ramp for ``gradual``.

        >>> c = Change("x2", "gradual", 3, 9, 1.0)
        >>> [round(c.level(w), 2) for w in (2, 3, 6, 9, 11)]
        [0.0, 0.14, 0.57, 1.0, 1.0]
        """
        if not self.active(w):
            return 0.0
        if self.kind != "gradual" or self.end_window is None or self.end_window <= self.start_window:
            return 1.0
        return min(1.0, (w - self.start_window + 1) / (self.end_window - self.start_window + 1))

    @property
    def feature(self) -> str | None:
        """The feature whose distribution this change alters (``category:country`` → ``country``), if any."""
        if self.kind not in FEATURE_KINDS:
            return None
        return self.target.removeprefix("category:")


def draw_features(rng: np.random.Generator, n: int, *, phase: np.ndarray | None = None,
                  seasonal: float = 0.0, season_windows: float = 6.0,
                  countries: Sequence[tuple[str, float]] = ()) -> dict[str, np.ndarray]:
    """Draw ``n`` rows of the stable regime; ``phase`` (in windows) drives the seasonal pattern of ``x1``;
    ``countries`` ((name, share), …) replaces the default country mix."""
    names, shares = (tuple(c for c, _ in countries), tuple(p for _, p in countries)) if countries \
        else (COUNTRIES, COUNTRY_P)
    x = rng.normal(0.0, 1.0, (4, n))
    feats: dict[str, np.ndarray] = {
        "amount": np.exp(rng.normal(3.3, 0.75, n)),
        "age": np.clip(np.rint(rng.normal(40.0, 12.0, n)), 18, 95).astype(np.int64),
        "num_items": rng.poisson(3.0, n).astype(np.int64),
        "tenure_days": rng.exponential(300.0, n),
        "x1": x[0], "x2": x[1], "x3": x[2], "x4": x[3],
        "country": np.asarray(names, dtype=object)[rng.choice(len(names), n, p=shares)],
        "device": np.asarray(DEVICES, dtype=object)[rng.choice(len(DEVICES), n, p=DEVICE_P)],
        "is_returning": rng.uniform(size=n) < 0.55,
    }
    if seasonal and phase is not None:
        feats["x1"] = feats["x1"] + seasonal * SD["x1"] * np.sin(2 * np.pi * phase / season_windows)
    return feats


def apply_feature_changes(rng: np.random.Generator, feats: dict[str, np.ndarray], changes: tuple[Change, ...],
                          w: int) -> dict[str, np.ndarray]:
    """Apply the feature-level changes in effect in window ``w`` (new arrays; the input is not mutated)."""
    out = dict(feats)
    for c in changes:
        name = c.feature
        if name is None or name not in out or c.kind in ("seasonal", "rhythm"):
            continue
        level = c.level(w)
        if level == 0.0:
            continue
        if c.kind in ("mean_shift", "gradual"):
            shift = np.full(len(out[name]), level * c.magnitude * SD[name])
            if c.segment is not None:  # only the events of one segment move
                feature, value = c.segment.split("=", 1)
                shift[out[feature] != value] = 0.0
            shifted = out[name] + shift
            out[name] = np.rint(shifted).astype(np.int64) if out[name].dtype.kind == "i" else shifted
        elif c.kind == "new_category":
            hit = rng.uniform(size=len(out[name])) < c.magnitude
            out[name] = np.where(hit, "BR", out[name]).astype(object)
    return out


def rhythm_level(ts: np.ndarray, period_s: float) -> np.ndarray:
    """The rhythm at event times ``ts``: ``sin(2π · (ts mod period) / period)`` — 0 at midnight UTC for a
    one-day period, +1 at 06:00, −1 at 18:00."""
    return np.asarray(np.sin(2 * np.pi * np.mod(ts, period_s) / period_s), dtype=np.float64)


def apply_rhythm(rng: np.random.Generator, feats: dict[str, np.ndarray], level: np.ndarray,
                 amplitude: float) -> dict[str, np.ndarray]:
    """A time-of-day pattern (``level`` in [−1, 1] per row, :func:`rhythm_level`): ``x1`` moves by
    ``amplitude`` sd, ``amount``'s log-mean by ``amplitude/2`` of its log-sd, and mobile's share of
    ``device`` by ``±0.2·amplitude`` (desktop and tablet make up the rest). New arrays; rows at level 0
    keep their distribution."""
    a = min(abs(amplitude), 1.0) * np.sign(amplitude)
    out = dict(feats)
    out["x1"] = feats["x1"] + amplitude * SD["x1"] * level
    out["amount"] = feats["amount"] * np.exp(0.5 * amplitude * 0.75 * level)
    p_mobile = DEVICE_P[0] + 0.2 * a * level
    p_desktop = DEVICE_P[1] - 0.15 * a * level
    u = rng.uniform(size=level.size)
    out["device"] = np.where(u < p_mobile, DEVICES[0], np.where(u < p_mobile + p_desktop, DEVICES[1],
                                                                 DEVICES[2])).astype(object)
    return out


def true_logit(feats: dict[str, np.ndarray]) -> np.ndarray:
    """Log-odds of the positive class under the true model (also the deployed model's score)."""
    z = (1.1 * (np.log(np.maximum(feats["amount"], 1e-3)) - 3.3) / 0.75
         - 0.03 * (feats["age"] - 40.0)
         + 0.9 * feats["x1"] - 0.7 * feats["x2"] + 0.25 * (feats["num_items"] - 3.0)
         + np.where(feats["device"] == "mobile", 0.5, -0.4)
         - np.where(feats["is_returning"], 0.8, 0.0))
    return np.asarray(2.2 * z - 0.4, dtype=np.float64)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function."""
    return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def sea_rows(n: int, *, seed: int, noise: float, drift_at: int | None = None, drift_variant: int = 3,
             width: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows of river's SEA stream (variant 0), switching to ``drift_variant`` around row ``drift_at``.

    Uses :class:`river.datasets.synth.ConceptDriftStream`; returns ``(x of shape (n, 3), labels)``.
    """
    from river.datasets import synth

    # ConceptDriftStream evaluates exp(4 * (position - i) / width), which overflows ~180 widths before the
    # drift: draw the rows well before it from the first concept alone, then switch streams.
    head = n if drift_at is None else min(n, max(0, drift_at - 100 * width))
    streams: list[Any] = [synth.SEA(variant=0, noise=noise, seed=seed).take(head)]
    if drift_at is not None and n > head:
        streams.append(synth.ConceptDriftStream(
            stream=synth.SEA(variant=0, noise=noise, seed=seed + 1),
            drift_stream=synth.SEA(variant=drift_variant, noise=noise, seed=seed + 2),
            position=drift_at - head, width=width, seed=seed + 3).take(n - head))
    rows = itertools.chain.from_iterable(streams)
    x = np.empty((n, 3))
    y = np.empty(n, dtype=np.int64)
    for i, (xi, yi) in enumerate(rows):
        x[i] = (xi[0], xi[1], xi[2])
        y[i] = int(yi)
    return x, y


def sea_logit(x: np.ndarray) -> np.ndarray:
    """The deployed model of the concept-drift scenario: it learned SEA variant 0 (label 1 iff x1 + x2 > 8)."""
    return np.asarray(2.0 * (x[:, 0] + x[:, 1] - SEA_THRESHOLDS[0]), dtype=np.float64)


def sea_accuracy_drop(variant: int, noise: float) -> float:
    """Expected accuracy drop when SEA moves from variant 0 to ``variant`` (x1, x2 uniform on [0, 10])."""

    def cdf(s: float) -> float:  # P(x1 + x2 <= s), the sum of two U(0, 10)
        return s * s / 200.0 if s <= 10 else 1.0 - (20.0 - s) ** 2 / 200.0

    disagree = abs(cdf(SEA_THRESHOLDS[variant]) - cdf(SEA_THRESHOLDS[0]))
    return round(disagree * (1.0 - 2.0 * noise), 4)


def rfc3339(ts: float) -> str:
    """Epoch seconds → RFC 3339 UTC with milliseconds (``2026-01-01T00:00:00.000Z``)."""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def malformed_line(rng: np.random.Generator, model: str, ts: float, j: int) -> str:
    """One invalid raw line of a kind drawn by ``rng``: each breaks exactly one rule of docs/events.md."""
    rid = f"bad-{model}-{j}"
    base: dict[str, Any] = {"model": model, "request_id": rid, "timestamp": ts, "features": {"x1": 0.5},
                            "prediction": 1, "score": 0.7, "latency_ms": 12.5}
    kind = int(rng.integers(0, 12))
    if kind == 0:  # truncated JSON
        return orjson.dumps(base).decode()[: int(rng.integers(5, 40))]
    if kind == 1:
        return "not json at all"
    if kind == 2:  # wrong type: features is a list
        return orjson.dumps({**base, "features": [1, 2, 3]}).decode()
    if kind == 3:  # missing required field
        return orjson.dumps({k: v for k, v in base.items() if k != "request_id"}).decode()
    if kind == 4:  # NaN (not valid JSON, but what json.dumps emits)
        return orjson.dumps(base).decode().replace('"x1":0.5', '"x1":NaN')
    if kind == 5:
        return orjson.dumps({**base, "latency_ms": -5.0}).decode()
    if kind == 6:
        return orjson.dumps({**base, "score": 1.7}).decode()
    if kind == 7:
        return orjson.dumps({**base, "timestamp": "yesterday"}).decode()
    if kind == 8:  # wrong type: model is a number
        return orjson.dumps({**base, "model": 42}).decode()
    if kind == 9:  # missing prediction without an error
        return orjson.dumps({k: v for k, v in base.items() if k != "prediction"}).decode()
    if kind == 10:  # not an object
        return orjson.dumps([model, rid, ts]).decode()
    return orjson.dumps(base).decode().replace('"score":0.7', '"score":Infinity')
