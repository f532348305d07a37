import json
import logging
import os

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import ConfigError, Duration, MonitorSettings, load_settings, parse_duration

SECRETS = {"influx_token": "tok-3f9a", "webhook_secret": "whs-77c1", "sasl_password": "sasl-5d2e",
           "pagerduty_routing_key": "pdk-a0b9", "slack_webhook_url": "https://hooks.slack.com/services/T/B/slk-91e4"}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in list(os.environ):
        if var.upper().startswith("MONITOR_"):
            monkeypatch.delenv(var)


def error_of(tmp_path, text=None, **overrides) -> str:
    cfg = None
    if text is not None:
        cfg = tmp_path / "monitor.yaml"
        cfg.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg, **overrides)
    return str(exc.value)


def test_defaults_need_no_file():
    s = load_settings()
    assert s.window_s == 300 and s.bootstrap_servers == "127.0.0.1:9092"
    assert s.max_future_skew == 600 and s.max_event_age is None and s.timestamp_unit == "auto"
    assert s.timestamp_source == "event" and s.fields == {} and s.max_models == 10_000


def test_precedence_command_line_over_environment_over_file(tmp_path, monkeypatch):
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text("window: 10m\nidle_timeout: 7s\ninflux_bucket: from-file\npolicy:\n"
                   "  retrain_consecutive_windows: 5\n  min_labels: 9\n")
    monkeypatch.setenv("MONITOR_WINDOW", "1m")
    monkeypatch.setenv("MONITOR_IDLE_TIMEOUT", "3s")
    monkeypatch.setenv("MONITOR_POLICY__MIN_LABELS", "11")
    s = load_settings(cfg, window="2m", reference=None)
    assert s.window_s == 120 and s.idle_timeout_s == 3 and s.influx_bucket == "from-file"
    assert s.policy.retrain_consecutive_windows == 5 and s.policy.min_labels == 11  # nested keys merge


def test_durations_are_parsed_once_and_keep_their_text():
    s = MonitorSettings(window="90s", hop=30, policy={"retrain_cooldown": "2h"})
    assert isinstance(s.window, Duration) and s.window == 90.0 and str(s.window) == "90s"
    assert s.hop_s == 30 and str(s.hop) == "30s" and s.policy.retrain_cooldown_s == 7200
    assert s.redacted()["window"] == "90s" and s.model_dump(mode="json")["policy"]["retrain_cooldown"] == "2h"
    assert parse_duration("250ms") == 0.25
    with pytest.raises(ValueError):
        parse_duration("5 minutes")


