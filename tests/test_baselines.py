"""monitor/baselines.py: blocks, the trailing running sum, seasonal lookups, admission, persistence, memory."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.baselines import Baselines, describe
from monitor.config import ConfigError, MonitorSettings, load_settings
from monitor.core.aggregate import WindowState
from monitor.core.binning import FeatureBinner
from monitor.core.reference import build_profile
from monitor.types import WindowRange

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a multiple of every block size used here
RNG = np.random.default_rng(0)
REF = build_profile("m", pd.DataFrame({"x": RNG.normal(0, 1, 4000), "c": RNG.choice(["a", "b", "c"], 4000)}),
                    built_at="2026-01-01T00:00:00Z")
BINNER = FeatureBinner(REF)


def _settings(**baselines: object) -> MonitorSettings:
    return MonitorSettings(window="1h", labels_topic="", baselines={"block": "1h", "min_events": 50, **baselines})


def _state(n: int, shift: float = 0.0, seed: int = 0, cats: tuple[float, ...] = (1 / 3, 1 / 3, 1 / 3)) -> WindowState:
    rng = np.random.default_rng(seed)
    s = WindowState.empty(BINNER)
    num, missing, oor = BINNER.numeric_counts(rng.normal(shift, 1, (n, 1)))
    cat, cmissing, unseen = BINNER.categorical_counts([list(rng.choice(["a", "b", "c"], n, p=list(cats)))])
    s.num_counts, s.num_missing, s.num_oor = num, missing, oor
    s.cat_counts, s.cat_missing, s.cat_unseen = cat, cmissing, unseen
    s.events = n
    return s


def _hour(h: int) -> WindowRange:
    return WindowRange(T0 + h * 3600, T0 + (h + 1) * 3600)


def _step(b: Baselines, h: int, state: WindowState, model: str = "m") -> list:
    rng = _hour(h)
    compared = b.compare(model, rng, state, BINNER)
    b.admit(model, rng, state, BINNER, compared)
    return compared


# -- the trailing running sum ------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 30), st.integers(0, 120)), min_size=1, max_size=40))
def test_trailing_running_sum_equals_the_blocks_of_the_last_length(steps: list[tuple[int, int]]) -> None:
    """Whatever the gaps between windows, the running sum (subtracting blocks that fall out) is the sum of
    the admitted windows whose block starts at or after the block of ``start − length``."""
    b = Baselines(_settings(trailing="6h", block="2h", exclude_drifted=False, min_events=1))
    h = 0
    admitted: list[tuple[int, WindowState]] = []
    for gap, n in steps:
        h += gap
        before = [s for hh, s in admitted if (hh // 2) >= (h - 6) // 2]
        compared = _step(b, h, _state(n, seed=h))
        want = sum(s.events for s in before)
        got = next((c.events for c in compared if c.name == "trailing"), 0)
        assert got == (want if want >= 1 else 0)
        if n:
            admitted.append((h, _state(n, seed=h)))
        ring = b.rings["m"]
        if ring.trail is not None:
            direct = sum((blk.num for i, blk in ring.blocks.items() if i >= ring.trail_lo), BINNER.empty_numeric())
            assert (ring.trail.num == direct).all()


def test_trailing_counts_exactly_the_admitted_windows() -> None:
    b = Baselines(_settings(trailing="3h"))
    for h in range(3):
        _step(b, h, _state(100 + h, seed=h))
    (trail,) = _step(b, 3, _state(100, seed=9))
    assert trail.name == "trailing" and trail.events == 100 + 101 + 102
    (trail,) = _step(b, 4, _state(100, seed=9))
    assert trail.events == 101 + 102 + 100  # hour 0 fell out


def test_seasonal_is_the_same_block_one_period_earlier_pooled_over_k_periods() -> None:
    b = Baselines(_settings(seasonal={"period": "1d", "periods": 2}))
    for h in range(48):
        _step(b, h, _state(60 + h, seed=h))
    (seasonal,) = _step(b, 48 + 5, _state(80, seed=99))
    assert seasonal.name == "seasonal" and seasonal.events == (60 + 29) + (60 + 5)
    assert seasonal.describe == "seasonal 1d ×2"


# -- admission ----------------------------------------------------------------------------------------------

def test_a_window_that_drifted_against_every_baseline_is_left_out_then_adopted() -> None:
    b = Baselines(_settings(trailing="6h", seasonal="1d", adopt_after="3h"))
    for h in range(30):
        _step(b, h, _state(400, seed=h))
    ring = b.rings["m"]
    compared = _step(b, 30, _state(400, shift=1.5, seed=30))
    assert {c.name for c in compared} == {"trailing", "seasonal"}
    assert all(any(d.drifted for d in c.drift) for c in compared)
    assert b._index(_hour(30).start) not in ring.blocks  # left out
    assert ring.excluded_since == _hour(30).start
    for h in range(31, 33):
        _step(b, h, _state(400, shift=1.5, seed=h))
    assert not {b._index(_hour(h).start) for h in range(30, 33)} & set(ring.blocks)
    _step(b, 33, _state(400, shift=1.5, seed=33))  # drifting for 3 h: the new normal
    assert ring.blocks[b._index(_hour(33).start)].events == 400


def test_drift_against_only_the_trailing_baseline_does_not_leave_a_window_out() -> None:
    """A rhythm the seasonal baseline knows shows only against the trailing one: the window is admitted."""
    b = Baselines(_settings(trailing="6h", seasonal="1d"))
    for h in range(60):
        _step(b, h, _state(400, shift=1.5 if h % 24 == 12 else 0.0, seed=h))
    compared = {c.name: c for c in _step(b, 60, _state(400, shift=1.5, seed=7))}  # day 2, 12:00 again
    assert any(d.drifted for d in compared["trailing"].drift)
    assert not any(d.drifted for d in compared["seasonal"].drift)
    assert b.rings["m"].blocks[b._index(_hour(60).start)].windows == 1


def test_configured_exclusions_and_hopping_windows_are_not_admitted() -> None:
    b = Baselines(_settings(trailing="1d", exclude=[{"start": "2026-01-01T02:00:00Z", "end": "2026-01-01T03:30:00Z",
                                                     "reason": "incident"}]))
    for h in range(5):
        _step(b, h, _state(100, seed=h))
    ring = b.rings["m"]
    assert sorted(ring.blocks) == [b._index(_hour(h).start) for h in (0, 1, 4)]
    hopping = WindowRange(T0 + 5.5 * 3600, T0 + 6.5 * 3600)
    assert not b.admit("m", hopping, _state(100), BINNER, [])
    other = Baselines(_settings(trailing="1d", exclude=[{"start": "2026-01-01T02:00:00Z", "end": "2026-01-01T03:00:00Z",
                                                         "models": ["someone-else"]}]))
    for h in range(3):
        _step(other, h, _state(100, seed=h))
    assert len(other.rings["m"].blocks) == 3


def test_a_new_reference_starts_the_baselines_over() -> None:
    b = Baselines(_settings(trailing="1d"))
    for h in range(3):
        _step(b, h, _state(100, seed=h))
    ref2 = build_profile("m", pd.DataFrame({"x": RNG.normal(5, 1, 4000), "c": RNG.choice(["a", "b"], 4000)}))
    binner2 = FeatureBinner(ref2)
    s = WindowState.empty(binner2)
    s.num_counts, _, _ = binner2.numeric_counts(RNG.normal(5, 1, (100, 1)))
    s.cat_counts, _, _ = binner2.categorical_counts([list(RNG.choice(["a", "b"], 100))])
    s.events = 100
    assert b.compare("m", _hour(3), s, binner2) == []  # nothing on the new bins yet
    b.admit("m", _hour(3), s, binner2, [])
    assert [blk.events for blk in b.rings["m"].blocks.values()] == [100]


def test_without_sample_baselines_nothing_is_kept() -> None:
    b = Baselines(_settings())
    for h in range(3):
        assert _step(b, h, _state(100, seed=h)) == []
    assert b.rings == {} and b.nbytes("m") == 0


# -- memory --------------------------------------------------------------------------------------------------

def test_memory_is_bounded_by_the_ring() -> None:
    b = Baselines(_settings(trailing="12h", seasonal={"period": "1d", "periods": 2}, block="2h"))
    for h in range(24 * 10):
        _step(b, h, _state(60, seed=h))
    ring = b.rings["m"]
    assert len(ring.blocks) <= 48 // 2 + 2  # retain 2 days of 2 h blocks, plus the current and one spare
    per_block = BINNER.empty_numeric().nbytes + BINNER.empty_categorical().nbytes
    assert b.nbytes("m") <= (48 // 2 + 3) * per_block


# -- persistence ---------------------------------------------------------------------------------------------

def _run(b: Baselines, hours: range, shift_at: int | None = None) -> tuple[list, list]:
    """Step through ``hours``; return (checkpoint, records written) as JSON round trips, as the cycle does."""
    records = []
    for h in hours:
        _step(b, h, _state(200, shift=1.5 if h == shift_at else 0.0, seed=h))
        records += [(k, orjson.loads(orjson.dumps(v))) for k, v in b.records("m")]
    return orjson.loads(orjson.dumps(b.checkpoint("m"))), records


@pytest.mark.parametrize("records_first", [True, False])
def test_a_new_owner_restored_from_checkpoint_and_records_compares_the_same(records_first: bool) -> None:
    cfg = {"trailing": "5h", "seasonal": "4h", "block": "2h"}
    a = Baselines(_settings(**cfg))
    cp, records = _run(a, range(20), shift_at=13)
    assert records and all(k.startswith("baseline:") for k, _ in records)
    latest = dict(records)  # a compacted topic keeps the newest record per key
    assert len(latest) <= 5 // 2 + 1 + 2
    b = Baselines(_settings(**cfg))
    if records_first:
        for rec in latest.values():
            b.restore_record(rec)
        b.restore("m", cp)
    else:
        b.restore("m", cp)
        for rec in latest.values():
            b.restore_record(rec)
    for h in range(20, 26):
        s = _state(200, seed=100 + h)
        ca, cb = a.compare("m", _hour(h), s, BINNER), b.compare("m", _hour(h), s, BINNER)
        assert ca == cb and ca
        a.admit("m", _hour(h), s, BINNER, ca)
        b.admit("m", _hour(h), s, BINNER, cb)


def test_records_of_blocks_after_the_checkpoint_are_ignored() -> None:
    """An owner that wrote a closed block but crashed before its checkpoint: the next owner re-finalizes
    those windows from the checkpoint's current block, never counting them twice."""
    a = Baselines(_settings(trailing="6h", block="2h"))
    cp, _ = _run(a, range(7))
    _, later = _run(a, range(7, 10))
    b = Baselines(_settings(trailing="6h", block="2h"))
    b.restore("m", cp)
    for _, rec in later:
        b.restore_record(rec)
    assert max(b.rings["m"].blocks) == cp["current"]
    assert b.rings["m"].blocks[cp["current"]].windows == 1  # hour 6 only


