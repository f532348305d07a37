"""Scenario library: seeded synthetic prediction traffic with known change points and a ground-truth sidecar.

Every scenario draws the same kind of model traffic — a binary classifier over eight numeric and three
categorical features with calibrated scores, lognormal latency and rare errors — and plants changes at
known windows. ``events()`` yields CONTRACT §1 prediction and label events (dicts; raw strings for
malformed lines) in event-time order with a little jitter; ``truth()`` says what changes, where and how
much; ``reference()`` draws the stable regime as a flat table for ``monitor reference build``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

DEFAULT_START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
NUMERIC = ("amount", "age", "num_items", "tenure_days", "x1", "x2", "x3", "x4")
CATEGORICAL = ("country", "device", "is_returning")
COUNTRIES = ("US", "DE", "FR", "GB", "IN")
COUNTRY_P = (0.4, 0.2, 0.15, 0.15, 0.1)
DEVICES = ("mobile", "desktop", "tablet")
DEVICE_P = (0.6, 0.3, 0.1)
#: reference standard deviations, for "shift by k sd"
SD = {"amount": 31.2, "age": 12.0, "num_items": math.sqrt(3.0), "tenure_days": 300.0,
      "x1": 1.0, "x2": 1.0, "x3": 1.0, "x4": 1.0}


@dataclass(frozen=True)
class Change:
    """A planted change. ``target`` is a feature, ``__prediction__``, ``__score__``, ``latency``, ``errors``
    or ``accuracy``; windows are 0-based and ``end_window`` is exclusive (None: persists)."""

    target: str
    kind: str
    start_window: int
    magnitude: float
    model: str = "fraud"
    end_window: int | None = None

    def active(self, w: int) -> bool:
        return w >= self.start_window and (self.end_window is None or w < self.end_window)

    def ramp(self, w: int) -> float:
        """Gradual changes: 0 before start, rising linearly to 1 at end_window."""
        if w < self.start_window:
            return 0.0
        if self.end_window is None or self.end_window <= self.start_window:
            return 1.0
        return min(1.0, (w - self.start_window + 1) / (self.end_window - self.start_window))


@dataclass(frozen=True)
class ScenarioSpec:
    name: str
    description: str
    models: tuple[str, ...] = ("fraud",)
    changes: tuple[Change, ...] = ()
    rates: dict[str, float] = field(default_factory=dict)  # relative traffic per model (default 1)
    malformed_share: float = 0.0
    seasonal: float = 0.0  # amplitude (in sd) of a recurring pattern in x1, also in the reference
    season_windows: int = 6
    concept: bool = False  # river SEA ConceptDriftStream instead of the default generator

    # -- generation ---------------------------------------------------------------------------------
    def _features(self, rng: np.random.Generator, n: int, model: str, w: float | None) -> dict[str, Any]:
        f: dict[str, Any] = {
            "amount": np.exp(rng.normal(3.3, 0.75, n)),
            "age": np.clip(rng.normal(40, 12, n), 18, 95).round(),
            "num_items": rng.poisson(3.0, n).astype(np.float64),
            "tenure_days": rng.exponential(300.0, n),
            "x1": rng.normal(0, 1, n), "x2": rng.normal(0, 1, n), "x3": rng.normal(0, 1, n),
            "x4": rng.normal(0, 1, n),
            "country": rng.choice(COUNTRIES, n, p=COUNTRY_P).astype(object),
            "device": rng.choice(DEVICES, n, p=DEVICE_P).astype(object),
            "is_returning": rng.uniform(size=n) < 0.55,
        }
        if self.seasonal:
            phase = rng.uniform(0, self.season_windows, n) if w is None else np.full(n, w)
            f["x1"] = f["x1"] + self.seasonal * np.sin(2 * np.pi * phase / self.season_windows)
        if w is not None:
            for c in self.changes:
                if c.model != model or c.target not in f:
                    continue
                if c.kind == "mean_shift" and c.active(int(w)):
                    f[c.target] = f[c.target] + c.magnitude * SD[c.target]
                elif c.kind == "gradual":
                    f[c.target] = f[c.target] + c.magnitude * SD[c.target] * c.ramp(int(w))
                elif c.kind == "new_category" and c.active(int(w)):
                    f[c.target] = np.where(rng.uniform(size=n) < c.magnitude, "BR", f[c.target]).astype(object)
        return f

    def _logit(self, f: dict[str, Any]) -> np.ndarray:
        z = (1.1 * (np.log(np.maximum(f["amount"], 1e-3)) - 3.3) / 0.75 - 0.03 * (f["age"] - 40)
             + 0.9 * f["x1"] - 0.7 * f["x2"] + 0.25 * (f["num_items"] - 3)
             + np.where(f["device"] == "mobile", 0.5, -0.4) - np.where(f["is_returning"], 0.8, 0.0))
        return np.asarray(2.2 * z - 0.4)

    def _window(self, rng: np.random.Generator, n: int, model: str, w: int | None) -> dict[str, Any]:
        if self.concept:
            return self._sea(rng, n, w)
        f = self._features(rng, n, model, w)
        logit = self._logit(f)
        true_p = 1 / (1 + np.exp(-logit))
        label = (rng.uniform(size=n) < true_p).astype(int)
        score_logit = logit.copy()
        for c in self.changes:
            if w is not None and c.model == model and c.kind == "score_shift" and c.active(w):
                score_logit = score_logit + c.magnitude
        score = 1 / (1 + np.exp(-score_logit))
        out = {**f, "score": score, "prediction": (score >= 0.5).astype(int), "label": label}
        if w is not None:
            for c in self.changes:
                if c.model == model and c.kind == "accuracy_drop" and c.active(w):
                    flip = rng.uniform(size=n) < c.magnitude
                    out["label"] = np.where(flip, 1 - out["label"], out["label"])
        return out

    def _sea(self, rng: np.random.Generator, n: int, w: int | None) -> dict[str, Any]:
        from river.datasets import synth

        variant = 0
        for c in self.changes:
            if c.kind == "concept_drift" and w is not None and c.active(w):
                variant = int(c.magnitude)
        stream = synth.SEA(variant=variant, noise=0.05, seed=int(rng.integers(0, 2**31)))
        xs, ys = [], []
        for x, y in stream.take(n):
            xs.append([x[0], x[1], x[2]])
            ys.append(int(y))
        arr = np.array(xs).reshape(n, 3)
        s = arr[:, 0] + arr[:, 1]
        score = 1 / (1 + np.exp(-2.0 * (s - 8.0)))  # the model learned concept 0: x0 + x1 > 8
        return {"x1": arr[:, 0], "x2": arr[:, 1], "x3": arr[:, 2], "score": score,
                "prediction": (score >= 0.5).astype(int), "label": np.array(ys, dtype=int)}

    def reference(self, rows: int = 20_000, seed: int = 0) -> dict[str, pd.DataFrame]:
        """The stable regime per model as a flat table (features, score, prediction, label)."""
        out = {}
        for i, model in enumerate(self.models):
            rng = np.random.default_rng([seed, 7919, i])
            out[model] = pd.DataFrame(self._window(rng, rows, model, None))
        return out

    def events(self, *, seed: int = 0, windows: int = 12, window_s: float = 300.0, rate: float = 20.0,
               start: float = DEFAULT_START) -> Iterator[dict[str, Any] | str]:
        """Prediction and label events (dicts) and malformed lines (str), in event-time order."""
        rng = np.random.default_rng([seed, 104729])
        jitter = min(3.0, 0.1 * window_s)
        items: list[tuple[float, int, dict[str, Any] | str]] = []
        seq = 0
        for model in self.models:
            per_s = rate * self.rates.get(model, 1.0)
            for w in range(windows):
                n = int(rng.poisson(per_s * window_s))
                if n == 0:
                    continue
                t0 = start + w * window_s
                ts = np.sort(rng.uniform(t0, t0 + window_s, n))
                ts_jit = ts + rng.uniform(-jitter, 0, n) * (rng.uniform(size=n) < 0.3)
                cols = self._window(rng, n, model, w)
                lat = rng.lognormal(math.log(20.0), 0.35, n)
                err_rate = 0.005
                for c in self.changes:
                    if c.model == model and c.active(w):
                        if c.kind == "latency_regression":
                            lat = lat * c.magnitude
                        elif c.kind == "error_burst":
                            err_rate = c.magnitude
                errors = rng.uniform(size=n) < err_rate
                labelled = rng.uniform(size=n) < 0.8
                delays = np.where(rng.uniform(size=n) < 0.5, rng.uniform(1, 5, n),
                                  rng.uniform(0, 3 * window_s, n))
                str_ts = rng.uniform(size=n) < 0.05
                names = [k for k in cols if k not in ("score", "prediction", "label")]
                for i in range(n):
                    rid = f"{model}-{seed}-{w}-{i}"
                    ts_i = float(ts_jit[i])
                    feats = {k: _jsonable(cols[k][i]) for k in names}
                    if errors[i]:
                        ev: dict[str, Any] = {"model": model, "model_version": "v3", "request_id": rid,
                                              "timestamp": ts_i, "features": feats, "prediction": None,
                                              "error": "upstream timeout"}
                        if rng.uniform() < 0.5:
                            ev["latency_ms"] = round(float(lat[i]) * 5, 3)
                    else:
                        ev = {"model": model, "model_version": "v3", "request_id": rid,
                              "timestamp": _rfc3339(ts_i) if str_ts[i] else ts_i, "features": feats,
                              "prediction": int(cols["prediction"][i]),
                              "score": round(float(cols["score"][i]), 6), "latency_ms": round(float(lat[i]), 3)}
                    items.append((ts_i, seq, ev))
                    seq += 1
                    if labelled[i] and not errors[i]:
                        lab = {"model": model, "request_id": rid, "timestamp": ts_i + float(delays[i]),
                               "label": int(cols["label"][i])}
                        items.append((ts_i + float(delays[i]), seq, lab))
                        seq += 1
                if self.malformed_share:
                    k = int(rng.binomial(n, self.malformed_share))
                    for j, t in enumerate(rng.uniform(t0, t0 + window_s, k)):
                        items.append((float(t), seq, _malformed(rng, model, float(t), j)))
                        seq += 1
        items.sort(key=lambda x: (x[0], x[1]))
        for _, _, item in items:
            yield item

    def truth(self, *, windows: int = 12, window_s: float = 300.0, start: float = DEFAULT_START,
              rate: float = 20.0, seed: int = 0) -> dict[str, Any]:
        changed = {(c.model, c.target) for c in self.changes}
        features = NUMERIC + CATEGORICAL if not self.concept else ("x1", "x2", "x3")
        return {
            "scenario": self.name, "description": self.description, "seed": seed, "windows": windows,
            "window_s": window_s, "start": start, "rate": rate, "models": list(self.models),
            "rates": {m: rate * self.rates.get(m, 1.0) for m in self.models},
            "changes": [asdict(c) for c in self.changes],
            "stable_features": {m: [f for f in features if (m, f) not in changed] for m in self.models},
            "malformed_share": self.malformed_share,
        }


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.bool_ | bool):
        return bool(v)
    if isinstance(v, np.floating | float):
        return round(float(v), 6)
    if isinstance(v, np.integer):
        return int(v)
    return v


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _malformed(rng: np.random.Generator, model: str, ts: float, j: int) -> str:
    kinds = [
        '{"model": "%s", "request_id": "bad-%d", "timestamp": %r, "features": {' % (model, j, ts),
        "not json at all",
        orjson.dumps({"model": model, "request_id": f"bad-{j}", "timestamp": ts, "features": [1, 2],
                      "prediction": 1}).decode(),
        orjson.dumps({"model": model, "timestamp": ts, "features": {}, "prediction": 1}).decode(),
        '{"model": "%s", "request_id": "bad-%d", "timestamp": %r, "features": {"x1": NaN}, "prediction": 1}'
        % (model, j, ts),
        orjson.dumps({"model": model, "request_id": f"bad-{j}", "timestamp": ts, "features": {},
                      "prediction": 1, "latency_ms": -5}).decode(),
        orjson.dumps({"model": model, "request_id": f"bad-{j}", "timestamp": ts, "features": {},
                      "prediction": 1, "score": 1.7}).decode(),
        orjson.dumps({"model": model, "request_id": f"bad-{j}", "timestamp": "yesterday", "features": {},
                      "prediction": 1}).decode(),
    ]
    return kinds[int(rng.integers(0, len(kinds)))]


def _mixed() -> tuple[Change, ...]:
    return (Change("amount", "mean_shift", 4, 1.0), Change("latency", "latency_regression", 6, 3.0, end_window=8),
            Change("errors", "error_burst", 8, 0.25, end_window=9), Change("accuracy", "accuracy_drop", 9, 0.3))


SCENARIOS: dict[str, ScenarioSpec] = {s.name: s for s in (
    ScenarioSpec("stable", "no change at all: every alarm is a false alarm"),
    ScenarioSpec("sudden_shift", "x1 shifts by 0.5 sd and amount by 1 sd from window 4",
                 changes=(Change("x1", "mean_shift", 4, 0.5), Change("amount", "mean_shift", 4, 1.0))),
    ScenarioSpec("gradual", "x2's mean ramps up to +1 sd from window 3 to window 9",
                 changes=(Change("x2", "gradual", 3, 1.0, end_window=9),)),
    ScenarioSpec("seasonal", "x1 follows a 6-window cycle (amplitude 0.2 sd) also present in the reference: "
                 "must not page", seasonal=0.2),
    ScenarioSpec("new_category", "country 'BR', never seen in the reference, is 15% of traffic from window 5",
                 changes=(Change("country", "new_category", 5, 0.15),)),
    ScenarioSpec("concept_drift", "river SEA ConceptDriftStream: P(label|x) moves from concept 0 to concept 3 "
                 "at window 5 while inputs stay put", concept=True,
                 changes=(Change("accuracy", "concept_drift", 5, 3.0),)),
    ScenarioSpec("score_drift", "scores shift by +1.5 logits from window 5 (prediction drift)",
                 changes=(Change("__score__", "score_shift", 5, 1.5),)),
    ScenarioSpec("latency_regression", "latency ×3 from window 6",
                 changes=(Change("latency", "latency_regression", 6, 3.0),)),
    ScenarioSpec("error_burst", "error rate 20% in windows 5–6 only",
                 changes=(Change("errors", "error_burst", 5, 0.2, end_window=7),)),
    ScenarioSpec("malformed_storm", "10% of lines are malformed (bad JSON, wrong types, NaN, missing fields, "
                 "negative latency, score > 1)", malformed_share=0.1),
    ScenarioSpec("multi_model", "3 models at 5/20/50 events/s (×rate/20); only 'churn' drifts (x3 +1 sd from "
                 "window 4)", models=("fraud", "churn", "ranker"),
                 rates={"fraud": 0.25, "churn": 1.0, "ranker": 2.5},
                 changes=(Change("x3", "mean_shift", 4, 1.0, model="churn"),)),
    ScenarioSpec("mixed", "end to end: amount +1 sd from window 4, latency ×3 in windows 6–7, 25% errors in "
                 "window 8, 30% of labels flipped from window 9; age and device stay stable",
                 changes=_mixed()),
)}


def get_scenario(name: str) -> ScenarioSpec:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; choose from: {', '.join(SCENARIOS)}") from None


def write_scenario(name: str, out: Path, *, seed: int = 0, windows: int = 12, window_s: float = 300.0,
                   rate: float = 20.0, start: float = DEFAULT_START) -> tuple[Path, Path]:
    """Write events as JSON lines to ``out`` and the ground truth to ``out.with_suffix('.truth.json')``."""
    spec = get_scenario(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as fh:
        for item in spec.events(seed=seed, windows=windows, window_s=window_s, rate=rate, start=start):
            fh.write(item.encode() if isinstance(item, str) else orjson.dumps(item))
            fh.write(b"\n")
    truth_path = out.with_suffix(".truth.json")
    truth_path.write_bytes(orjson.dumps(spec.truth(windows=windows, window_s=window_s, start=start, rate=rate,
                                                   seed=seed), option=orjson.OPT_INDENT_2))
    return out, truth_path


def write_reference_table(name: str, out_dir: Path, *, rows: int = 20_000, seed: int = 0) -> dict[str, Path]:
    """Per model, a CSV of the stable regime: ``out_dir/<model>.reference.csv``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for model, frame in get_scenario(name).reference(rows=rows, seed=seed).items():
        path = out_dir / f"{model}.reference.csv"
        frame.to_csv(path, index=False)
        paths[model] = path
    return paths
