"""Reference profiles: golden tests on small tables, readers, round trip, versioning."""

import json

import numpy as np
import pandas as pd
import pytest

from monitor.core.binning import FeatureBinner
from monitor.core.reference import FORMAT_VERSION, ReferenceProfile, build_profile, read_table
from monitor.core.sketch import LatencySketch

TABLE = pd.DataFrame({
    "amount": np.arange(1, 1001, dtype=float),
    "items": np.tile([1, 2, 2, 3], 250),
    "constant": np.full(1000, 7.0),
    "empty": [None] * 1000,
    "country": ["US"] * 600 + ["DE"] * 300 + [None] * 100,
    "flag": [True, False] * 500,
    "score": np.linspace(0, 1, 1000),
    "prediction": [1, 0] * 500,
    "label": [1, 0] * 450 + [0, 1] * 50,
    "request_id": [f"r{i}" for i in range(1000)],
})


def test_golden_profile():
    p = build_profile("m", TABLE, fine_bins=10, psi_bins=5, built_at="2026-01-01T00:00:00Z")
    assert set(p.numeric) == {"amount", "items", "constant"} and set(p.categorical) == {"country", "flag"}
    amount = p.numeric["amount"]
    assert amount.edges.tolist() == pytest.approx(np.quantile(np.arange(1, 1001), np.arange(1, 10) / 10).tolist())
    assert amount.proportions.sum() == pytest.approx(1.0) and not amount.discrete
    assert amount.psi_starts.tolist() == [0, 2, 4, 6, 8]
    items = p.numeric["items"]
    assert items.discrete and items.edges.tolist() == [2.0, 3.0]
    assert items.proportions.tolist() == [0.25, 0.5, 0.25]
    const = p.numeric["constant"]
    assert const.edges.tolist() == [7.0] and const.proportions.tolist() == [0.0, 1.0]
    country = p.categorical["country"]
    assert country.categories == ("US", "DE") and country.missing_rate == pytest.approx(0.1)
    assert country.proportions.tolist() == pytest.approx([600 / 900, 300 / 900, 0.0])
    assert p.categorical["flag"].categories in (("true", "false"), ("false", "true"))
    assert p.task == "classification" and p.performance["accuracy"] == pytest.approx(0.9)
    assert p.score is not None and p.prediction is not None


def test_binner_on_golden_profile_counts_unseen_missing_and_out_of_range():
    p = build_profile("m", TABLE, fine_bins=10, psi_bins=5)
    b = FeatureBinner(p)
    j = b.numeric_names.index("amount")
    vals = np.full((4, len(b.numeric_names)), 5.0)
    vals[:, j] = [0.5, 500.0, 2000.0, np.nan]
    counts, missing, oor = b.numeric_counts(vals)
    assert missing[j] == 1 and oor[j] == 2 and counts[j].sum() == 3
    cols = [["US", "BR", None, "DE"] if name == "country" else ["true"] * 4 for name in b.categorical_names]
    ccounts, cmissing, unseen = b.categorical_counts(cols)
    k = b.categorical_names.index("country")
    assert (cmissing[k], unseen[k], ccounts[k].sum()) == (1, 1, 3)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_readers(tmp_path, suffix):
    path = tmp_path / f"ref{suffix}"
    small = TABLE.head(50).drop(columns=["empty"])
    if suffix == ".csv":
        small.to_csv(path, index=False)
    elif suffix == ".parquet":
        small.to_parquet(path)
    else:
        with path.open("w") as fh:
            for row in small.to_dict("records"):
                ev = {"model": "m", "request_id": row.pop("request_id"), "timestamp": 1,
                      "prediction": row.pop("prediction"), "score": row.pop("score"), "label": row.pop("label"),
                      "features": row}
                fh.write(json.dumps(ev) + "\n")
    t = read_table(path)
    assert {"amount", "items", "country", "prediction", "score"} <= set(t.columns)
    assert len(t) == 50


def test_save_load_round_trip_and_version_check(tmp_path):
    p = build_profile("m", TABLE)
    path = tmp_path / "p.json"
    p.save(path)
    q = ReferenceProfile.load(path)
    assert q.model == "m" and q.numeric["amount"].edges.tolist() == p.numeric["amount"].edges.tolist()
    assert q.performance == p.performance
    data = json.loads(path.read_text())
    data["format_version"] = FORMAT_VERSION + 1
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="format_version"):
        ReferenceProfile.load(path)
    path.write_text("not json")
    with pytest.raises(ValueError, match="not a JSON reference profile"):
        ReferenceProfile.load(path)


def test_sketch_quantiles_within_one_percent_and_merge():
    rng = np.random.default_rng(0)
    a, b = rng.lognormal(3, 1, 5000), rng.lognormal(4, 0.5, 3000)
    s1, s2 = LatencySketch(), LatencySketch()
    s1.add(a)
    s2.add(b)
    m = s1.merge(s2)
    both = np.concatenate([a, b])
    for q in (0.5, 0.9, 0.95, 0.99):
        exact = np.percentile(both, q * 100, method="lower")
        assert abs(m.quantile(q) - exact) <= 0.0101 * exact
    assert m.count == both.size and m.max == both.max()
    assert m.mean == pytest.approx(both.mean(), rel=1e-6)
    assert LatencySketch.from_dict(m.to_dict()).quantile(0.9) == m.quantile(0.9)