@pytest.mark.parametrize("text, overrides, expected", [
    ("window: 0s", {}, "window: must be > 0 (got '0s')"),
    ("window: 1m\nhop: 5m", {}, "hop, window: hop (5m) must not be larger than window (1m)"),
    (None, {"window": "1000000w"}, "window: must be at most 366d (got '1000000w') (from command-line option --window)"),
    (None, {"window": "5x"}, "window: invalid duration '5x'"),
    ("window: yes", {}, "window: invalid duration True"),
    ("policy:\n  retrain_cooldown: banana", {}, "policy.retrain_cooldown: invalid duration 'banana'"),
    ("policy:\n  enabled_methods: [psi, pis]", {}, "policy.enabled_methods.1: Input should be 'psi', 'ks', "
     "'wasserstein', 'chi2', 'js' or 'pca_recon' (got 'pis'; did you mean 'psi'?)"),
    ("policy:\n  decision_methods: [psi, kss]", {}, "did you mean 'ks'?"),
    ("policy:\n  severity_method: jss", {}, "policy.severity_method: Input should be"),
    ("policy:\n  enabled_methods: [psi]\n", {}, "decision_methods ['ks', 'chi2', 'pca_recon'] are not in enabled_methods"),
    ("policy:\n  methods:\n    pis: {warning: 0.1, critical: 0.2}", {}, "unknown method 'pis'"),
    ("policy:\n  methods:\n    psi: {warning: 0.3, critical: 0.2}", {}, "critical (0.2) must be >= warning (0.3)"),
    ("policy:\n  min_window_events: -1", {}, "policy.min_window_events: Input should be greater than or equal to 0"),
    ("batch_size: -5", {}, "batch_size: Input should be greater than or equal to 1 (got -5)"),
    ("max_event_bytes: 0", {}, "max_event_bytes: Input should be greater than or equal to 64 (got 0)"),
    ("partitions: 0", {}, "partitions: Input should be greater than or equal to 1"),
    ("warmup_events: -1", {}, "warmup_events: Input should be greater than or equal to 0"),
    ("max_models: 0", {}, "max_models: Input should be greater than or equal to 1"),
    ("policy:\n  error_rate_warning: 1.5", {}, "policy.error_rate_warning: Input should be less than or equal to 1"),
    ("timestamp_unit: millis", {}, "timestamp_unit: Input should be 's', 'ms', 'us', 'ns' or 'auto'"),
    ("timestamp_source: kafka", {}, "timestamp_source: Input should be 'event' or 'record'"),
    ("fields: {modell: name}", {}, "fields.modell: Input should be 'model'"),
    ("fields: {features: 'payload..inputs'}", {}, "is not a field name or dotted path"),
    ("max_future_skew: -1m", {}, "max_future_skew: invalid duration '-1m'"),
    ("max_event_age: 0s", {}, "max_event_age: must be > 0"),
    ("models: [\"fraud\\nevil\"]", {}, "models: model name 'fraud\\nevil' contains a control character (U+000A)"),
    ("worker_name: 'w\\'", {}, "worker_name: worker name 'w\\\\' has a backslash"),
    ("predictions_topic: 'pred ictions'", {}, "is not a Kafka topic name"),
    ("heartbeat_interval: 20s", {}, "heartbeat_interval (20s) must be shorter than session_timeout (10s)"),
    ("windw: 5m", {}, "windw: unknown setting (did you mean window?)"),
    ("policy:\n  retrain_consecutive: 3", {}, "policy.retrain_consecutive: unknown setting (did you mean "
     "policy.retrain_consecutive_windows?)"),
])
def test_bad_values_give_one_line_naming_key_and_origin(tmp_path, text, overrides, expected):
    msg = error_of(tmp_path, text, **overrides)
    assert expected in msg, msg
    (line,) = [ln for ln in msg.splitlines() if expected.split(":")[0] in ln]
    origin = "command-line option" if overrides else f"file {tmp_path / 'monitor.yaml'}"
    assert line.rstrip().endswith(")") and origin in line, line
    assert "Traceback" not in msg


def test_bad_env_names_the_variable(monkeypatch):
    monkeypatch.setenv("MONITOR_PARTITIONS", "many")
    monkeypatch.setenv("MONITOR_POLICY__RETRAIN_COOLDOWN", "banana")
    msg = error_of(None)
    assert "partitions: Input should be a valid integer" in msg and "environment variable MONITOR_PARTITIONS" in msg
    assert "environment variable MONITOR_POLICY__RETRAIN_COOLDOWN" in msg


def test_unknown_environment_variables_name_the_closest_setting(monkeypatch):
    monkeypatch.setenv("MONITOR_WINDOWW", "5m")
    monkeypatch.setenv("MONITOR_INFLUX_TOKN", "x")
    monkeypatch.setenv("MONITOR_BASELINES__TRAILNG__LENGTH", "7d")
    msg = error_of(None)
    assert "unknown environment variable MONITOR_WINDOWW (did you mean MONITOR_WINDOW?)" in msg
    assert "MONITOR_INFLUX_TOKN (did you mean MONITOR_INFLUX_TOKEN?)" in msg
    assert "MONITOR_BASELINES__TRAILNG__LENGTH (did you mean MONITOR_BASELINES__TRAILING__LENGTH?)" in msg


def test_unknown_nested_keys_name_the_closest_one_at_their_level(tmp_path):
    msg = error_of(tmp_path, "baselines:\n  trailng: {length: 7d}\n")
    assert "baselines.trailng: unknown setting (did you mean baselines.trailing?)" in msg


