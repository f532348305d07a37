"""Pins the detection benchmark's key outcomes on small seeds, so a regression in detection quality fails CI."""

import pytest

from simulations.bench_detection import run


@pytest.fixture(scope="module")
def results():
    return run(seeds=2, windows=8, rate=5.0, scenarios=("stable", "sudden_shift"),
               detectors=("river PageHinkley",), evidently=False)


def test_driftline_never_cries_wolf_on_stable_traffic(results):
    for s in results["by_scenario"]["stable"]["Driftline"]:
        assert s["false_alarms_per_1000"] == 0.0


def test_sudden_half_sd_shift_is_caught_in_its_first_window(results):
    for s in results["by_scenario"]["sudden_shift"]["Driftline"]:
        assert s["missed"] == 0 and s["within_1_window"] == 1.0


def test_fewer_false_alarms_than_river_at_no_worse_delay(results):
    ours, river = results["overall"]["Driftline"], results["overall"]["river PageHinkley"]
    assert ours["false_alarms_per_1000"] < river["false_alarms_per_1000"]
    assert ours["mean_delay_windows"] <= river["mean_delay_windows"] + 1e-9
