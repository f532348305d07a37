"""Reference profiles: golden tests on small tables, readers, round trip, versioning."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from monitor.core.binning import FeatureBinner
from monitor.core.reference import FORMAT_VERSION, ReferenceProfile, build_profile, read_table

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
    assert p.categorical["flag"].categories == ("false", "true")  # tie: by name
    assert p.categorical["flag"].proportions.tolist() == [0.5, 0.5, 0.0]
    assert "empty" not in p.numeric and "empty" not in p.categorical  # all-missing: left out
    assert "request_id" not in p.categorical
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


def test_constant_feature_bins_and_coarse_bins():
    p = build_profile("m", pd.DataFrame({"c": [3.0] * 10}))
    c = p.numeric["c"]
    assert c.discrete and c.edges.tolist() == [3.0] and c.proportions.tolist() == [0.0, 1.0]
    assert c.psi_starts.tolist() in ([0], [0, 1])
    assert (c.min, c.max, c.std, c.count, c.missing_rate) == (3.0, 3.0, 0.0, 10, 0.0)


def test_continuous_psi_bins_are_the_reference_deciles():
    rng = np.random.default_rng(0)
    v = rng.normal(size=100_000)
    p = build_profile("m", pd.DataFrame({"x": v}), fine_bins=100, psi_bins=10, ks_sample_size=1000)
    x = p.numeric["x"]
    assert not x.discrete and x.edges.size == 99 and np.all(np.diff(x.edges) > 0)
    assert x.psi_starts.tolist() == list(range(0, 100, 10))
    assert np.add.reduceat(x.proportions, x.psi_starts) == pytest.approx(np.full(10, 0.1), abs=1e-9)
    assert x.ks_sample.size == 1000 and x.ks_sample[0] == v.min() and x.ks_sample[-1] == v.max()
    assert np.all(np.diff(x.ks_sample) >= 0)


def test_discrete_feature_gets_one_bin_per_value_and_decile_groups():
    v = np.repeat([0.0, 1.0, 2.0, 5.0], [10, 50, 30, 10])
    x = build_profile("m", pd.DataFrame({"x": v})).numeric["x"]
    assert x.discrete and x.edges.tolist() == [1.0, 2.0, 5.0]
    assert x.proportions.tolist() == [0.1, 0.5, 0.3, 0.1]
    assert np.searchsorted(x.edges, [0.0, 1.0, 2.0, 5.0], side="right").tolist() == [0, 1, 2, 3]
    assert x.psi_starts[0] == 0 and np.all(np.diff(x.psi_starts) > 0) and x.psi_starts[-1] <= 3


def test_nan_and_inf_are_missing_and_an_all_inf_column_is_dropped():
    t = pd.DataFrame({"x": [1.0, np.nan, np.inf, 2.0], "y": [np.inf, -np.inf, np.nan, np.nan]})
    p = build_profile("m", t)
    assert p.numeric["x"].missing_rate == 0.5 and p.numeric["x"].count == 2
    assert "y" not in p.numeric


def test_max_categories_folds_rare_categories_into_the_unseen_bucket():
    t = pd.DataFrame({"c": ["a"] * 5 + ["b"] * 3 + ["c"] * 1 + ["d"] * 1})
    c = build_profile("m", t, max_categories=2).categorical["c"]
    assert c.categories == ("a", "b")
    assert c.proportions.tolist() == pytest.approx([0.5, 0.3, 0.2])


def test_unseen_categories_in_a_window_go_to_the_last_slot():
    p = build_profile("m", pd.DataFrame({"c": ["a", "b", "a"]}))
    b = FeatureBinner(p)
    counts, missing, unseen = b.categorical_counts([["a", "zzz", None, "b", "yyy"]])
    assert counts[0].tolist()[:3] == [1, 1, 2] and missing.tolist() == [1] and unseen.tolist() == [2]


def test_regression_task_and_metrics():
    t = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "prediction": [1.5, 2.5, 2.0, 4.0],
                      "label": [1.0, 2.0, 3.0, 4.0]})
    p = build_profile("m", t)
    assert p.task == "regression"
    assert p.performance == pytest.approx({"mae": 0.5, "rmse": np.sqrt(1.5 / 4)})


def test_string_classification_without_binary_metrics_and_categorical_prediction():
    t = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "prediction": ["cat", "dog", "cat", "bird"],
                      "label": ["cat", "dog", "dog", None]})
    p = build_profile("m", t)
    assert p.task == "classification" and p.performance == pytest.approx({"accuracy": 2 / 3})
    assert p.prediction is not None and getattr(p.prediction, "categories", None) == ("cat", "bird", "dog")
    assert FeatureBinner(p).categorical_names == ("__prediction__",)


def test_no_outputs_gives_no_task():
    p = build_profile("m", pd.DataFrame({"x": [1.0, 2.0]}))
    assert p.task is None and p.performance == {} and p.prediction is None and p.score is None


@pytest.mark.parametrize("kwargs", [{"fine_bins": 1}, {"psi_bins": 200}, {"ks_sample_size": 0},
                                    {"max_categories": 0}])
def test_bad_build_arguments(kwargs):
    with pytest.raises(ValueError):
        build_profile("m", TABLE, **kwargs)


def test_jsonl_label_events_are_joined_and_json_arrays_read(tmp_path):
    events = [
        {"model": "m", "request_id": "a", "timestamp": 1, "features": {"x": 1.0}, "prediction": 1},
        {"model": "m", "request_id": "b", "timestamp": 1, "features": {"x": 2.0}, "prediction": 0},
        {"model": "m", "request_id": "a", "timestamp": 2, "label": 1},
        {"model": "m", "request_id": "zz", "timestamp": 2, "label": 0},
    ]
    path = tmp_path / "ev.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n\n")
    t = read_table(path)
    assert len(t) == 2 and t["label"].tolist()[0] == 1 and pd.isna(t["label"].tolist()[1])
    assert build_profile("m", t).performance["accuracy"] == 1.0
    arr = tmp_path / "rows.json"
    arr.write_text(json.dumps([{"x": 1, "c": "a"}, {"x": 2, "c": "b"}]))
    assert read_table(arr).shape == (2, 2)


def test_reader_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"x": 1}\n[1, 2]\n')
    with pytest.raises(ValueError, match="line 2"):
        read_table(bad)
    with pytest.raises(ValueError, match="unsupported file type"):
        read_table(tmp_path / "x.xlsx")


def test_from_dict_rejects_bad_shapes_and_missing_keys():
    d = build_profile("m", TABLE).to_dict()
    broken = json.loads(json.dumps(d))
    broken["numeric"][0]["proportions"] = broken["numeric"][0]["proportions"][:-1]
    with pytest.raises(ValueError, match="len\\(edges\\)\\+1"):
        ReferenceProfile.from_dict(broken)
    broken = json.loads(json.dumps(d))
    del broken["rows"]
    with pytest.raises(ValueError, match="missing key 'rows'"):
        ReferenceProfile.from_dict(broken)
    broken = json.loads(json.dumps(d))
    broken["categorical"][0]["proportions"] = [2.0] * len(broken["categorical"][0]["proportions"])
    with pytest.raises(ValueError, match="sum to 1"):
        ReferenceProfile.from_dict(broken)
    with pytest.raises(ValueError, match="JSON object"):
        ReferenceProfile.from_dict([])  # type: ignore[arg-type]


def test_round_trip_is_exact(tmp_path):
    p = build_profile("m", TABLE, built_at="2026-01-01T00:00:00Z")
    p.save(tmp_path / "p.json")
    q = ReferenceProfile.load(tmp_path / "p.json")
    assert q.to_dict() == p.to_dict()


@pytest.mark.parametrize("model, column, expected", [
    ("fraud\nevil,model=pwn value=1 0", "amount", "model name 'fraud\\nevil,model=pwn value=1 0' contains a control"),
    ("fraud", "amount\r", "feature name 'amount\\r' contains a control character (U+000D)"),
    ("fraud", "amount\\", "feature name 'amount\\\\' has a backslash at its end"),
    ("", "amount", "the model name is empty"),
])
def test_profiles_refuse_names_the_metrics_store_cannot_carry(tmp_path, model, column, expected):
    """Reference names become InfluxDB tags: a profile with such a name is refused when built and when
    loaded (a hand-edited or foreign file), with the reason."""
    table = pd.DataFrame({column: np.arange(100.0), "ok, name = fine": ["a", "b"] * 50})
    with pytest.raises(ValueError, match="^" + re.escape(expected)):
        build_profile(model, table)
    good = build_profile("fraud", table.rename(columns={column: "amount"})).to_dict()
    good["model"] = model
    good["numeric"][0]["name"] = column
    path = tmp_path / "ref.json"
    path.write_text(json.dumps(good))
    with pytest.raises(ValueError, match=re.escape(f"{path}: {expected}")):
        ReferenceProfile.load(path)
    assert set(build_profile("fraud", table.rename(columns={column: "amount"})).categorical) == {"ok, name = fine"}
