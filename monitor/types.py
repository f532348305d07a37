"""Frozen value types shared by the pure core, the pipeline and the adapters.

Nothing here does I/O. Times are epoch seconds (``float``) inside the core; points carry
nanoseconds because that is what line protocol writes.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

from monitor.names import name_problem

FeatureValue = float | str | bool | None
Severity = Literal["warning", "critical"]
AlertStatus = Literal["firing", "resolved"]

#: feature tag used for whole-event data-quality problems (docs/measurements.md)
EVENT_FEATURE = "__event__"
#: pseudo-features for prediction and score drift (docs/measurements.md)
PREDICTION_FEATURE = "__prediction__"
SCORE_FEATURE = "__score__"
PSEUDO_FEATURES = (PREDICTION_FEATURE, SCORE_FEATURE)
#: model tag of dead letters whose model could not be read (not JSON, no ``model`` field, …)
UNKNOWN_MODEL = "__unknown__"


def rfc3339(ts: float) -> str:
    """Format epoch seconds as RFC 3339 UTC with millisecond precision.

    >>> rfc3339(0.0)
    '1970-01-01T00:00:00.000Z'
    """
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class PredictionEvent(msgspec.Struct, frozen=True):
    """One model call (docs/events.md, topic ``predictions``). A msgspec Struct: built once per consumed
    event, and its C-level constructor is several times cheaper than a frozen dataclass's."""

    model: str
    request_id: str
    timestamp: float
    features: Mapping[str, FeatureValue]
    prediction: float | str | None
    model_version: str | None = None
    score: float | None = None
    latency_ms: float | None = None
    error: str | None = None


class LabelEvent(msgspec.Struct, frozen=True):
    """Ground truth for an earlier prediction (docs/events.md, topic ``labels``)."""

    model: str
    request_id: str
    timestamp: float
    label: float | str | bool


@dataclass(frozen=True, slots=True)
class Rejection:
    """An input that failed decoding or validation; goes to the dead-letter topic."""

    reason: str
    raw: bytes
    topic: str = ""
    partition: int = -1
    offset: int = -1
    #: model name when it could be recovered from the raw event (for per-model ``invalid`` counts)
    model: str | None = None
    #: event time when it could be recovered, else None (the pipeline then uses its watermark)
    timestamp: float | None = None

    def to_dlq(self, received_at: float) -> dict[str, Any]:
        """The dead-letter record of docs/events.md."""
        return {
            "reason": self.reason,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "received_at": rfc3339(received_at),
            "raw": self.raw.decode("utf-8", errors="replace"),
        }


@dataclass(frozen=True, slots=True, order=True)
class WindowRange:
    """Half-open event-time interval ``[start, end)`` in epoch seconds."""

    start: float
    end: float


FieldValue = float | int | bool | str

#: InfluxDB's timestamp range (ns): int64 without its two extreme values
MIN_TIME_NS, MAX_TIME_NS = -(2**63) + 2, 2**63 - 2
#: tag and field keys the InfluxDB servers refuse (1.x: ``time``; 2.x: ``_measurement``, ``_field``)
RESERVED_KEYS = frozenset({"time", "_measurement", "_field"})


def _token(value: str, what: str, *, measurement: bool = False) -> str:
    """An escaped measurement, tag key/value or field key; :class:`ValueError` for what the line protocol
    cannot carry (see :mod:`monitor.names`). A measurement escapes ``,`` and space, the others ``=`` too."""
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(f"line protocol: {what} {value[:80]!r} {problem}")
    if "," in value:
        value = value.replace(",", "\\,")
    if " " in value:
        value = value.replace(" ", "\\ ")
    if not measurement and "=" in value:
        value = value.replace("=", "\\=")
    return value


