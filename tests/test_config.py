import pytest

from monitor.config import ConfigError, load_settings, parse_duration


def test_defaults_need_no_file(monkeypatch):
    monkeypatch.delenv("MONITOR_CONFIG", raising=False)
    s = load_settings()
    assert s.window_s == 300 and s.bootstrap_servers == "127.0.0.1:9092"


def test_env_wins_over_file(tmp_path, monkeypatch):
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text("window: 10m\ninflux_bucket: from-file\npolicy:\n  retrain_consecutive_windows: 5\n")
    monkeypatch.setenv("MONITOR_WINDOW", "1m")
    s = load_settings(cfg)
    assert s.window_s == 60 and s.influx_bucket == "from-file"
    assert s.policy.retrain_consecutive_windows == 5


def test_bad_value_names_key_and_file(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("window: soon\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    assert "window" in str(exc.value) and str(cfg) in str(exc.value)


def test_unknown_key_is_an_error(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("policy:\n  retrain_consecutive: 3\n")
    with pytest.raises(ConfigError) as exc:
        load_settings(cfg)
    assert "policy.retrain_consecutive" in str(exc.value) and "unknown setting" in str(exc.value)


def test_bad_env_names_the_variable(monkeypatch):
    monkeypatch.setenv("MONITOR_PARTITIONS", "many")
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert "MONITOR_PARTITIONS" in str(exc.value)


def test_yaml_is_parsed_safely(tmp_path):
    cfg = tmp_path / "evil.yaml"
    cfg.write_text("window: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError):
        load_settings(cfg)


def test_secret_from_file_and_redaction(tmp_path, monkeypatch):
    secret = tmp_path / "token"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("MONITOR_INFLUX_TOKEN_FILE", str(secret))
    s = load_settings()
    assert s.influx_token == "s3cret"
    assert s.redacted()["influx_token"] == "***"


def test_durations():
    assert parse_duration("250ms") == 0.25
    with pytest.raises(ValueError):
        parse_duration("5 minutes")
