"""Per-feature overrides (policy.features): ignore, forced kind, own methods, own thresholds."""

import numpy as np
import orjson
import pandas as pd
import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import ConfigError, PolicyConfig, load_settings
from monitor.core.binning import StatResult
from monitor.core.policy import Policy, WindowFacts, decide_drift
from monitor.core.reference import ReferenceProfile
from monitor.types import WindowRange

CONFIG = """
policy:
  features:
    amount: {methods: [psi, wasserstein], thresholds: {psi: {warning: 0.3, critical: 0.5}}}
    user_id: {ignore: true}
    zip: {kind: categorical}
    code: {kind: numeric}
"""


def _policy(tmp_path) -> PolicyConfig:
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(CONFIG)
    return load_settings(cfg).policy


def test_config_is_validated_with_the_key_named(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("policy:\n  features:\n    amount: {methods: [psi, magic]}\n")
    with pytest.raises(ConfigError, match=r"policy\.features\.amount\.methods"):
        load_settings(cfg)
    cfg.write_text("policy:\n  features:\n    amount: {ignored: true}\n")
    with pytest.raises(ConfigError, match=r"policy\.features\.amount\.ignored: unknown setting"):
        load_settings(cfg)


def test_thresholds_merge_over_the_policy_defaults(tmp_path):
    p = _policy(tmp_path)
    merged = p.method_config("amount", "psi")
    assert (merged.warning, merged.critical, merged.floor) == (0.3, 0.5, p.methods["psi"].floor)
    assert p.method_config("other", "psi") == p.methods["psi"]
    assert p.build_overrides() == {"ignore": ["user_id"], "kinds": {"zip": "categorical", "code": "numeric"}}


def test_ignored_features_methods_and_thresholds_in_the_decision(tmp_path):
    p = _policy(tmp_path)
    stats = [StatResult(f, m, s, pv, 1000) for f, m, s, pv in (
        ("user_id", "psi", 5.0, None), ("user_id", "ks", 0.9, 1e-30),
        ("amount", "psi", 0.2, None), ("amount", "ks", 0.5, 1e-30), ("amount", "wasserstein", 0.5, None),
        ("age", "psi", 0.2, None), ("age", "ks", 0.5, 1e-30))]
    out = {(d.feature, d.method): d for d in decide_drift(stats, p, {}, 1000)}
    assert not any(f == "user_id" for f, _ in out)  # ignored: no results at all
    assert ("amount", "ks") not in out  # not one of its methods
    assert not out[("amount", "psi")].exceeds and out[("amount", "psi")].threshold == 0.3  # its own warning
    # wasserstein is not a default decision method, but it is one of amount's: it decides amount's verdict
    assert out[("amount", "wasserstein")].exceeds and out[("amount", "psi")].drifted
    assert out[("age", "psi")].drifted and out[("age", "psi")].threshold == 0.1


def test_severity_uses_the_features_own_critical_threshold(tmp_path):
    p = _policy(tmp_path)
    stats = [StatResult("amount", "psi", 0.4, None, 1000), StatResult("age", "psi", 0.4, None, 1000),
             StatResult("age", "ks", 0.5, 1e-30, 1000)]
    drift = decide_drift(stats, p, {}, 1000)
    facts = WindowFacts("m", None, WindowRange(0, 300), 1000, drift, None, 0, None, False, False, None, 0, None,
                        {}, {}, None, {})
    alerts, _ = Policy(p).evaluate(facts)
    sev = {a.labels["feature"]: a.labels["severity"] for a in alerts}
    assert sev == {"amount": "warning", "age": "critical"}  # 0.4: below amount's 0.5, above the default 0.25


def test_build_leaves_out_ignored_and_forces_kinds(tmp_path):
    rng = np.random.default_rng(0)
    n = 2000
    code = [3.5] * 10 + rng.choice(["1.5", "2.5", "x"], n - 10).tolist()  # a producer mixing types
    table = pd.DataFrame({"user_id": np.arange(n), "zip": rng.choice([10115, 20095, 80331], n),
                          "amount": rng.normal(size=n)})
    data = tmp_path / "ref.jsonl"
    data.write_bytes(b"\n".join(orjson.dumps({**row, "code": c}) for row, c in
                                zip(table.to_dict("records"), code, strict=True)))
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(CONFIG)
    r = CliRunner().invoke(app, ["reference", "build", "--model", "m", "--data", str(data), "--out",
                                 str(tmp_path / "p.json"), "--config", str(cfg), "--resamples", "100"])
    assert r.exit_code == 0, r.output
    prof = ReferenceProfile.load(tmp_path / "p.json")
    assert "user_id" not in prof.numeric and "user_id" not in prof.categorical
    assert prof.multivariate is not None and "user_id" not in prof.multivariate.numeric
    assert prof.categorical["zip"].categories == tuple(sorted(
        ("10115", "20095", "80331"), key=lambda c: -int((table["zip"].astype(str) == c).sum())))
    code = prof.numeric["code"]  # forced numeric: strings are missing, as they are at run time
    assert code.count == 10 and code.missing_rate == pytest.approx(1 - 10 / n)


def test_ignored_features_are_not_in_the_multiple_testing_family(tmp_path):
    """BH's step-up thresholds grow with the rank: an ignored feature's tiny p-value would lift a borderline
    one (0.006 is rejected at rank 2 of 3, 2/3 x 0.01, but not at rank 1 of 2, 1/2 x 0.01)."""
    p = _policy(tmp_path)
    stats = [StatResult("user_id", "ks", 0.9, 1e-30, 1000), StatResult("age", "ks", 0.5, 0.006, 1000),
             StatResult("x", "ks", 0.01, 0.5, 1000)]
    out = {d.feature: d for d in decide_drift(stats, p, {}, 1000)}
    assert "user_id" not in out and not out["age"].drifted
    assert {d.feature: d.drifted for d in decide_drift(stats, PolicyConfig(), {}, 1000)}["age"]  # not ignored
