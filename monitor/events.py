"""Decoding and validation of input events (CONTRACT §1) with msgspec.

Every rejection carries a human-readable reason; nothing here raises on bad input. A label event is
recognised by its ``label`` field.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Annotated, Any

import msgspec

from monitor.types import FeatureValue, LabelEvent, PredictionEvent, Rejection

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Timestamp = float | str
#: timestamps outside [1970, 2200) are rejected: they are almost certainly unit mistakes (ms, µs)
MIN_TS, MAX_TS = 0.0, 7_258_118_400.0
MAX_FEATURES = 2_000
MAX_STRING = 10_000


class _Prediction(msgspec.Struct, forbid_unknown_fields=False):
    model: Name
    request_id: Name
    timestamp: Timestamp
    features: dict[str, FeatureValue]
    prediction: int | float | str | None
    model_version: str | None = None
    score: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    latency_ms: Annotated[float, msgspec.Meta(ge=0.0)] | None = None
    error: str | None = None


class _Label(msgspec.Struct, forbid_unknown_fields=False):
    model: Name
    request_id: Name
    timestamp: Timestamp
    label: int | float | str | bool


class _Probe(msgspec.Struct, forbid_unknown_fields=False):
    model: Any = None
    timestamp: Any = None
    label: Any = msgspec.UNSET


FeatureName = Annotated[str, msgspec.Meta(max_length=200)]
FeatureString = Annotated[str, msgspec.Meta(max_length=MAX_STRING)]


class _Fast(msgspec.Struct, forbid_unknown_fields=False):
    """Every field of both event kinds, with the limits the slow path checks, for a one-pass decode of
    well-formed events. JSON cannot encode a non-finite number (msgspec rejects ``NaN`` and overflow such
    as ``1e400``), so the finiteness checks of :func:`_check_numbers` cannot fail for decoded input."""

    model: Name
    request_id: Name
    timestamp: float | str
    features: Annotated[dict[FeatureName, float | FeatureString | bool | None],
                        msgspec.Meta(max_length=MAX_FEATURES)] | msgspec.UnsetType = msgspec.UNSET
    prediction: int | float | str | msgspec.UnsetType | None = msgspec.UNSET
    label: int | float | str | bool | msgspec.UnsetType = msgspec.UNSET
    model_version: str | None = None
    score: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    latency_ms: Annotated[float, msgspec.Meta(ge=0.0)] | None = None
    error: str | None = None


_fast_decoder = msgspec.json.Decoder(_Fast)
_probe_decoder = msgspec.json.Decoder(_Probe)
_prediction_decoder = msgspec.json.Decoder(_Prediction)
_label_decoder = msgspec.json.Decoder(_Label)


def parse_timestamp(value: float | str) -> float:
    """RFC 3339 string or epoch seconds → epoch seconds. Raises ValueError with a reason.

    >>> parse_timestamp("2026-01-01T00:00:00Z"), parse_timestamp(1767225600)
    (1767225600.0, 1767225600.0)
    """
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"timestamp {value[:40]!r} is not RFC 3339 or epoch seconds") from None
        if dt.tzinfo is None:
            raise ValueError(f"timestamp {value[:40]!r} has no time zone offset (RFC 3339 requires one)")
        ts = dt.timestamp()
    else:
        ts = float(value)
    if not math.isfinite(ts):
        raise ValueError("timestamp is not a finite number")
    if not MIN_TS <= ts < MAX_TS:
        raise ValueError(f"timestamp {ts:g} is outside 1970..2200 (epoch seconds expected, not ms)")
    return ts


def _reason(exc: msgspec.ValidationError | msgspec.DecodeError) -> str:
    text = str(exc)
    if isinstance(exc, msgspec.ValidationError):  # a subclass of DecodeError: test it first
        return f"invalid event: {text}"
    return f"invalid JSON: {text}"


def _check_numbers(features: dict[str, FeatureValue], *values: float | str | None) -> str | None:
    if len(features) > MAX_FEATURES:
        return f"invalid event: {len(features)} features (max {MAX_FEATURES})"
    for name, v in features.items():
        if isinstance(v, float) and not math.isfinite(v):
            return f"invalid event: feature {name[:80]!r} is not a finite number"
        if isinstance(v, str) and len(v) > MAX_STRING:
            return f"invalid event: feature {name[:80]!r} is longer than {MAX_STRING} characters"
        if len(name) > 200:
            return "invalid event: a feature name is longer than 200 characters"
    for v in values:
        if isinstance(v, float) and not math.isfinite(v):
            return "invalid event: a number is not finite"
    return None


def decode_any(
    raw: bytes,
    *,
    topic: str = "",
    partition: int = -1,
    offset: int = -1,
    max_bytes: int = 1_000_000,
    models: frozenset[str] | set[str] | None = None,
) -> PredictionEvent | LabelEvent | Rejection:
    """Decode one Kafka message value into a prediction, a label, or a rejection with a reason.

    With ``models`` (the declared models), events of any other model are rejected.

    >>> decode_any(b'{"model":"m","request_id":"r","timestamp":1,"label":1}').label
    1
    >>> decode_any(b'{"model":"m"').reason.startswith("invalid JSON")
    True
    """

    def reject(reason: str, model: str | None = None, ts: float | None = None) -> Rejection:
        return Rejection(reason=reason, raw=bytes(raw[:max_bytes]), topic=topic, partition=partition,
                         offset=offset, model=model, timestamp=ts)

    if len(raw) > max_bytes:
        return reject(f"oversize event: {len(raw)} bytes (max {max_bytes})")
    fast = _decode_fast(raw, models)
    if fast is not None:
        return fast
    try:
        return _decode(raw, reject, models)
    except RecursionError:
        return reject("invalid event: JSON nested too deeply")


def _decode_fast(raw: bytes, models: frozenset[str] | set[str] | None) -> PredictionEvent | LabelEvent | None:
    """One decode for a valid event; ``None`` sends anything unusual to :func:`_decode`, which gives the
    rejection its reason (tests/test_hostile_input.py checks that both paths agree)."""
    try:
        ev = _fast_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return None
    if models is not None and ev.model not in models:
        return None
    ts = ev.timestamp
    if type(ts) is float and MIN_TS <= ts < MAX_TS:
        pass
    else:
        try:
            ts = parse_timestamp(ts)
        except (ValueError, TypeError, OverflowError):
            return None
    if ev.label is not msgspec.UNSET:
        return LabelEvent(model=ev.model, request_id=ev.request_id, timestamp=ts, label=ev.label)
    if ev.features is msgspec.UNSET or ev.prediction is msgspec.UNSET:
        return None
    if ev.prediction is None and ev.error is None:
        return None
    return PredictionEvent(
        model=ev.model, request_id=ev.request_id, timestamp=ts, features=ev.features,
        prediction=ev.prediction, model_version=ev.model_version, score=ev.score,
        latency_ms=ev.latency_ms, error=ev.error,
    )


def _decode(raw: bytes, reject: Callable[..., Rejection],
            models: frozenset[str] | set[str] | None) -> PredictionEvent | LabelEvent | Rejection:
    try:
        probe = _probe_decoder.decode(raw)
    except msgspec.ValidationError:
        return reject("invalid event: the top level must be a JSON object")
    except msgspec.DecodeError as exc:
        return reject(_reason(exc))
    model = probe.model if isinstance(probe.model, str) and 0 < len(probe.model) <= 200 else None
    if models is not None and model is not None and model not in models:
        return reject(f"unknown model {model!r}: not among the declared models", None)
    try:
        ts_hint = parse_timestamp(probe.timestamp) if probe.timestamp is not None else None
    except (ValueError, TypeError, OverflowError):
        ts_hint = None
    try:
        if probe.label is not msgspec.UNSET:
            lab = _label_decoder.decode(raw)
            if isinstance(lab.label, float) and not math.isfinite(lab.label):
                return reject("invalid event: label is not a finite number", model, ts_hint)
            ts = parse_timestamp(lab.timestamp)
            return LabelEvent(model=lab.model, request_id=lab.request_id, timestamp=ts, label=lab.label)
        ev = _prediction_decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return reject(_reason(exc), model, ts_hint)
    except ValueError as exc:
        return reject(f"invalid event: {exc}", model, ts_hint)
    try:
        ts = parse_timestamp(ev.timestamp)
    except ValueError as exc:
        return reject(f"invalid event: {exc}", model, None)
    problem = _check_numbers(ev.features, ev.prediction, ev.score, ev.latency_ms)
    if problem is not None:
        return reject(problem, model, ts)
    if ev.prediction is None and ev.error is None:
        return reject("invalid event: prediction is null without an error", model, ts)
    return PredictionEvent(
        model=ev.model, request_id=ev.request_id, timestamp=ts, features=ev.features,
        prediction=ev.prediction, model_version=ev.model_version, score=ev.score,
        latency_ms=ev.latency_ms, error=ev.error,
    )


def decode_lines(
    lines: Iterable[bytes], *, topic: str = "file", max_bytes: int = 1_000_000
) -> Iterable[PredictionEvent | LabelEvent | Rejection]:
    """Decode JSON lines (blank lines skipped); ``offset`` is the 0-based line number."""
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped:
            continue
        yield decode_any(stripped, topic=topic, partition=0, offset=i, max_bytes=max_bytes)
