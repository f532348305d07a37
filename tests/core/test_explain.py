"""'What moved' lines (monitor/core/explain.py) and the bounded error-message count (monitor/core/topk.py)."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core import explain, topk
from monitor.core.aggregate import Batch, WindowState
from monitor.core.binning import FeatureBinner
from monitor.core.reference import CategoricalProfile, build_profile
from monitor.types import PredictionEvent

RNG = np.random.default_rng(11)
REF = build_profile("m", pd.DataFrame({
    "amount": RNG.lognormal(3.0, 0.8, 20_000),
    "items": RNG.poisson(2.0, 20_000).clip(0, 6).astype(float),
    "device": RNG.choice(["mobile", "desktop", "tablet"], 20_000, p=[0.6, 0.3, 0.1]),
}))
AMOUNT = REF.numeric["amount"]


def counts(values: np.ndarray) -> np.ndarray:
    return np.bincount(np.searchsorted(AMOUNT.edges, values, side="right"), minlength=AMOUNT.edges.size + 1)


def shares(line: str) -> tuple[float, float]:
    m = re.search(r": ([\d.]+)% → ([\d.]+)%", line)
    assert m, line
    return float(m.group(1)) / 100, float(m.group(2)) / 100


def test_a_mean_shift_reads_as_a_tail_gaining_share_with_exact_shares_and_medians():
    window = RNG.lognormal(3.0 + 0.8, 0.8, 5_000)  # +1 sd in log space
    line = explain.numeric_moved(AMOUNT, counts(window))
    assert line is not None and line.startswith("share above the reference's p"), line
    level = int(re.search(r"p(\d+) \(([\d.]+)\)", line).group(1))
    cut = float(re.search(r"p\d+ \(([\d.]+)\)", line).group(1))
    r, w = shares(line)
    # the shares are exact bin sums: compare with the raw values at that cut
    assert abs(r - (1 - level / 100)) <= 0.011
    assert abs(w - float(np.mean(window >= cut))) <= 0.01
    assert w - r > 0.3
    then, now = (float(x) for x in re.search(r"median ([\d.]+) → ([\d.]+)", line).groups())
    assert abs(then - np.exp(3.0)) / np.exp(3.0) < 0.03
    assert abs(now - np.median(window)) / np.median(window) < 0.03


def test_a_wider_distribution_reads_as_the_middle_losing_share():
    line = explain.numeric_moved(AMOUNT, counts(RNG.lognormal(3.0, 1.6, 5_000)))
    assert line is not None and line.startswith("share between the reference's p"), line
    r, w = shares(line)
    assert w < r - 0.2


def test_a_window_beyond_the_reference_range_says_so():
    line = explain.numeric_moved(AMOUNT, counts(np.full(100, AMOUNT.max * 10)))
    assert line is not None and "→ 100%" in line and "median" in line and "→ above" in line, line


def test_empty_window_says_nothing():
    assert explain.numeric_moved(AMOUNT, np.zeros(AMOUNT.edges.size + 1)) is None


def test_a_discrete_feature_is_described_by_its_values():
    items = REF.numeric["items"]
    assert items.discrete
    window = np.full(1000, 6.0)
    c = np.bincount(np.searchsorted(items.edges, window, side="right"), minlength=items.edges.size + 1)
    line = explain.numeric_moved(items, c)
    assert line is not None and line.startswith("gained: 6 (") and "→ 100%)" in line and "lost: " in line, line


def test_categories_gained_and_lost():
    device = REF.categorical["device"]
    cols = [["tablet"] * 500 + ["mobile"] * 300 + ["watch"] * 200]
    c, _, _ = FeatureBinner(REF).categorical_counts(cols)
    line = explain.categorical_moved(device, c[0])
    assert line is not None
    gained, lost = line.split("; ")
    assert gained.startswith('gained: "tablet" (10% → 50%), categories new to the reference (0% → 20%)'), line
    assert lost.startswith("lost: ") and '"desktop" (31% → 0%)' in lost and '"mobile" (60% → 30%)' in lost, line
    assert explain.categorical_moved(CategoricalProfile("c", ("a",), np.array([1.0, 0.0]), 1, 0.0),
                                     np.array([10, 0])) is None  # nothing moved


def test_what_moved_reads_the_binner_layout_and_only_the_requested_features():
    binner = FeatureBinner(REF)
    n = 2_000
    values = np.column_stack([RNG.lognormal(4.0, 0.8, n) if name == "amount" else RNG.poisson(2.0, n)
                              for name in binner.numeric_names]).astype(float)
    num, _, _ = binner.numeric_counts(values)
    cat, _, _ = binner.categorical_counts([["desktop"] * n])
    got = explain.what_moved(REF, binner.numeric_names, num, binner.categorical_names, cat, {"amount", "device"})
    assert set(got) == {"amount", "device"}
    assert got["amount"].startswith("share above") and got["device"].startswith('gained: "desktop"')
    assert explain.what_moved(None, binner.numeric_names, num, binner.categorical_names, cat, {"amount"}) == {}


def test_error_and_latency_lines():
    assert explain.errors_moved({}, 0) is None
    line = explain.errors_moved({"a": 1, "b": 7, "c": 2, "d": 1}, 11)
    assert line == 'top errors: "b" 7 (64%), "c" 2 (18%), "a" 1 (9.1%)'
    assert explain.latency_moved(30.0, None) == "p95 30.0 ms (no baseline yet)"


# -- topk -------------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from("abcdefgh"), max_size=60), st.lists(st.sampled_from("abcdefgh"), max_size=60))
def test_merge_is_addition_below_the_cap(left: list[str], right: list[str]) -> None:
    a: dict[str, int] = {}
    b: dict[str, int] = {}
    topk.add_strings(a, left)
    topk.add_strings(b, right)
    topk.add_counts(a, b)
    assert a == dict(Counter(left + right))


def test_frequent_messages_survive_a_long_tail_of_one_offs():
    summary: dict[str, int] = {}
    stream = []
    for i in range(3_000):
        stream.append(f"request {i} failed: id {i * 7919}")  # one-off messages (ids inside)
        if i % 10 == 0:
            stream.append("upstream timeout")  # 300 of 3,300 > total / cap
    for chunk in range(0, len(stream), 100):
        topk.add_strings(summary, stream[chunk:chunk + 100])
    assert len(summary) == topk.CAP
    assert topk.top(summary, 1)[0][0] == "upstream timeout" and summary["upstream timeout"] >= 300
    topk.add_strings(summary, ["x" * 1000])
    assert max(len(k) for k in summary) == topk.MAX_CHARS


def _pred(i: int, error: str | None) -> PredictionEvent:
    return PredictionEvent(model="m", request_id=str(i), timestamp=float(i), features={}, prediction=None if error
                           else 1, error=error, latency_ms=5.0)


def test_window_state_counts_error_messages_and_merges_them():
    evs = [_pred(i, "timeout" if i % 3 == 0 else ("oom" if i % 5 == 0 else None)) for i in range(60)]
    whole, left, right = WindowState.empty(None), WindowState.empty(None), WindowState.empty(None)
    batch = Batch.build(evs, None)
    whole.ingest(batch, np.arange(60), None)
    left.ingest(batch, np.arange(25), None)
    right.ingest(batch, np.arange(25, 60), None)
    left.merge_in(right)
    assert whole.error_top == {"timeout": 20, "oom": 8} == left.error_top
    assert whole.errors == 28 == sum(whole.error_top.values())
