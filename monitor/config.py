"""Configuration: a YAML file (``--config`` or ``MONITOR_CONFIG``), ``MONITOR_*`` environment variables and
command-line options. Precedence: command line > environment > file > defaults.

Every value is validated once, at load: durations are parsed into seconds (:class:`Duration`), method names
are checked against the known ones, counts are bounded, names that become metric tags follow
:mod:`monitor.names`, and a misspelt ``MONITOR_*`` variable is an error naming the closest setting. Each
problem is one line naming the key and where it came from (file, variable or option). Nested keys can be
set from the environment with a double underscore, e.g. ``MONITOR_POLICY__RETRAIN_CONSECUTIVE_WINDOWS=5``.
Secrets are :class:`pydantic.SecretStr` (URL settings :class:`SecretUrl`): no ``repr``, ``str`` or dump
shows them; use ``.get_secret_value()`` where the real value is needed.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from monitor.baselines_config import BaselinesConfig
from monitor.config_types import (
    Duration,
    SecretUrl,
    _bounded,
    format_duration,
    parse_duration,
    reveal,
)
from monitor.names import check_name

#: the drift statistics Driftline computes
Method = Literal["psi", "ks", "wasserstein", "chi2", "js", "pca_recon"]
METHODS: tuple[Method, ...] = ("psi", "ks", "wasserstein", "chi2", "js", "pca_recon")
#: Driftline's event fields (monitor.events.CANONICAL_FIELDS), which ``fields`` maps to producers' names
EventField = Literal["model", "request_id", "timestamp", "features", "prediction", "label", "model_version",
                     "score", "latency_ms", "error"]
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_PATH = re.compile(r"^[^.]+(\.[^.]+)*$")


class ConfigError(ValueError):
    """A configuration problem, naming the key and where it came from."""


Rate = Annotated[float, Field(ge=0.0, le=1.0)]


class MethodThresholds(BaseModel):
    """Thresholds of one drift statistic. For tests (ks, chi2) ``alpha`` is the BH false-discovery rate
    and ``effect_floor`` the minimum effect size (KS D, Cramér's V) that may page with an uncalibrated
    (format 1) reference. With a calibrated reference a statistic must exceed its calibrated threshold
    for the window's size and the practical ``floor`` (for ``pca_recon``: a relative increase of the
    mean reconstruction error over the reference's)."""

    model_config = ConfigDict(extra="forbid")
    warning: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
    critical: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
    alpha: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None
    effect_floor: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] | None = None
    floor: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = 0.0

    @model_validator(mode="after")
    def _ordered(self) -> MethodThresholds:
        if self.critical < self.warning:
            raise ValueError(f"critical ({self.critical}) must be >= warning ({self.warning})")
        return self


class MethodOverride(BaseModel):
    """Per-feature changes to one method's thresholds (unset keys keep the policy's)."""

    model_config = ConfigDict(extra="forbid")
    warning: float | None = None
    critical: float | None = None
    alpha: float | None = None
    effect_floor: float | None = None
    floor: float | None = None


FEATURE_METHODS = ("psi", "ks", "wasserstein", "chi2", "js")


class FeatureOverride(BaseModel):
    """Overrides for one feature (``policy.features.<name>``).

    ``ignore``: no drift for it, and ``reference build`` leaves it out (also of the multivariate model);
    ``kind``: read it as numeric or categorical when building a reference, whatever its column type;
    ``methods``: the statistics reported for it and deciding its verdict; ``thresholds``: per method."""

    model_config = ConfigDict(extra="forbid")
    ignore: bool = False
    kind: Literal["numeric", "categorical"] | None = None
    methods: list[str] | None = None
    thresholds: dict[str, MethodOverride] = Field(default_factory=dict)

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, v: list[str] | None) -> list[str] | None:
        bad = [m for m in v or [] if m not in FEATURE_METHODS]
        if bad:
            raise ValueError(f"unknown method(s) {bad}; choose from {list(FEATURE_METHODS)}")
        return v


