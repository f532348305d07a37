"""Per-baseline policy: each sample baseline pages as its own alert (label ``baseline``), and what each
baseline may do — page, count towards retraining — follows its settings (monitor/core/policy.py)."""

from __future__ import annotations

import numpy as np

from monitor.baselines import decide_sample_drift
from monitor.config import PolicyConfig
from monitor.core.binning import StatResult
from monitor.core.drift.twosample import chi2_2samp
from monitor.core.policy import BaselineDrift, Policy, decide_drift
from tests.core.test_policy import drift_stats, facts

CFG = PolicyConfig(retrain_consecutive_windows=2, retrain_cooldown="0s")
DRIFTED = decide_drift(drift_stats(0.4, 0.3, 1e-12), CFG, {}, 1000)
CLEAN = decide_drift(drift_stats(0.01, 0.02, 0.8), CFG, {}, 1000)


def trailing(drift=DRIFTED, **kw) -> BaselineDrift:
    return BaselineDrift("trailing", drift, moved={"x": "share above the baseline's p90"}, events=20_000,
                         describe="trailing 7d", **kw)


def test_each_baseline_pages_as_its_own_alert() -> None:
    pol = Policy(CFG)
    alerts, _ = pol.evaluate(facts(0, DRIFTED, baselines=[trailing()]))
    by = {(a.labels.get("baseline"), a.severity) for a in alerts}
    assert by == {(None, "warning"), (None, "critical"), ("trailing", "warning"), ("trailing", "critical")}
    page = next(a for a in alerts if a.labels.get("baseline") == "trailing" and a.severity == "warning")
    assert page.annotations["summary"].startswith("m: x drifted against the trailing 7d baseline (psi=0.4")
    assert "What moved: share above the baseline's p90." in page.annotations["description"]
    # the trailing alert resolves on its own: training still drifted, the trailing baseline caught up
    pol.evaluate(facts(1, DRIFTED, baselines=[trailing(CLEAN)]))
    alerts, _ = pol.evaluate(facts(2, DRIFTED, baselines=[trailing(CLEAN)]))
    assert {(a.status, a.labels.get("baseline")) for a in alerts} == {("resolved", "trailing")}


def test_a_baseline_without_alerts_never_pages() -> None:
    alerts, _ = Policy(CFG).evaluate(facts(0, CLEAN, baselines=[trailing(alerts=False)]))
    assert alerts == []


def test_training_may_be_kept_for_retraining_only() -> None:
    pol = Policy(CFG)
    out = [pol.evaluate(facts(i, DRIFTED, training_alerts=False)) for i in range(2)]
    assert all(alerts == [] for alerts, _ in out)
    assert [len(r) for _, r in out] == [0, 1]  # two drifted windows in a row: one retraining request


def test_only_baselines_allowed_to_ask_for_retraining_do() -> None:
    pol = Policy(CFG)
    runs = [pol.evaluate(facts(i, CLEAN, baselines=[trailing()]))[1] for i in range(3)]
    assert runs == [[], [], []]  # trailing drift pages, never retrains (the default)
    pol = Policy(CFG)
    runs = [pol.evaluate(facts(i, CLEAN, baselines=[trailing(retrain=True)]))[1] for i in range(2)]
    assert len(runs[1]) == 1 and runs[1][0].evidence[0].feature == "x"
    pol = Policy(CFG)
    runs = [pol.evaluate(facts(i, DRIFTED, training_retrain=False))[1] for i in range(3)]
    assert runs == [[], [], []]


def test_chi2_effect_size_uses_the_effective_sample_size() -> None:
    """Against a huge baseline the two-sample Cramér's V is the one-sample V; against an equal-sized one the
    same shares give the same V (the table's χ² halves, n_eff halves)."""
    window = np.array([600, 400])
    for m_scale in (1, 1000):
        base = np.array([500, 500]) * m_scale
        stat, p = chi2_2samp(base, window)
        (d,) = decide_sample_drift([StatResult("c", "chi2", float(stat), float(p), 1000)],
                                   {"c": int(base.sum())}, CFG, {"c": 2}, 1000)
        assert abs(d.score - 0.2) < 0.005, (m_scale, d.score)  # V of 60/40 against 50/50
        assert d.n == 1000
    unscaled = decide_drift([StatResult("c", "chi2", float(chi2_2samp(np.array([500, 500]), window)[0]), 1e-9, 1000)],
                            CFG, {"c": 2}, 1000)
    assert unscaled[0].score < 0.15  # without the rescaling an equal-sized baseline would hide the effect
