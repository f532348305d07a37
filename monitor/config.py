"""Configuration: a YAML file (``--config`` or ``MONITOR_CONFIG``) plus ``MONITOR_*`` environment variables.

Environment wins over the file. Every error names the offending key and the file it came from.
Nested keys can be set from the environment with a double underscore, e.g.
``MONITOR_POLICY__RETRAIN_CONSECUTIVE_WINDOWS=5``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from monitor.baselines_config import BaselinesConfig

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(text: str | float | int) -> float:
    """Parse ``"5m"``, ``"30s"``, ``"1h"``, ``"250ms"`` or a number of seconds into seconds.

    >>> parse_duration("5m"), parse_duration("1.5h"), parse_duration(30)
    (300.0, 5400.0, 30.0)
    """
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"duration must be >= 0, got {text}")
        return float(text)
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"invalid duration {text!r}: use a number with a unit, e.g. 30s, 5m, 1h, 7d")
    return float(m.group(1)) * _UNIT_S[m.group(2) or "s"]


def format_duration(seconds: float) -> str:
    """Inverse of :func:`parse_duration` for tags (``300 -> '5m'``).

    >>> format_duration(300), format_duration(90), format_duration(3600), format_duration(0.5)
    ('5m', '90s', '1h', '500ms')
    """
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNIT_S[unit]
        if seconds >= size and float(seconds / size).is_integer():
            return f"{int(seconds / size)}{unit}"
    return f"{round(seconds * 1000)}ms"


class ConfigError(ValueError):
    """A configuration problem, naming the key and where it came from."""


class MethodThresholds(BaseModel):
    """Thresholds of one drift statistic. For tests (ks, chi2) ``alpha`` is the BH false-discovery rate
    and ``effect_floor`` the minimum effect size (KS D, Cramér's V) that may page."""

    model_config = ConfigDict(extra="forbid")
    warning: float
    critical: float
    alpha: float | None = None
    effect_floor: float | None = None


def _default_methods() -> dict[str, MethodThresholds]:
    return {
        "psi": MethodThresholds(warning=0.1, critical=0.25),
        "ks": MethodThresholds(warning=0.1, critical=0.2, alpha=0.01, effect_floor=0.1),
        "chi2": MethodThresholds(warning=0.1, critical=0.2, alpha=0.01, effect_floor=0.1),
        "js": MethodThresholds(warning=0.1, critical=0.2),
        "wasserstein": MethodThresholds(warning=0.1, critical=0.3),
    }


class PolicyConfig(BaseModel):
    """When a window is drifted, when to page, when to ask for retraining."""

    model_config = ConfigDict(extra="forbid")
    methods: dict[str, MethodThresholds] = Field(default_factory=_default_methods)
    #: statistics computed per feature (numeric: psi, ks, wasserstein; categorical: psi, chi2, js)
    enabled_methods: list[str] = Field(default_factory=lambda: ["psi", "ks", "wasserstein", "chi2", "js"])
    #: statistics whose verdict makes a feature "drifted" (pages, retraining, drift_summary); the others
    #: (js, wasserstein) are reported with their own ``drifted`` flag but never page on their own
    decision_methods: list[str] = Field(default_factory=lambda: ["psi", "ks", "chi2"])
    #: the distance whose warning/critical thresholds set a drifted feature's severity
    severity_method: str = "psi"
    #: windows with fewer events than this report drift but never flag it
    min_window_events: int = 50
    #: consecutive clean windows before a firing alert resolves (hysteresis)
    resolve_after_windows: int = 2
    #: a "clean" window needs the severity distance below this fraction of its warning threshold
    resolve_ratio: float = 0.8
    retrain_consecutive_windows: int = 3
    retrain_min_features: int = 1
    retrain_cooldown: str = "1h"
    #: latency: page when p95 exceeds the baseline p95 (reference windows) by these factors
    latency_warning_ratio: float = 1.5
    latency_critical_ratio: float = 3.0
    latency_p95_warning_ms: float | None = None
    latency_p95_critical_ms: float | None = None
    baseline_windows: int = 3
    error_rate_warning: float = 0.05
    error_rate_critical: float = 0.2
    min_error_events: int = 20
    #: accuracy below the reference's by these drops pages (labels or score-based estimate)
    accuracy_drop_warning: float = 0.05
    accuracy_drop_critical: float = 0.10
    min_labels: int = 30
    missing_rate_increase_warning: float = 0.1
    unseen_rate_warning: float = 0.05
    #: mark error-rate and latency changes per window (monitor/core/changepoint.py)
    online_detectors: bool = True
    #: change markers (monitor/core/changepoint.py, ``python -m simulations.bench_changepoint``): a window's
    #: log p95 latency this many noise units above the recent windows' mean, and at least this ratio, is a
    #: latency change; both change tests compare against this many recent windows since the last change
    latency_change_z: float = Field(default=5.0, gt=0)
    latency_change_min_ratio: float = Field(default=1.1, ge=1)
    change_history_windows: int = Field(default=12, ge=3)

    @property
    def retrain_cooldown_s(self) -> float:
        return parse_duration(self.retrain_cooldown)


class MonitorSettings(BaseSettings):
    """All settings; see README "Configuration"."""

    model_config = SettingsConfigDict(env_prefix="MONITOR_", env_nested_delimiter="__", extra="forbid")

    broker: str = "kafka://127.0.0.1:9092"
    predictions_topic: str = "predictions"
    #: empty: this deployment has no ground truth — no labels topic, no label join, and no per-prediction
    #: memory (request-id duplicates are then not counted either)
    labels_topic: str = "labels"
    retraining_topic: str = "monitor.retraining"
    dlq_topic: str = "monitor.dlq"
    partitions: int = 4
    replication_factor: int = 1
    #: internal topics; empty: ``<consumer_group>.checkpoints`` / ``.partials`` / ``.references``, so two
    #: deployments (consumer groups) on one cluster never read each other's state
    checkpoint_topic: str = ""
    #: stage 1 → stage 2: partial windows and source watermarks
    partials_topic: str = ""
    #: warm-up reference profiles built by a model's owner, read by every worker
    references_topic: str = ""
    consumer_group: str = "driftline"
    worker_name: str = Field(default_factory=lambda: os.uname().nodename)
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    #: how long `monitor run` keeps retrying an unreachable broker at start before giving up
    broker_wait: str = "5m"
    session_timeout: str = "10s"
    rebalance_timeout: str = "10s"
    heartbeat_interval: str = "1s"
    #: events decoded and observed per batch in the worker
    batch_size: int = 2_000
    #: points the InfluxDB sink may buffer while InfluxDB is down before consumption pauses
    sink_max_buffer_points: int = 500_000
    #: Kafka security passed to faust/aiokafka and kafka-python
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    window: str = "5m"
    hop: str | None = None
    allowed_lateness: str = "60s"
    idle_timeout: str = "30s"
    label_grace: str = "1h"
    flush_interval: str = "1s"
    max_event_bytes: int = 1_000_000
    #: declared models; when set, events for other models go to the DLQ
    models: list[str] | None = None
    #: without declared models, at most this many model names per input partition (more go to the DLQ)
    max_models: int = 10_000
    #: an event this far ahead of its stream's robust watermark is held back (then observed once others
    #: confirm the stream moved on, or dead-lettered); empty: no limit
    max_future_skew: str | None = "10m"
    #: build a model's reference from its first N events when it has no reference profile
    warmup_events: int = 0
    #: keep raw values to compute exact KS (matches scipy.ks_2samp) instead of binned KS
    exact_ks: bool = False

    reference: Path | None = None
    influx_url: str | None = None
    influx_token: str | None = None
    influx_org: str = "driftline"
    influx_bucket: str = "driftline"
    lp_file: Path | None = None

    webhook_url: str | None = None
    webhook_secret: str | None = None
    alertmanager_url: str | None = None
    slack_webhook_url: str | None = None
    pagerduty_routing_key: str | None = None
    repeat_interval: str = "4h"
    external_url: str = "http://localhost:3000/d/driftline-drift"
    source: str = "driftline/default"

    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    #: trailing and seasonal baselines next to the training profile (monitor/baselines_config.py)
    baselines: BaselinesConfig = Field(default_factory=BaselinesConfig)

    @field_validator("window", "allowed_lateness", "idle_timeout", "label_grace", "flush_interval",
                     "repeat_interval", "session_timeout", "rebalance_timeout", "heartbeat_interval", "broker_wait")
    @classmethod
    def _check_duration(cls, v: str) -> str:
        seconds = parse_duration(v)
        if seconds <= 0 and v not in ("0", "0s"):
            raise ValueError("must be > 0")
        return v

    @field_validator("hop")
    @classmethod
    def _check_hop(cls, v: str | None) -> str | None:
        if v is not None and parse_duration(v) <= 0:
            raise ValueError("must be > 0")
        return v

    @model_validator(mode="after")
    def _internal_topics(self) -> MonitorSettings:
        for name in ("checkpoint", "partials", "references"):
            key = f"{name}_topic" if name != "checkpoint" else "checkpoint_topic"
            if not getattr(self, key):
                suffix = "checkpoints" if name == "checkpoint" else name
                object.__setattr__(self, key, f"{self.consumer_group}.{suffix}")
        return self

    @model_validator(mode="after")
    def _baselines_fit_the_window(self) -> MonitorSettings:
        self.baselines.check_window(self.window_s)
        return self

    @property
    def window_s(self) -> float:
        return parse_duration(self.window)

    @property
    def hop_s(self) -> float:
        return parse_duration(self.hop) if self.hop else self.window_s

    @property
    def allowed_lateness_s(self) -> float:
        return parse_duration(self.allowed_lateness)

    @property
    def idle_timeout_s(self) -> float:
        return parse_duration(self.idle_timeout)

    @property
    def max_future_skew_s(self) -> float | None:
        return parse_duration(self.max_future_skew) if self.max_future_skew else None

    @property
    def label_grace_s(self) -> float:
        return parse_duration(self.label_grace)

    @property
    def broker_wait_s(self) -> float:
        return parse_duration(self.broker_wait)

    @property
    def flush_interval_s(self) -> float:
        return parse_duration(self.flush_interval)

    @property
    def repeat_interval_s(self) -> float:
        return parse_duration(self.repeat_interval)

    @property
    def bootstrap_servers(self) -> str:
        """``kafka://a:9092;kafka://b:9092`` or ``a:9092,b:9092`` → ``a:9092,b:9092``."""
        parts = re.split(r"[;,]", self.broker)
        return ",".join(p.strip().removeprefix("kafka://") for p in parts if p.strip())

    def kafka_python_security(self) -> dict[str, Any]:
        """Security keyword arguments for kafka-python clients (empty for PLAINTEXT)."""
        out: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.sasl_mechanism:
            out.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                       sasl_plain_password=self.sasl_password)
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out

    def redacted(self) -> dict[str, Any]:
        """Settings as a dict with every secret replaced, safe to log."""
        data = self.model_dump(mode="json")
        for key in ("influx_token", "webhook_secret", "sasl_password", "pagerduty_routing_key",
                    "slack_webhook_url"):
            if data.get(key):
                data[key] = "***"
        return data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # env wins over the YAML file, which arrives as init kwargs
        return env_settings, init_settings, file_secret_settings


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)  # safe_load: no arbitrary object construction
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings, got {type(data).__name__}")
    return data