def test_restore_ignores_other_block_sizes_and_drops_newly_excluded_blocks() -> None:
    a = Baselines(_settings(trailing="6h", block="2h"))
    cp, records = _run(a, range(9))
    other = Baselines(_settings(trailing="6h", block="1h"))
    other.restore("m", cp)
    for _, rec in records:
        other.restore_record(rec)
    assert other.rings.get("m") is None or not other.rings["m"].blocks
    excl = Baselines(_settings(trailing="6h", block="2h", exclude=[
        {"start": "2026-01-01T02:30:00Z", "end": "2026-01-01T03:00:00Z"}]))
    excl.restore("m", cp)
    for _, rec in records:
        excl.restore_record(rec)
    assert excl._index(_hour(2).start) not in excl.rings["m"].blocks
    assert excl._index(_hour(4).start) in excl.rings["m"].blocks


# -- configuration --------------------------------------------------------------------------------------------

def test_short_and_long_forms_and_per_model_overrides() -> None:
    cfg = MonitorSettings(baselines={"trailing": "7d", "seasonal": {"period": "1w", "periods": 4},
                                     "models": {"batch": {"trailing": None, "training": {"alerts": False}}}}).baselines
    assert describe(cfg.plan("fraud")) == "trailing 7d, seasonal 1w ×4"
    batch = cfg.plan("batch")
    assert batch.trailing is None and batch.seasonal is not None and not batch.training.alerts
    assert batch.training.retrain  # keys not given keep their defaults


@pytest.mark.parametrize(("yaml", "message"), [
    ("window: 7m\nbaselines: {trailing: 7d}", "baselines.block (1h) must be a multiple of the window size"),
    ("baselines: {seasonal: 90m}", "baselines.seasonal.period (90m) must be a multiple of baselines.block"),
    ("baselines: {trailing: 30m}", "baselines.trailing.length (30m) must be at least baselines.block"),
    ("baselines: {models: {m: {seasonal: 2h30m}}}", "baselines.models.m.seasonal.period"),
    ("baselines: {trailing: sometime}", "baselines.trailing.length"),
    ("baselines: {seasonal: {period: 1d, periods: 0}}", "baselines.seasonal.periods"),
    ("baselines: {exclude: [{start: 2026-01-02T00:00:00Z, end: 2026-01-01T00:00:00Z}]}", "baselines.exclude.0"),
    ("baselines: {trailng: 7d}", "baselines.trailng: unknown setting"),
])
def test_bad_baselines_settings_name_the_key(tmp_path, yaml: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(path)


def test_the_block_size_is_not_checked_without_sample_baselines() -> None:
    assert MonitorSettings(window="7m").window == "7m"