def _format_field(key: str, value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"line protocol: integer field {key!r} = {value} is outside int64")
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"line protocol: float field {key!r} is {value!r} (InfluxDB stores finite numbers only)")
        return repr(value)
    # newlines are written as the two characters \n, \r: the line protocol has no newline in a value
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One InfluxDB point (docs/measurements.md). ``time_ns`` is the window end.

    >>> MetricPoint("errors", (("model", "m a"),), (("errors", 2), ("rate", 0.5)), 10).to_line()
    'errors,model=m\\\\ a errors=2i,rate=0.5 10'
    """

    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, FieldValue], ...]
    time_ns: int

    def tag(self, key: str) -> str | None:
        for k, v in self.tags:
            if k == key:
                return v
        return None

    def field(self, key: str) -> FieldValue | None:
        for k, v in self.fields:
            if k == key:
                return v
        return None

    def series_key(self) -> tuple[str, tuple[tuple[str, str], ...], int]:
        """Identity of the point in InfluxDB: rewriting it overwrites (idempotence)."""
        return (self.measurement, tuple(sorted(self.tags)), self.time_ns)

    def to_line(self) -> str:
        """Line protocol with tags sorted (InfluxDB's preferred order); empty tag values dropped.

        Escapes what the protocol requires (``,``, ``=`` and space in names; ``\\`` and ``"`` in string
        values, whose newlines become the two characters ``\\n``) and raises :class:`ValueError` for what
        it cannot carry: a name refused by :func:`monitor.names.name_problem`, an empty or ``#``-leading
        measurement, an empty or reserved key, no fields, a non-finite float, an integer or a time outside
        InfluxDB's range.

        >>> MetricPoint("drift", (("model", "a\\nb"),), (("score", 1.0),), 0).to_line()
        Traceback (most recent call last):
        ...
        ValueError: line protocol: tag value 'a\\nb' contains a control character (U+000A)
        """
        m = self.measurement
        if not m or m[0] == "#":
            raise ValueError(f"line protocol: measurement {m!r} is empty or starts a comment (#)")
        if not self.fields:
            raise ValueError(f"line protocol: point {m!r} has no fields")
        if not MIN_TIME_NS <= self.time_ns <= MAX_TIME_NS:
            raise ValueError(f"line protocol: time {self.time_ns} ns is outside InfluxDB's range")
        parts = [_token(m, "measurement", measurement=True)]
        for k, v in sorted(self.tags):
            if v == "":
                continue
            if k in RESERVED_KEYS or not k:
                raise ValueError(f"line protocol: tag key {k!r} is empty or reserved")
            parts.append(f",{_token(k, 'tag key')}={_token(v, 'tag value')}")
        sep = " "
        for k, value in self.fields:
            if k in RESERVED_KEYS or not k:
                raise ValueError(f"line protocol: field key {k!r} is empty or reserved")
            parts.append(f"{sep}{_token(k, 'field key')}={_format_field(k, value)}")
            sep = ","
        parts.append(f" {self.time_ns}")
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class DriftResult:
    """One drift statistic for one feature in one window."""

    feature: str
    method: str
    score: float
    threshold: float
    drifted: bool
    n: int
    p_value: float | None = None
    #: documented error bound for binned approximations (binned KS), else None
    error_bound: float | None = None
    #: this method's own verdict: significant (when the feature has a test) and beyond ``threshold``.
    #: ``drifted`` is the policy's verdict for the feature, the same on every method of the feature.
    exceeds: bool = False


def fingerprint(labels: Mapping[str, str]) -> str:
    """Stable 16-hex-digit hash of an alert's labels (sorted ``k=v`` pairs).

    >>> fingerprint({"b": "2", "a": "1"}) == fingerprint({"a": "1", "b": "2"})
    True
    """
    canon = "\x1f".join(f"{k}={labels[k]}" for k in sorted(labels))
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Alert:
    """A firing or resolved alert; labels and annotations as in docs/webhook-verification.md.

    ``starts_at``/``ends_at`` are event times (epoch s). ``ends_at`` is None while firing.
    """

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    status: AlertStatus
    starts_at: float
    ends_at: float | None = None
    generator_url: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "warning")

    @property
    def model(self) -> str:
        return self.labels.get("model", "")

    def to_dict(self) -> dict[str, Any]:
        """The ``alerts[]`` entry of an Alertmanager webhook v4 payload."""
        return {
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": rfc3339(self.starts_at),
            "endsAt": rfc3339(self.ends_at) if self.ends_at is not None else "0001-01-01T00:00:00Z",
            "generatorURL": self.generator_url,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True, slots=True)
class Evidence:
    feature: str
    method: str
    score: float
    threshold: float
    #: the segment (``country=PL``) the statistic is about; empty: the whole model
    segment: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"feature": self.feature, "method": self.method, "score": self.score,
                               "threshold": self.threshold}
        if self.segment:
            out["segment"] = self.segment
        return out


RETRAIN_NAMESPACE = uuid.UUID("6c1f3a52-2b1e-4f3e-9a57-3f1d2c0b9e41")


@dataclass(frozen=True, slots=True)
class RetrainRequest:
    """A retraining request; serialised as the CloudEvent of docs/retraining.md.

    ``window`` is the window that completed the streak; ``drift_since`` the start of the streak's first
    window (epoch s; None: the window's start), so ``[drift_since, window.end)`` is the data that moved.
    ``reference`` identifies the profile compared against (``ReferenceProfile.content_hash``).
    """

    model: str
    model_version: str | None
    reason: Literal["drift", "performance", "data_quality"]
    window: WindowRange
    evidence: tuple[Evidence, ...]
    consecutive_windows: int
    cooldown_s: float
    drift_since: float | None = None
    reference: str = ""

    @property
    def event_id(self) -> str:
        """Deterministic id: a replay of the same window yields the same id (consumers can dedupe)."""
        key = f"{self.model}|{self.model_version or ''}|{self.reason}|{self.window.end!r}"
        return str(uuid.uuid5(RETRAIN_NAMESPACE, key))

    def to_cloudevent(self, source: str = "driftline/default") -> dict[str, Any]:
        return {
            "specversion": "1.0",
            "type": "io.driftline.retraining.requested",
            "source": source,
            "id": self.event_id,
            "time": rfc3339(self.window.end),
            "subject": self.model,
            "datacontenttype": "application/json",
            "data": {
                "model": self.model,
                "model_version": self.model_version or "",
                "reason": self.reason,
                "window": {"start": rfc3339(self.window.start), "end": rfc3339(self.window.end)},
                "drift_since": rfc3339(self.window.start if self.drift_since is None else self.drift_since),
                "reference": self.reference,
                "evidence": [e.to_dict() for e in self.evidence],
                "policy": {"consecutive_windows": self.consecutive_windows,
                           "cooldown_s": self.cooldown_s},
            },
        }


@dataclass(frozen=True, slots=True)
class Emission:
    """What one ``advance(watermark)`` of the pipeline produces."""

    points: tuple[MetricPoint, ...] = ()
    alerts: tuple[Alert, ...] = ()
    retrain: tuple[RetrainRequest, ...] = ()
    #: windows that closed in this emission, as (model, model_version, range)
    closed: tuple[tuple[str, str | None, WindowRange], ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return bool(self.points or self.alerts or self.retrain)