def test_known_variables_are_not_flagged(tmp_path, monkeypatch):
    token = tmp_path / "token"
    token.write_text("t")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("{}")
    for var, value in {"MONITOR_CONFIG": str(cfg), "MONITOR_INFLUX_TOKEN_FILE": str(token),
                       "MONITOR_POLICY__MIN_LABELS": "3", "MONITOR_FIELDS__MODEL": "model_name",
                       "MONITOR_POLICY__METHODS__PSI__WARNING": "0.2", "monitor_window": "2m",
                       "MONITOR_BASELINES__TRAILING__LENGTH": "2d"}.items():
        monkeypatch.setenv(var, value)
    s = load_settings()
    assert s.fields == {"model": "model_name"} and s.policy.min_labels == 3 and s.window_s == 120
    assert s.baselines.trailing is not None and s.baselines.trailing.length == "2d"
    assert s.policy.methods["psi"].warning == 0.2 and s.policy.methods["psi"].critical == 0.25  # merged per key
    assert set(s.policy.methods) == {"psi", "ks", "chi2", "js", "wasserstein", "pca_recon"}


def test_yaml_is_parsed_safely(tmp_path):
    """A Python tag that would create a directory when constructed: safe_load refuses it, nothing runs."""
    sentinel = tmp_path / "pwned"
    payload = f"window: !!python/object/apply:os.mkdir [{json.dumps(str(sentinel))}]\n"
    assert yaml.unsafe_load(payload) == {"window": None} and sentinel.is_dir()  # the payload is live...
    sentinel.rmdir()
    msg = error_of(tmp_path, payload)  # ...and load_settings does not run it
    assert not sentinel.exists()
    assert "invalid YAML at line 1" in msg and "Python tags are refused" in msg and "python/object/apply" in msg


def test_secrets_never_show_in_repr_str_or_dumps(tmp_path, monkeypatch):
    for key, value in SECRETS.items():
        monkeypatch.setenv(f"MONITOR_{key.upper()}", value)
    monkeypatch.setenv("MONITOR_INFLUX_URL", "http://user:pw-8c3f@influx:8086/?token=qt-6b1d")
    monkeypatch.setenv("MONITOR_WEBHOOK_URL", "https://hooks.example/alert?token=wt-2a7e&team=ml")
    s = load_settings()
    shown = " ".join([repr(s), str(s), str(s.model_dump()), s.model_dump_json(), json.dumps(s.redacted()),
                      str(s.influx_url), repr(s.webhook_url)])
    for secret in [*SECRETS.values(), "pw-8c3f", "qt-6b1d", "wt-2a7e", "slk-91e4"]:
        assert secret not in shown, secret
    assert "influx:8086" in shown and "team=ml" in shown  # what is not secret stays readable
    assert s.influx_token is not None and s.influx_token.get_secret_value() == SECRETS["influx_token"]
    assert s.influx_url is not None and s.influx_url.get_secret_value().startswith("http://user:pw-8c3f@")
    assert s.kafka_python_security()["security_protocol"] == "PLAINTEXT"


def test_secret_from_file(tmp_path, monkeypatch):
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    monkeypatch.setenv("MONITOR_INFLUX_TOKEN_FILE", str(secret))
    s = load_settings()
    assert s.influx_token is not None and s.influx_token.get_secret_value() == "s3cret"
    assert s.redacted()["influx_token"] == "**********"


@pytest.mark.parametrize("content, expected", [
    (b"", "secret file is empty (MONITOR_WEBHOOK_SECRET_FILE="),
    (b"  \n", "secret file is empty"),
    (b"\xff\xfesecret", "secret file is not UTF-8 text (MONITOR_WEBHOOK_SECRET_FILE="),
])
def test_bad_secret_files_stop_start_up(tmp_path, monkeypatch, content, expected):
    f = tmp_path / "secret"
    f.write_bytes(content)
    monkeypatch.setenv("MONITOR_WEBHOOK_SECRET_FILE", str(f))
    msg = error_of(None)
    assert msg.startswith("webhook_secret: ") and expected in msg and str(f) in msg


