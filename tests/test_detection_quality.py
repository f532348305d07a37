"""Pins the detection benchmark's key outcomes on small seeds, so a regression in detection quality fails CI."""

import pytest

from simulations.bench_detection import DRIFTLINE, FIXED, run

CASES = (("stable", "stable", 1500), ("sudden_shift", "sudden_shift", 1500), ("seasonal", "seasonal", 3000),
         ("subtle_shift", "subtle_shift", 8000), ("low_traffic", "stable", 80),
         ("correlation_flip", "correlation_flip", 3000))


@pytest.fixture(scope="module")
def results():
    return run(seeds=1, windows=7, cases=CASES, sweep=(50, 10_000), detectors=("river PageHinkley",))


def test_driftline_never_cries_wolf(results):
    for case, row in results["by_case"].items():
        assert row[DRIFTLINE]["false_alarms"] == 0, case
    for level, row in results["sweep"].items():
        assert row[DRIFTLINE]["false_alarms"] == 0, level


def test_sudden_half_sd_shift_is_caught_in_its_first_window(results):
    s = results["by_case"]["sudden_shift"][DRIFTLINE]
    assert s["missed"] == 0 and s["within_1_window"] == 1.0


def test_subtle_shift_at_8000_per_window_is_caught_where_fixed_floors_miss_it(results):
    ours, fixed = results["by_case"]["subtle_shift"][DRIFTLINE], results["by_case"]["subtle_shift"][FIXED]
    assert ours["changes"] == 2 and ours["missed"] == 0 and ours["max_delay_windows"] <= 1
    assert fixed["missed"] == 2


def test_correlation_flip_is_caught_by_the_multivariate_statistic_only(results):
    ours, fixed = results["by_case"]["correlation_flip"][DRIFTLINE], results["by_case"]["correlation_flip"][FIXED]
    assert ours["changes"] == 1 and ours["missed"] == 0 and ours["max_delay_windows"] <= 1
    assert ours["false_alarms"] == 0  # never before the flip, and no marginal flags
    assert fixed["changes"] == 0 and fixed["false_alarms"] == 0  # univariate statistics see nothing


def test_fewer_false_alarms_than_river_at_no_worse_delay(results):
    ours, river = results["overall"][DRIFTLINE], results["overall"]["river PageHinkley"]
    assert ours["false_alarms_per_1000"] < river["false_alarms_per_1000"]
    assert ours["mean_delay_windows"] <= river["mean_delay_windows"] + 1e-9 or river["missed"] > ours["missed"]