def _default_methods() -> dict[str, MethodThresholds]:
    # floors: chosen with the detection benchmark (docs/bench-detection/, README "Detection quality")
    return {
        "psi": MethodThresholds(warning=0.1, critical=0.25, floor=0.02),
        "ks": MethodThresholds(warning=0.1, critical=0.2, alpha=0.01, effect_floor=0.1, floor=0.04),
        "chi2": MethodThresholds(warning=0.1, critical=0.2, alpha=0.01, effect_floor=0.1, floor=0.04),
        "js": MethodThresholds(warning=0.1, critical=0.2, floor=0.04),
        "wasserstein": MethodThresholds(warning=0.1, critical=0.3, floor=0.05),
        "pca_recon": MethodThresholds(warning=0.05, critical=0.2, alpha=0.01, floor=0.02),
    }


def _default_decision_methods() -> list[Method]:
    return ["psi", "ks", "chi2", "pca_recon"]


class PolicyConfig(BaseModel):
    """When a window is drifted, when to page, when to ask for retraining."""

    model_config = ConfigDict(extra="forbid")
    methods: dict[str, MethodThresholds] = Field(default_factory=_default_methods)
    #: statistics computed per feature (numeric: psi, ks, wasserstein; categorical: psi, chi2, js) and
    #: for the model (pca_recon: multivariate drift, feature ``__multivariate__``; leave it out to turn
    #: multivariate drift off)
    enabled_methods: list[Method] = Field(default_factory=lambda: list(METHODS))
    #: statistics whose verdict makes a feature "drifted" (pages, retraining, drift_summary); the others
    #: (js, wasserstein) are reported with their own ``exceeds`` flag but never page on their own
    decision_methods: list[Method] = Field(default_factory=_default_decision_methods)
    #: calibrated references: a statistic must exceed this quantile of its null distribution at the
    #: window's size (besides BH significance and the method's practical floor)
    calibration_level: float = Field(default=0.99999, gt=0.5, lt=1.0)
    #: the distance whose warning/critical thresholds set a drifted feature's severity
    severity_method: Method = "psi"
    #: windows with fewer events than this report drift but never flag it
    min_window_events: Annotated[int, Field(ge=0)] = 50
    #: consecutive clean windows before a firing alert resolves (hysteresis)
    resolve_after_windows: Annotated[int, Field(ge=1)] = 2
    #: a "clean" window needs the severity distance below this fraction of its warning threshold
    resolve_ratio: Annotated[float, Field(gt=0.0, le=1.0)] = 0.8
    retrain_consecutive_windows: Annotated[int, Field(ge=1)] = 3
    retrain_min_features: Annotated[int, Field(ge=1)] = 1
    retrain_cooldown: Duration = Duration("1h")
    #: latency: page when p95 exceeds the baseline p95 (reference windows) by these factors
    latency_warning_ratio: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] = 1.5
    latency_critical_ratio: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] = 3.0
    latency_p95_warning_ms: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None
    latency_p95_critical_ms: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None
    baseline_windows: Annotated[int, Field(ge=1)] = 3
    error_rate_warning: Rate = 0.05
    error_rate_critical: Rate = 0.2
    min_error_events: Annotated[int, Field(ge=0)] = 20
    #: accuracy below the reference's by these drops pages (labels or score-based estimate)
    accuracy_drop_warning: Rate = 0.05
    accuracy_drop_critical: Rate = 0.10
    min_labels: Annotated[int, Field(ge=0)] = 30
    missing_rate_increase_warning: Rate = 0.1
    unseen_rate_warning: Rate = 0.05
    #: mark error-rate and latency changes per window (monitor/core/changepoint.py)
    online_detectors: bool = True
    #: change markers (monitor/core/changepoint.py, ``python -m simulations.bench_changepoint``): a window's
    #: log p95 latency this many noise units above the recent windows' mean, and at least this ratio, is a
    #: latency change; both change tests compare against this many recent windows since the last change
    latency_change_z: float = Field(default=5.0, gt=0)
    latency_change_min_ratio: float = Field(default=1.1, ge=1)
    change_history_windows: int = Field(default=12, ge=3)
    #: per-feature overrides, e.g. ``{amount: {methods: [psi, ks], thresholds: {psi: {warning: 0.2}}},
    #: user_id: {ignore: true}, zip: {kind: categorical}}``
    features: dict[str, FeatureOverride] = Field(default_factory=dict)

    def method_config(self, feature: str, method: str) -> MethodThresholds | None:
        """``methods[method]`` with ``feature``'s threshold overrides applied."""
        base = self.methods.get(method)
        over = self.features.get(feature)
        if base is None or over is None or method not in over.thresholds:
            return base
        return base.model_copy(update=over.thresholds[method].model_dump(exclude_none=True))

    def build_overrides(self) -> dict[str, Any]:
        """``build_profile`` keyword arguments from ``features``: ignored columns and forced kinds."""
        return {"ignore": [f for f, o in self.features.items() if o.ignore],
                "kinds": {f: o.kind for f, o in self.features.items() if o.kind is not None}}

    @field_validator("methods", mode="before")
    @classmethod
    def _merge_methods(cls, v: Any) -> Any:
        """Given thresholds update the defaults per method and per key (``methods: {psi: {critical: 0.3}}``
        keeps PSI's warning threshold and every other method's)."""
        if not isinstance(v, dict):
            return v
        merged: dict[str, Any] = {k: t.model_dump() for k, t in _default_methods().items()}
        for name, given in v.items():
            base = merged.get(name, {})
            merged[name] = {**base, **given} if isinstance(given, dict) else given
        return merged

    @field_validator("methods")
    @classmethod
    def _check_methods(cls, v: dict[str, MethodThresholds]) -> dict[str, MethodThresholds]:
        for name in v:
            if name not in METHODS:
                close = difflib.get_close_matches(name, METHODS, n=1, cutoff=0.5)
                raise ValueError(f"unknown method {name!r} (one of {', '.join(METHODS)}"
                                 f"{f'; did you mean {close[0]!r}?' if close else ''})")
        return v

    @field_validator("retrain_cooldown")
    @classmethod
    def _check_cooldown(cls, v: Duration) -> Duration | None:
        return _bounded(v, positive=False)

    @model_validator(mode="after")
    def _consistent(self) -> PolicyConfig:
        missing = [m for m in self.decision_methods if m not in self.enabled_methods]
        if missing:
            raise ValueError(f"decision_methods {missing} are not in enabled_methods {self.enabled_methods}: "
                             "they would never be computed, so never page")
        if self.severity_method not in self.methods:
            raise ValueError(f"severity_method {self.severity_method!r} has no thresholds under methods")
        return self

    @property
    def retrain_cooldown_s(self) -> float:
        return float(self.retrain_cooldown)


