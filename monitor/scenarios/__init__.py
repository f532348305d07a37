"""Scenario library: seeded synthetic prediction traffic with known change points and a ground-truth sidecar.

Every scenario draws the traffic of a binary classifier (see :mod:`monitor.scenarios.model`) and plants
changes at known windows. :meth:`ScenarioSpec.events` yields prediction and label events (docs/events.md)
(dicts; raw strings for malformed lines) in arrival order — event time with a few seconds of jitter,
well inside a 60 s allowed lateness; :meth:`ScenarioSpec.truth` says what changes, where and how much;
:meth:`ScenarioSpec.reference` draws the stable regime as a flat table for ``monitor reference build``.

Generation is vectorised per (model, window) with a generator seeded by ``(seed, model, window)``, so a
scenario is byte-for-byte reproducible and a run with fewer windows is a prefix of a longer one.

>>> spec = get_scenario("mixed")
>>> events = list(spec.events(seed=1, windows=2, window_s=10, rate=5))
>>> sorted(events[0])[:4]
['features', 'latency_ms', 'model', 'model_version']
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd

from monitor.scenarios.model import (
    BASE_ERROR_RATE,
    BASE_LATENCY_MS,
    BENIGN_KINDS,
    ERROR_MESSAGES,
    FEATURES,
    SEA_FEATURES,
    Change,
    apply_feature_changes,
    apply_rhythm,
    draw_features,
    malformed_line,
    rfc3339,
    rhythm_level,
    sea_accuracy_drop,
    sea_logit,
    sea_rows,
    sigmoid,
    true_logit,
)

__all__ = ["DEFAULT_START", "SCENARIOS", "Change", "ScenarioSpec", "get_scenario", "write_reference_table",
           "write_scenario"]

DEFAULT_START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
OUTPUTS = ("prediction", "score", "label")
_REF_SALT, _EVENT_SALT, _CONCEPT_SALT = 7919, 104729, 1299709
LABELLED_SHARE = 0.8  # of successful predictions
RFC3339_SHARE = 0.05  # of timestamps written as strings instead of epoch seconds
LATE_SHARE = 0.3  # of predictions that arrive up to `jitter` seconds after their timestamp
SEA_NOISE = 0.1
SEA_DRIFT_VARIANT = 3
#: with a rhythm, each window's traffic is this much above/below the mean at the rhythm's peak/trough
RHYTHM_VOLUME = 0.25
#: the window (``--window 3h``: day 28, 12:00) where the daily_rhythm scenario breaks
RHYTHM_BREAK_WINDOW = 228
VERSIONS = {"fraud": "v3", "churn": "v12", "ranker": "2026.01.2"}


@dataclass(frozen=True)
class ScenarioSpec:
    """A named scenario: which models send traffic, at what relative rates, and which changes are planted.

    ``rates`` are per-model multipliers of the ``rate`` given to :meth:`events` (empty: 1 for all);
    ``seasonal`` is the amplitude (in sd) of a ``season_windows``-long sinusoidal cycle of ``x1`` that the
    reference also contains; ``rhythm`` the amplitude of a ``rhythm_period_s``-long cycle of event time
    (:func:`~monitor.scenarios.model.apply_rhythm`: ``x1``, ``amount``, ``device`` and the traffic volume)
    that the reference does *not* contain (it is drawn where the cycle is at 0); ``labelled_share`` is
    the share of successful predictions that get a label event; ``concept`` swaps the features for river's
    SEA stream with a concept drift at the ``concept_drift`` change's window; ``malformed_share`` is the
    share of prediction-topic lines that are invalid; ``extra_field_share`` the share of valid events
    carrying an unknown (allowed) field; ``countries`` ((name, share), …) replaces the default country mix;
    ``segments`` are the segment features the scenario is meant to be monitored with (``monitor demo`` and
    the benchmarks turn them on).
    """

    name: str
    description: str
    models: tuple[str, ...] = ("fraud",)
    changes: tuple[Change, ...] = ()
    rates: tuple[float, ...] = ()
    malformed_share: float = 0.0
    extra_field_share: float = 0.0
    seasonal: float = 0.0
    season_windows: float = 6.0
    rhythm: float = 0.0
    rhythm_period_s: float = 86_400.0
    labelled_share: float = LABELLED_SHARE
    concept: bool = False
    countries: tuple[tuple[str, float], ...] = ()
    segments: tuple[str, ...] = ()
    #: correlation of x3 and x4 in the stable regime (a ``correlation_flip`` change negates it)
    correlation: float = 0.0

    # -- helpers ------------------------------------------------------------------------------------------
    def rate_of(self, model: str, rate: float) -> float:
        """Prediction events per second (event time) of ``model`` when the scenario runs at ``rate``."""
        return rate * (self.rates[self.models.index(model)] if self.rates else 1.0)

    def features_of(self, model: str) -> tuple[str, ...]:
        """The feature names of ``model``'s events."""
        return SEA_FEATURES if self.concept else FEATURES

    def _changes(self, model: str) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.model == model)

    def _outputs(self, rng: np.random.Generator, feats: dict[str, np.ndarray], model: str,
                 w: int | None) -> dict[str, np.ndarray]:
        """Score, prediction and label for drawn features (``w=None``: the stable regime)."""
        logit = true_logit(feats)
        label = (rng.uniform(size=len(logit)) < sigmoid(logit)).astype(np.int64)
        score_logit = logit
        if w is not None:
            for c in self._changes(model):
                if c.kind == "score_shift" and c.target == "__score__" and c.active(w):
                    score_logit = score_logit + c.magnitude
                elif c.kind == "accuracy_drop" and c.active(w):
                    flip = rng.uniform(size=len(label)) < c.magnitude
                    label = np.where(flip, 1 - label, label)
        score = sigmoid(score_logit)
        return {"score": score, "prediction": (score >= 0.5).astype(np.int64), "label": label}

    def _correlate(self, feats: dict[str, np.ndarray], model: str, w: int | None) -> dict[str, np.ndarray]:
        """x4 ← ρ·x3 + sqrt(1 − ρ²)·x4: marginals stay N(0, 1), only how x3 and x4 move together changes."""
        rho = self.correlation
        if not rho:
            return feats
        if w is not None and any(c.kind == "correlation_flip" and c.active(w) for c in self._changes(model)):
            rho = -rho
        return {**feats, "x4": rho * feats["x3"] + math.sqrt(1.0 - rho * rho) * feats["x4"]}

    def _concept_change(self, model: str) -> Change | None:
        return next((c for c in self._changes(model) if c.kind == "concept_drift"), None)

    # -- public API ---------------------------------------------------------------------------------------
    def reference(self, rows: int = 20_000, seed: int = 0) -> dict[str, pd.DataFrame]:
        """Per model, ``rows`` rows of the stable regime as flat columns (features…, prediction, score, label).

        A seasonal scenario's reference spans whole cycles, evenly, so the cycle itself is "normal".
        """
        out: dict[str, pd.DataFrame] = {}
        for i, model in enumerate(self.models):
            rng = np.random.default_rng([seed, _REF_SALT, i])
            if self.concept:
                x, y = sea_rows(rows, seed=int(rng.integers(2**31)), noise=SEA_NOISE)
                score = sigmoid(sea_logit(x))
                cols: dict[str, np.ndarray] = {name: x[:, k] for k, name in enumerate(SEA_FEATURES)}
                cols |= {"prediction": (score >= 0.5).astype(np.int64), "score": score, "label": y}
            else:
                phase = rng.permutation(np.linspace(0.0, self.season_windows, rows, endpoint=False))
                if self.seasonal:
                    phase = np.sort(phase)  # a logged period: rows in time order
                feats = self._correlate(draw_features(rng, rows, phase=phase, seasonal=self.seasonal,
                                                      season_windows=self.season_windows, countries=self.countries),
                                        model, None)
                res = self._outputs(rng, feats, model, None)
                cols = {**feats, "prediction": res["prediction"], "score": res["score"], "label": res["label"]}
            frame = pd.DataFrame(cols)
            for name in ("amount", "tenure_days", "x1", "x2", "x3", "x4", "score"):
                if name in frame and frame[name].dtype.kind == "f":
                    frame[name] = frame[name].round(6)
            out[model] = frame
        return out

    def events(self, *, seed: int = 0, windows: int = 12, window_s: float = 300.0, rate: float = 20.0,
               start: float = DEFAULT_START) -> Iterator[dict[str, Any] | str]:
        """Prediction and label events (dicts) and malformed lines (str), in arrival order.

        ``rate`` is prediction events per second of event time, per model (times the scenario's per-model
        multiplier). About 30 % of predictions arrive up to a few seconds after their timestamp, so event
        time is slightly out of order; label events come 1 s to 3 windows after their prediction.
        """
        if windows < 0 or window_s <= 0 or rate < 0:
            raise ValueError("windows must be >= 0, window_s > 0 and rate >= 0")
        keys: list[np.ndarray] = []
        items: list[dict[str, Any] | str] = []
        for mi, model in enumerate(self.models):
            rngs = [np.random.default_rng([seed, _EVENT_SALT, mi, w]) for w in range(windows)]
            volume = np.ones(windows)
            if self.rhythm:
                mid = start + (np.arange(windows) + 0.5) * window_s
                volume = 1.0 + RHYTHM_VOLUME * rhythm_level(mid, self.rhythm_period_s)
            counts = [int(r.poisson(self.rate_of(model, rate) * window_s * v)) for r, v in zip(rngs, volume,
                                                                                               strict=True)]
            sea = self._sea_windows(counts, seed, mi, model) if self.concept else None
            for w, (rng, n) in enumerate(zip(rngs, counts, strict=True)):
                if n:
                    k, it = self._window_events(rng, n, model, w, seed=seed, window_s=window_s, start=start,
                                                sea=None if sea is None else sea[w])
                    keys.append(k)
                    items.extend(it)
        if not items:
            return
        order = np.argsort(np.concatenate(keys), kind="stable")
        for i in order.tolist():
            yield items[i]

    def _sea_windows(self, counts: list[int], seed: int, mi: int,
                     model: str) -> list[tuple[np.ndarray, np.ndarray]]:
        change = self._concept_change(model)
        total = sum(counts)
        drift_at = None
        width = 1
        if change is not None and change.start_window < len(counts):
            width = max(1, counts[change.start_window] // 50)
            # ConceptDriftStream mixes along a sigmoid centred on `position`: centre it 3 widths into the
            # change window so that (to 1e-5) no drifted row lands in the window before.
            drift_at = sum(counts[: change.start_window]) + 3 * width
        x, y = sea_rows(total, seed=int(np.random.default_rng([seed, _CONCEPT_SALT, mi]).integers(2**31)),
                        noise=SEA_NOISE, drift_at=drift_at, drift_variant=SEA_DRIFT_VARIANT, width=width)
        bounds = np.cumsum([0, *counts])
        return [(x[bounds[w]:bounds[w + 1]], y[bounds[w]:bounds[w + 1]]) for w in range(len(counts))]

    def _window_events(self, rng: np.random.Generator, n: int, model: str, w: int, *, seed: int,
                       window_s: float, start: float, sea: tuple[np.ndarray, np.ndarray] | None,
                       ) -> tuple[np.ndarray, list[dict[str, Any] | str]]:
        """One window of one model: (arrival keys, items), vectorised, dicts built at the end."""
        t0 = start + w * window_s
        offsets = np.sort(rng.uniform(0.0, window_s, n))
        ts = np.round(t0 + offsets, 3)
        jitter = min(4.0, 0.1 * window_s)
        arrival = ts + np.where(rng.uniform(size=n) < LATE_SHARE, rng.uniform(0.0, jitter, n), 0.0)
        changes = self._changes(model)
        if sea is not None:
            x, label = sea
            feats: dict[str, np.ndarray] = {name: x[:, k] for k, name in enumerate(SEA_FEATURES)}
            score = sigmoid(sea_logit(x))
            outs = {"score": score, "prediction": (score >= 0.5).astype(np.int64), "label": label}
        else:
            feats = draw_features(rng, n, phase=(offsets / window_s) + w, seasonal=self.seasonal,
                                  season_windows=self.season_windows, countries=self.countries)
            if self.rhythm:
                feats = apply_rhythm(rng, feats, rhythm_level(ts, self.rhythm_period_s), self.rhythm)
            feats = apply_feature_changes(rng, self._correlate(feats, model, w), changes, w)
            outs = self._outputs(rng, feats, model, w)
        latency = rng.lognormal(np.log(BASE_LATENCY_MS), 0.35, n)
        error_rate = BASE_ERROR_RATE
        for c in changes:
            if c.active(w) and c.kind == "latency_regression":
                latency = latency * c.magnitude
            elif c.active(w) and c.kind == "error_burst":
                error_rate = c.magnitude
        errors = rng.uniform(size=n) < error_rate
        error_msg = rng.integers(0, len(ERROR_MESSAGES), n)
        error_latency = rng.uniform(size=n) < 0.5
        labelled = ~errors & (rng.uniform(size=n) < self.labelled_share)
        quick = rng.uniform(size=n) < 0.5
        delay = np.where(quick, rng.uniform(1.0, 10.0, n), rng.uniform(0.05, 3.0, n) * window_s)
        label_ts = np.round(arrival + delay, 3)
        as_text = rng.uniform(size=n) < RFC3339_SHARE
        label_as_text = rng.uniform(size=n) < RFC3339_SHARE
        extra = rng.uniform(size=n) < self.extra_field_share

        names = list(feats)
        rows = zip(*(_column(feats[k]) for k in names), strict=True)
        ts_l, score_l = ts.tolist(), np.round(outs["score"], 6).tolist()
        pred_l, label_l = outs["prediction"].tolist(), outs["label"].tolist()
        lat_l, err_l = np.round(latency, 3).tolist(), errors.tolist()
        version = VERSIONS.get(model, "v1")
        keys: list[float] = []
        items: list[dict[str, Any] | str] = []
        arrival_l, label_ts_l = arrival.tolist(), label_ts.tolist()
        as_text_l, label_as_text_l, extra_l = as_text.tolist(), label_as_text.tolist(), extra.tolist()
        labelled_l, error_msg_l, error_latency_l = labelled.tolist(), error_msg.tolist(), error_latency.tolist()
        for i, values in enumerate(rows):
            rid = f"{model}-{seed}-{w}-{i}"
            stamp: float | str = rfc3339(ts_l[i]) if as_text_l[i] else ts_l[i]
            ev: dict[str, Any] = {"model": model, "model_version": version, "request_id": rid, "timestamp": stamp,
                                  "features": dict(zip(names, values, strict=True))}
            if err_l[i]:
                ev["prediction"] = None
                ev["error"] = ERROR_MESSAGES[error_msg_l[i]]
                if error_latency_l[i]:
                    ev["latency_ms"] = lat_l[i]
            else:
                ev["prediction"] = pred_l[i]
                ev["score"] = score_l[i]
                ev["latency_ms"] = lat_l[i]
            if extra_l[i]:
                ev["trace_id"] = f"trace-{rid}"
            keys.append(arrival_l[i])
            items.append(ev)
            if labelled_l[i]:
                lts = label_ts_l[i]
                keys.append(lts)
                items.append({"model": model, "request_id": rid,
                              "timestamp": rfc3339(lts) if label_as_text_l[i] else lts, "label": label_l[i]})
        if self.malformed_share:
            k = int(rng.binomial(n, self.malformed_share / (1.0 - self.malformed_share)))
            bad_ts = np.round(t0 + rng.uniform(0.0, window_s, k), 3).tolist()
            for j, t in enumerate(bad_ts):
                keys.append(t)
                items.append(malformed_line(rng, model, t, w * 1_000_000 + j))
        return np.asarray(keys), items

    def truth(self, *, windows: int = 12, window_s: float = 300.0, start: float = DEFAULT_START,
              rate: float = 20.0, seed: int = 0) -> dict[str, Any]:
        """The ground-truth sidecar: the planted changes and, per model, the features that must stay quiet.

        A feature is *stable* when no change alters its distribution relative to the reference; a
        ``seasonal`` pattern is in the reference too, so its feature counts as stable (must not page).
        """
        changes = [c for c in self.changes if c.start_window < windows]
        changed = {(c.model, c.feature) for c in changes if c.feature and c.kind not in BENIGN_KINDS}
        return {
            "scenario": self.name, "description": self.description, "seed": seed, "windows": windows,
            "window_s": window_s, "start": start, "end": start + windows * window_s, "rate": rate,
            "models": list(self.models), "rates": {m: self.rate_of(m, rate) for m in self.models},
            "model_versions": {m: VERSIONS.get(m, "v1") for m in self.models},
            "changes": [asdict(c) for c in changes],
            "stable_features": {m: [f for f in self.features_of(m) if (m, f) not in changed] for m in self.models},
            "segments": list(self.segments),
            "changed_segments": sorted({c.segment for c in changes if c.segment}),
            "malformed_share": self.malformed_share,
            "labelled_share": self.labelled_share,
            "conventions": "window w covers [start + w*window_s, start + (w+1)*window_s); windows are 0-based; "
                           "end_window is inclusive (null: persists; gradual: first window at full magnitude); "
                           "kind 'seasonal' is present in the reference and must not page; kind 'rhythm' is a "
                           "cycle of event time absent from the reference (drift against training, not against "
                           "a seasonal baseline of its period)",
        }


def _column(a: np.ndarray) -> list[Any]:
    """Array → list of JSON-ready Python values (floats rounded to 6 decimals)."""
    if a.dtype.kind == "f":
        return np.round(a, 6).tolist()  # type: ignore[no-any-return]
    return a.tolist()  # type: ignore[no-any-return]


def _rhythm(amplitude: float) -> tuple[Change, ...]:
    return tuple(Change(f, "rhythm", 0, None, amplitude) for f in ("x1", "amount", "device"))


def _concept() -> tuple[Change, ...]:
    drop = sea_accuracy_drop(SEA_DRIFT_VARIANT, SEA_NOISE)
    return (Change("accuracy", "concept_drift", 5, None, drop),)


SCENARIOS: dict[str, ScenarioSpec] = {s.name: s for s in (
    ScenarioSpec("stable", "no change at all: every alarm is a false alarm"),
    ScenarioSpec("sudden_shift", "x1 shifts by +0.5 sd and amount by +1 sd from window 4",
                 changes=(Change("x1", "mean_shift", 4, None, 0.5), Change("amount", "mean_shift", 4, None, 1.0))),
    ScenarioSpec("gradual", "x2's mean ramps linearly from window 3 to +1 sd at window 9, then stays",
                 changes=(Change("x2", "gradual", 3, 9, 1.0),)),
    ScenarioSpec("seasonal", "x1 follows a 6-window sinusoidal cycle (amplitude 0.2 sd) that the reference "
                 "also contains (built from whole cycles): must not page",
                 changes=(Change("x1", "seasonal", 0, None, 0.2),), seasonal=0.2),
    ScenarioSpec("subtle_shift", "x1 and x2 shift by +0.2 sd from window 4 (run it at ~8,000 events per window: "
                 "--rate 27 with 5-minute windows)",
                 changes=(Change("x1", "mean_shift", 4, None, 0.2), Change("x2", "mean_shift", 4, None, 0.2))),
    ScenarioSpec("correlation_flip", "x3 and x4 correlate at +0.85 (also in the reference); from window 5 at "
                 "-0.85, every marginal unchanged: only multivariate drift can see it",
                 changes=(Change("__multivariate__", "correlation_flip", 5, None, 1.7),), correlation=0.85),
    ScenarioSpec("new_category", "country 'BR', never seen in the reference, is 15% of traffic from window 5",
                 changes=(Change("category:country", "new_category", 5, None, 0.15),)),
    ScenarioSpec("concept_drift", "river ConceptDriftStream over SEA (concept 0 → 3) at window 5: P(label|x) "
                 "changes while inputs stay put; accuracy drops ~10 points", concept=True, changes=_concept()),
    ScenarioSpec("score_drift", "scores shift by +1.5 logits from window 5 (score and prediction drift, "
                 "inputs stable)",
                 changes=(Change("__score__", "score_shift", 5, None, 1.5),
                          Change("__prediction__", "score_shift", 5, None, 1.5))),
    ScenarioSpec("latency_regression", "latency x3 from window 6",
                 changes=(Change("latency", "latency_regression", 6, None, 3.0),)),
    ScenarioSpec("error_burst", "error rate 20% in windows 5-6 only",
                 changes=(Change("errors", "error_burst", 5, 6, 0.2),)),
    ScenarioSpec("malformed_storm", "10% of prediction lines are malformed (bad JSON, wrong types, NaN, missing "
                 "fields, negative latency, score > 1); 5% of valid ones carry an unknown field",
                 malformed_share=0.1, extra_field_share=0.05),
    ScenarioSpec("multi_model", "3 models at 5/20/50 events/s (at --rate 20); only 'churn' drifts (x3 +1 sd "
                 "from window 4)", models=("fraud", "churn", "ranker"), rates=(0.25, 1.0, 2.5),
                 changes=(Change("x3", "mean_shift", 4, None, 1.0, model="churn"),)),
    ScenarioSpec("segment_shift", "only country=PL (5% of traffic) moves: its amount +0.25 sd from window 4, while "
                 "the whole model and every other segment stay put; monitored with segments [country, device], "
                 "at 4x the given rate so that PL has enough events per window",
                 changes=(Change("amount", "mean_shift", 4, None, 0.25, segment="country=PL"),),
                 countries=(("US", 0.38), ("DE", 0.2), ("FR", 0.15), ("GB", 0.12), ("IN", 0.1), ("PL", 0.05)),
                 segments=("country", "device"), rates=(4.0,)),
    ScenarioSpec("mixed", "end to end: amount +1 sd from window 4, latency x3 in windows 6-7, 25% errors in "
                 "window 8, 30% of labels flipped from window 9; age and device stay stable",
                 changes=(Change("amount", "mean_shift", 4, None, 1.0),
                          Change("latency", "latency_regression", 6, 7, 3.0),
                          Change("errors", "error_burst", 8, 8, 0.25),
                          Change("accuracy", "accuracy_drop", 9, None, 0.3))),
    ScenarioSpec("daily_rhythm", "a 24-hour rhythm of event time (UTC) that the reference, drawn at midnight, "
                 "lacks: x1 ±1 sd, amount, device mix and traffic (±25%) follow it; from window "
                 f"{RHYTHM_BREAK_WINDOW} x2 shifts +1 sd and amount +0.75 sd (a break on top of the rhythm); "
                 "unlabelled. A month: --window 3h --windows 240 --rate 0.17 (the break on day 28, 12:00)",
                 changes=(*_rhythm(1.0), Change("x2", "mean_shift", RHYTHM_BREAK_WINDOW, None, 1.0),
                          Change("amount", "mean_shift", RHYTHM_BREAK_WINDOW, None, 0.75)),
                 rhythm=1.0, labelled_share=0.0),
)}


def get_scenario(name: str) -> ScenarioSpec:
    """The scenario called ``name``; ``ValueError`` listing the known names otherwise."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; choose from: {', '.join(SCENARIOS)}") from None


def dump_line(item: dict[str, Any] | str) -> bytes:
    """One JSON line (without newline) for an event dict, or a raw malformed line as-is."""
    return item.encode() if isinstance(item, str) else orjson.dumps(item)


def write_scenario(name: str, out: Path, *, seed: int = 0, windows: int = 12, window_s: float = 300.0,
                   rate: float = 20.0, start: float = DEFAULT_START) -> tuple[Path, Path]:
    """Write events as JSON lines to ``out`` and the ground truth to ``out.with_suffix('.truth.json')``."""
    spec = get_scenario(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as fh:
        fh.writelines(dump_line(item) + b"\n" for item in spec.events(
            seed=seed, windows=windows, window_s=window_s, rate=rate, start=start))
    truth_path = out.with_suffix(".truth.json")
    truth = spec.truth(windows=windows, window_s=window_s, start=start, rate=rate, seed=seed)
    truth_path.write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2))
    return out, truth_path


def write_reference_table(name: str, out_dir: Path, *, rows: int = 20_000, seed: int = 0) -> dict[str, Path]:
    """Per model, a CSV of the stable regime: ``out_dir/<model>.reference.csv``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for model, frame in get_scenario(name).reference(rows=rows, seed=seed).items():
        path = out_dir / f"{model}.reference.csv"
        frame.to_csv(path, index=False)
        paths[model] = path
    return paths