def _secret_files() -> dict[str, str]:
    """``MONITOR_<NAME>_FILE=/run/secrets/x`` reads a secret from a file (Docker/Kubernetes secrets)."""
    out: dict[str, str] = {}
    for name in ("INFLUX_TOKEN", "WEBHOOK_SECRET", "SASL_PASSWORD", "PAGERDUTY_ROUTING_KEY"):
        path = os.environ.get(f"MONITOR_{name}_FILE")
        if path and not os.environ.get(f"MONITOR_{name}"):
            try:
                out[name.lower()] = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"MONITOR_{name}_FILE={path}: cannot read secret file: {exc}") from exc
    return out


def load_settings(config: Path | str | None = None, **overrides: Any) -> MonitorSettings:
    """Load settings from ``config`` (or ``$MONITOR_CONFIG``), the environment, and explicit overrides.

    Raises :class:`ConfigError` naming the key and the source on any invalid value.
    """
    path_text = str(config) if config is not None else os.environ.get("MONITOR_CONFIG")
    path = Path(path_text) if path_text else None
    data: dict[str, Any] = _read_yaml(path) if path is not None else {}
    data.update(_secret_files())
    data.update({k: v for k, v in overrides.items() if v is not None})
    source = str(path) if path is not None else "environment/defaults"
    try:
        return MonitorSettings(**data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            env_name = "MONITOR_" + "__".join(str(p) for p in err["loc"]).upper()
            where = f"environment variable {env_name}" if env_name in os.environ else source
            msg = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{key}: {msg} (from {where})" if key else f"{msg} (from {where})")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None