def test_empty_secret_variables_and_unreadable_files_stop_start_up(tmp_path, monkeypatch):
    monkeypatch.setenv("MONITOR_WEBHOOK_SECRET", "")
    assert "webhook_secret: is set but empty" in error_of(None)
    monkeypatch.delenv("MONITOR_WEBHOOK_SECRET")
    monkeypatch.setenv("MONITOR_WEBHOOK_SECRET_FILE", str(tmp_path / "missing"))
    assert "cannot read secret file (MONITOR_WEBHOOK_SECRET_FILE=" in error_of(None)
    monkeypatch.setenv("MONITOR_WEBHOOK_SECRET", "x")
    assert "both MONITOR_WEBHOOK_SECRET and MONITOR_WEBHOOK_SECRET_FILE are set" in error_of(None)


def test_world_writable_secret_file_is_warned_about(tmp_path, monkeypatch, caplog):
    f = tmp_path / "secret"
    f.write_text("s3cret")
    f.chmod(0o666)
    monkeypatch.setenv("MONITOR_WEBHOOK_SECRET_FILE", str(f))
    with caplog.at_level(logging.WARNING, logger="driftline.config"):
        s = load_settings()
    assert s.webhook_secret is not None and s.webhook_secret.get_secret_value() == "s3cret"
    assert any("secret_file_world_writable" in r.getMessage() and str(f) in r.getMessage() for r in caplog.records)


def test_reference_path_is_checked_at_load(tmp_path):
    assert f"reference: {tmp_path / 'nope.json'}: no such file or directory" in error_of(
        tmp_path, f"reference: {tmp_path / 'nope.json'}")
    empty = tmp_path / "refs"
    empty.mkdir()
    assert "no reference profiles (*.json) in this directory (from command-line option --reference)" in error_of(
        None, reference=empty)
    if os.geteuid() != 0:  # root reads any file
        f = tmp_path / "ref.json"
        f.write_text("{}")
        f.chmod(0)
        assert "file is not readable" in error_of(None, reference=f)


durations = st.one_of(st.text(max_size=12), st.integers(-10, 10**12), st.floats(allow_nan=True),
                      st.sampled_from(["0", "0s", "1ms", "5m", "366d", "367d", "52w", "53w", " 5m ", "1.5h", "-1s"]))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(["window", "hop", "allowed_lateness", "idle_timeout", "label_grace", "max_future_skew",
                        "max_event_age", "repeat_interval"]), durations)
def test_any_duration_value_loads_or_names_its_key(key, value):
    try:
        s = MonitorSettings(**{key: value})
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        assert key in str(exc)
        return
    d = getattr(s, key)
    if d is None:  # an empty text unsets an optional duration (hop, max_future_skew, max_event_age)
        assert key in ("hop", "max_future_skew", "max_event_age") and isinstance(value, str) and not value.strip()
        return
    assert isinstance(d, Duration) and 0 <= d <= 366 * 86_400 * (100 if key == "max_event_age" else 1)
    assert parse_duration(str(d)) == pytest.approx(float(d))


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(["batch_size", "partitions", "max_event_bytes", "warmup_events", "max_models", "web_port",
                        "policy.min_window_events", "policy.resolve_after_windows", "policy.min_labels"]),
       st.one_of(st.integers(-10**6, 10**9), st.text(max_size=6), st.floats()))
def test_any_count_value_loads_or_names_its_key(tmp_path_factory, key, value):
    cfg = tmp_path_factory.mktemp("c") / "c.yaml"
    top, _, sub = key.partition(".")
    cfg.write_text(yaml.safe_dump({top: {sub: value}} if sub else {top: value}))
    try:
        load_settings(cfg)
    except ConfigError as exc:
        assert f"{key}: " in str(exc) and str(cfg) in str(exc)
