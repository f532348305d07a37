"""A simulated month of the ``daily_rhythm`` scenario: a 24-hour pattern absent from the training sample,
then a break on top of it. Against the seasonal baseline (same time yesterday) the month is quiet; against
training the rhythm shows every day; the break is flagged in its first window against the seasonal and the
trailing baseline. Coarse windows (3 h) keep it fast: 240 windows, ~430,000 events, through the real
pipeline (stage 1 → stage 2 → finalize)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from monitor.config import MonitorSettings
from monitor.core.reference import build_profile
from monitor.events import parse_timestamp
from monitor.pipeline import Monitor
from monitor.scenarios import DEFAULT_START, RHYTHM_BREAK_WINDOW, get_scenario
from monitor.types import Emission, PredictionEvent

WINDOW_S = 3 * 3600.0
WINDOWS = 240  # 30 days
PER_DAY = int(86_400 / WINDOW_S)
pytestmark = pytest.mark.slow
SETTINGS = MonitorSettings(window="3h", labels_topic="", baselines={
    "trailing": "7d", "seasonal": "1d", "block": "3h"})


def end_of(w: int) -> int:
    return int(round((DEFAULT_START + (w + 1) * WINDOW_S) * 1e9))


@pytest.fixture(scope="module")
def month() -> Emission:
    spec = get_scenario("daily_rhythm")
    ref = build_profile("fraud", spec.reference(rows=20_000, seed=0)["fraud"].drop(columns=["label"]),
                        built_at="2026-01-01T00:00:00Z")
    events = [PredictionEvent(e["model"], e["request_id"], parse_timestamp(e["timestamp"]), e["features"],
                              e["prediction"], e["model_version"], e.get("score"), e.get("latency_ms"), e.get("error"))
              for e in spec.events(seed=0, windows=WINDOWS, window_s=WINDOW_S, rate=0.17)
              if isinstance(e, dict)]
    mon = Monitor(SETTINGS, {"fraud": ref})
    mon.observe(events)
    return mon.close_all()


def drift(em: Emission, baseline: str) -> dict[tuple[int, str, str], dict[str, Any]]:
    """(window end ns, feature, method) → fields of the drift points against ``baseline``."""
    out = {}
    for p in em.points:
        if p.measurement == "drift" and (p.tag("baseline") or "training") == baseline:
            out[(p.time_ns, p.tag("feature") or "", p.tag("method") or "")] = dict(p.fields)
    return out


def drifted_windows(points: dict[tuple[int, str, str], dict[str, Any]], feature: str | None = None) -> set[int]:
    return {t for (t, f, _), fields in points.items() if fields["drifted"] and feature in (None, f)}


def firing(em: Emission, baseline: str | None) -> list[Any]:
    return [a for a in em.alerts if a.status == "firing" and a.labels.get("baseline") == baseline
            and a.labels["alertname"] in ("FeatureDrift", "PredictionDrift")]


def test_no_false_alarm_against_the_seasonal_baseline_in_a_month(month: Emission) -> None:
    seasonal = drift(month, "seasonal")
    compared = {t for t, _, _ in seasonal}
    # compared from the second day on (the first has no "yesterday") — except the day after the break: the
    # break's first day drifted against both baselines, so it was left out of them, and "yesterday" is empty
    # there until the drift is adopted as the new normal (adopt_after: 1d)
    left_out = range(RHYTHM_BREAK_WINDOW + PER_DAY, RHYTHM_BREAK_WINDOW + 2 * PER_DAY)
    assert compared == {end_of(w) for w in range(PER_DAY, WINDOWS) if w not in left_out}
    before_break = {t for t in drifted_windows(seasonal) if t < end_of(RHYTHM_BREAK_WINDOW)}
    assert before_break == set(), sorted(before_break)
    assert [a for a in firing(month, "seasonal") if a.starts_at < end_of(RHYTHM_BREAK_WINDOW) / 1e9] == []


def test_against_training_the_rhythm_shows_every_day(month: Emission) -> None:
    training = drift(month, "training")
    x1 = drifted_windows(training, "x1")
    assert len(x1) >= WINDOWS // 2  # away from midnight, x1 is ±1 sd off the training sample
    days = {int((t / 1e9 - WINDOW_S - DEFAULT_START) // 86_400) for t in x1}  # of the window start
    assert days == set(range(30))
    pages = [a for a in firing(month, None) if a.labels.get("feature") == "x1"]
    assert len(pages) >= 30  # at least one x1 page a day against training


def test_the_break_is_flagged_in_its_first_window_against_seasonal_and_trailing(month: Emission) -> None:
    t_break = end_of(RHYTHM_BREAK_WINDOW)
    seasonal, trailing = drift(month, "seasonal"), drift(month, "trailing")
    assert seasonal[(t_break, "x2", "ks")]["drifted"] and seasonal[(t_break, "amount", "ks")]["drifted"]
    assert trailing[(t_break, "x2", "ks")]["drifted"]
    # x2 has no rhythm: against the trailing week it was quiet until the break
    assert min(drifted_windows(trailing, "x2")) == t_break
    pages = {(a.labels["baseline"], a.labels["feature"]) for a in month.alerts
             if a.status == "firing" and a.starts_at == t_break / 1e9 and "baseline" in a.labels}
    assert {("seasonal", "x2"), ("seasonal", "amount"), ("trailing", "x2")} <= pages
    page = next(a for a in month.alerts if a.labels.get("baseline") == "seasonal" and a.labels.get("feature") == "x2")
    assert "against the seasonal 1d baseline" in page.annotations["summary"]
    assert "baseline's" in page.annotations["description"]  # what moved, against the baseline's quantiles
    assert "var-baseline=seasonal" in page.generator_url


def test_seasonal_points_are_tagged_and_training_points_are_not(month: Emission) -> None:
    tags: dict[str, set[str]] = defaultdict(set)
    for p in month.points:
        if p.measurement in ("drift", "drift_summary"):
            tags[p.measurement].add(p.tag("baseline") or "")
    assert tags["drift"] == tags["drift_summary"] == {"", "trailing", "seasonal"}