_POSITIVE = ("window", "hop", "idle_timeout", "flush_interval", "session_timeout", "rebalance_timeout",
             "heartbeat_interval", "dedup_horizon")
_NON_NEGATIVE = ("allowed_lateness", "label_grace", "repeat_interval", "broker_wait", "max_future_skew")
#: secret settings that can be read from a file named by ``MONITOR_<NAME>_FILE``
SECRET_FILE_SETTINGS = ("influx_token", "webhook_secret", "sasl_password", "pagerduty_routing_key")
SECRET_SETTINGS = (*SECRET_FILE_SETTINGS, "slack_webhook_url")


class MonitorSettings(BaseSettings):
    """All settings; see README "Configuration"."""

    model_config = SettingsConfigDict(env_prefix="MONITOR_", env_nested_delimiter="__", extra="forbid")

    broker: str = "kafka://127.0.0.1:9092"
    predictions_topic: str = "predictions"
    #: empty: this deployment has no ground truth — no labels topic and no label join (request ids are then
    #: held only for duplicate detection, ``dedup_horizon``)
    labels_topic: str = "labels"
    retraining_topic: str = "monitor.retraining"
    dlq_topic: str = "monitor.dlq"
    partitions: Annotated[int, Field(ge=1, le=10_000)] = 4
    replication_factor: Annotated[int, Field(ge=1, le=100)] = 1
    #: internal topics; empty: ``<consumer_group>.checkpoints`` / ``.partials`` / ``.references``, so two
    #: deployments (consumer groups) on one cluster never read each other's state
    checkpoint_topic: str = ""
    #: stage 1 → stage 2: partial windows and source watermarks
    partials_topic: str = ""
    #: warm-up reference profiles built by a model's owner, read by every worker
    references_topic: str = ""
    consumer_group: Annotated[str, Field(min_length=1)] = "driftline"
    worker_name: str = Field(default_factory=lambda: os.uname().nodename)
    web_host: str = "127.0.0.1"
    web_port: Annotated[int, Field(ge=0, le=65_535)] = 6066
    #: how long `monitor run` keeps retrying an unreachable broker at start before giving up
    broker_wait: Duration = Duration("5m")
    session_timeout: Duration = Duration("10s")
    rebalance_timeout: Duration = Duration("10s")
    heartbeat_interval: Duration = Duration("1s")
    #: events decoded and observed per batch in the worker
    batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = 2_000
    #: points the InfluxDB sink may buffer while InfluxDB is down before consumption pauses
    sink_max_buffer_points: Annotated[int, Field(ge=1)] = 500_000
    #: Kafka security passed to faust/aiokafka and kafka-python
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    window: Duration = Duration("5m")
    hop: Duration | None = None
    allowed_lateness: Duration = Duration("60s")
    idle_timeout: Duration = Duration("30s")
    label_grace: Duration = Duration("1h")
    #: how long after its event time a request id is remembered to count repeats as duplicates (per input
    #: partition); empty: window + allowed_lateness. With a labels topic predictions are held for
    #: window + label_grace for the label join anyway (the longer of the two applies)
    dedup_horizon: Duration | None = None
    flush_interval: Duration = Duration("1s")
    max_event_bytes: Annotated[int, Field(ge=64, le=64 * 1024 * 1024)] = 1_000_000
    #: declared models; when set, events for other models go to the DLQ
    models: list[str] | None = None
    #: without declared models, at most this many model names per input partition (more go to the DLQ)
    max_models: Annotated[int, Field(ge=1)] = 10_000
    #: an event this far ahead of its stream's robust watermark is held back (then observed once others
    #: confirm the stream moved on, or dead-lettered), and one this far ahead of the worker's wall clock is
    #: dead-lettered at once; empty: no limit
    max_future_skew: Duration | None = Duration("10m")
    #: events more than this behind the worker's wall clock are dead-lettered (unset: no limit)
    max_event_age: Duration | None = None
    #: unit of epoch-number timestamps; ``auto`` reads them by magnitude (see monitor/timestamps.py)
    timestamp_unit: Literal["s", "ms", "us", "ns", "auto"] = "auto"
    #: ``event``: the event's timestamp field; ``record``: the Kafka record's timestamp, always
    timestamp_source: Literal["event", "record"] = "event"
    #: the producer's names for Driftline's event fields, e.g. ``{model: model_name, features: payload.inputs}``
    fields: dict[EventField, str] = Field(default_factory=dict)
    #: build a model's reference from its first N events when it has no reference profile
    warmup_events: Annotated[int, Field(ge=0)] = 0
    #: keep raw values to compute exact KS (matches scipy.ks_2samp) instead of binned KS
    exact_ks: bool = False
    #: categorical features whose values get their own window state (docs/measurements.md, "Segments");
    #: MONITOR_SEGMENTS=country,device or a JSON list. The reference must be built with the same segments
    segments: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: per segment feature, at most this many values (the most frequent in the reference) get their own
    #: state; the other values seen in the reference pool into ``__other__``
    segment_max_values: int = Field(default=20, ge=1, le=1000)

    reference: Path | None = None
    influx_url: SecretUrl | None = None
    influx_token: SecretStr | None = None
    influx_org: str = "driftline"
    influx_bucket: str = "driftline"
    lp_file: Path | None = None

    webhook_url: SecretUrl | None = None
    webhook_secret: SecretStr | None = None
    alertmanager_url: SecretUrl | None = None
    slack_webhook_url: SecretStr | None = None
    pagerduty_routing_key: SecretStr | None = None
    repeat_interval: Duration = Duration("4h")
    external_url: str = "http://localhost:3000/d/driftline-drift"
    source: str = "driftline/default"

    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    #: trailing and seasonal baselines next to the training profile (monitor/baselines_config.py)
    baselines: BaselinesConfig = Field(default_factory=BaselinesConfig)

    @field_serializer("influx_url", "webhook_url", "alertmanager_url", when_used="json")
    def _show_url(self, v: SecretUrl | None) -> str | None:
        return None if v is None else str(v)  # redacted: host and path stay readable in logs

    @field_validator(*_POSITIVE)
    @classmethod
    def _check_positive(cls, v: Duration | None) -> Duration | None:
        return _bounded(v, positive=True)

    @field_validator(*_NON_NEGATIVE)
    @classmethod
    def _check_non_negative(cls, v: Duration | None) -> Duration | None:
        return _bounded(v, positive=False)

    @field_validator("max_event_age")
    @classmethod
    def _check_age(cls, v: Duration | None) -> Duration | None:
        return _bounded(v, positive=True, limit=100 * 365 * 86400.0)

    @field_validator("predictions_topic", "retraining_topic", "dlq_topic")
    @classmethod
    def _check_topic(cls, v: str) -> str:
        if not _TOPIC.match(v):
            raise ValueError(f"{v!r} is not a Kafka topic name (1-249 of A-Z a-z 0-9 . _ -)")
        return v

    @field_validator("segments", mode="before")
    @classmethod
    def _split_segments(cls, v: Any) -> Any:
        if isinstance(v, str):  # from the environment: "country,device" or a JSON list
            text = v.strip()
            if text.startswith("["):
                import json

                try:
                    return json.loads(text)
                except ValueError as exc:
                    raise ValueError(f"not a JSON list of feature names ({exc})") from None
            return [part.strip() for part in text.split(",") if part.strip()]
        return v

    @field_validator("segments")
    @classmethod
    def _check_segments(cls, v: list[str]) -> list[str]:
        for name in v:
            if not name or name.startswith("__") or "=" in name:
                raise ValueError(f"{name!r} is not a feature name (empty, '=' or a reserved __name__)")
            check_name(name, "segment feature")
        if len(set(v)) != len(v):
            raise ValueError("a feature is listed twice")
        return v

    @field_validator("labels_topic", "checkpoint_topic", "partials_topic", "references_topic")
    @classmethod
    def _check_optional_topic(cls, v: str) -> str:
        return cls._check_topic(v) if v else v

    @field_validator("hop", "max_future_skew", "max_event_age", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("worker_name")
    @classmethod
    def _check_worker_name(cls, v: str) -> str:
        return check_name(v, "worker name") if v else v

    @field_validator("models")
    @classmethod
    def _check_models(cls, v: list[str] | None) -> list[str] | None:
        for name in v or ():
            if not name:
                raise ValueError("a declared model name is empty")
            check_name(name, "model name")
        return v

    @field_validator("fields")
    @classmethod
    def _check_fields(cls, v: dict[str, str]) -> dict[str, str]:
        for name, path in v.items():
            if not _PATH.match(path):
                raise ValueError(f"{name}: {path!r} is not a field name or dotted path such as 'payload.inputs'")
        return v

    @field_validator(*SECRET_SETTINGS, "influx_url", "webhook_url", "alertmanager_url")
    @classmethod
    def _check_not_empty(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().strip():
            raise ValueError("is set but empty: unset it, or give a value (an empty secret would silently "
                             "turn signing or authentication off)")
        return v

    @field_validator("reference")
    @classmethod
    def _check_reference(cls, v: Path | None) -> Path | None:
        if v is None:
            return v
        if not v.exists():
            raise ValueError(f"{v}: no such file or directory")
        if v.is_dir():
            if not os.access(v, os.R_OK | os.X_OK):
                raise ValueError(f"{v}: directory is not readable")
            if not any(v.glob("*.json")):
                raise ValueError(f"{v}: no reference profiles (*.json) in this directory")
        elif not os.access(v, os.R_OK):
            raise ValueError(f"{v}: file is not readable")
        return v

    @model_validator(mode="after")
    def _internal_topics(self) -> MonitorSettings:
        for key, suffix in (("checkpoint_topic", "checkpoints"), ("partials_topic", "partials"),
                            ("references_topic", "references")):
            if not getattr(self, key):
                topic = f"{self.consumer_group}.{suffix}"
                if not _TOPIC.match(topic):
                    raise ValueError(f"consumer_group {self.consumer_group!r} gives the topic name {topic!r}, "
                                     f"which Kafka refuses (1-249 of A-Z a-z 0-9 . _ -): set {key}")
                object.__setattr__(self, key, topic)
        return self

    @model_validator(mode="after")
    def _baselines_fit_the_window(self) -> MonitorSettings:
        self.baselines.check_window(self.window_s)
        return self

    @model_validator(mode="after")
    def _consistent(self) -> MonitorSettings:
        if self.hop is not None and self.hop > self.window:
            raise ValueError(f"hop ({self.hop.text}) must not be larger than window ({self.window.text})")
        if self.heartbeat_interval >= self.session_timeout:
            raise ValueError(f"heartbeat_interval ({self.heartbeat_interval.text}) must be shorter than "
                             f"session_timeout ({self.session_timeout.text})")
        return self

    @property
    def window_s(self) -> float:
        return float(self.window)

    @property
    def hop_s(self) -> float:
        return float(self.hop) if self.hop else self.window_s

    @property
    def allowed_lateness_s(self) -> float:
        return float(self.allowed_lateness)

    @property
    def idle_timeout_s(self) -> float:
        return float(self.idle_timeout)

    @property
    def max_future_skew_s(self) -> float | None:
        return float(self.max_future_skew) if self.max_future_skew is not None else None

    @property
    def label_grace_s(self) -> float:
        return float(self.label_grace)

    @property
    def dedup_horizon_s(self) -> float | None:
        return float(self.dedup_horizon) if self.dedup_horizon is not None else None

    @property
    def broker_wait_s(self) -> float:
        return float(self.broker_wait)

    @property
    def flush_interval_s(self) -> float:
        return float(self.flush_interval)

    @property
    def repeat_interval_s(self) -> float:
        return float(self.repeat_interval)

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
                       sasl_plain_password=self.sasl_password.get_secret_value() if self.sasl_password else None)
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out

    def redacted(self) -> dict[str, Any]:
        """Settings as a dict safe to log: secrets masked, URLs without credentials."""
        return self.model_dump(mode="json")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[Any, ...]:
        # keyword arguments (command-line options) > environment > MONITOR_*_FILE secrets > the YAML file
        from monitor.config_load import file_sources

        return (init_settings, env_settings, *file_sources())


def load_settings(config: Path | str | None = None, **overrides: Any) -> MonitorSettings:
    """Load settings from ``config`` (or ``$MONITOR_CONFIG``), the environment and command-line
    ``overrides``; :class:`ConfigError` names every bad key and where it came from. See
    :func:`monitor.config_load.load_settings`."""
    from monitor.config_load import load_settings as load

    return load(config, **overrides)

__all__ = ["ConfigError", "Duration", "MethodThresholds", "MonitorSettings", "PolicyConfig", "SecretUrl",
           "format_duration", "load_settings", "parse_duration", "reveal"]
