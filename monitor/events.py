"""Decoding and validation of input events (docs/events.md) with msgspec.

Every rejection carries a human-readable reason; nothing here raises on bad input. A label event is
recognised by its ``label`` field. The decoder is pure: the wall clock (``now``) and the Kafka record's
timestamp are arguments, and :class:`DecodeOptions` (built once from the settings) carries the rest.

* **Names** that become InfluxDB tags (model, model version, feature names) must pass
  :func:`monitor.names.name_problem`; a request id must have no control character.
* **Time**: RFC 3339 or an epoch number in ``timestamp_unit`` (see :mod:`monitor.timestamps`); with
  ``now``, an event more than ``max_future_skew`` ahead of it (or, when set, more than ``max_event_age``
  behind it) is rejected. ``timestamp_source: record`` takes every event's time from its Kafka record
  instead (the event's own timestamp field is then ignored and may be absent).
* **Field names** of the producer map onto Driftline's with ``fields`` (dotted paths for nested objects).
  Without a mapping (the default) a well-formed event is decoded in one msgspec pass; with one, the event
  is decoded into a generic object, its fields picked out, and the result validated the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from monitor.config import format_duration
from monitor.names import control_problem, name_problem
from monitor.timestamps import MAX_TS, MIN_TS, TimestampUnit, parse_timestamp, time_problem, unit_divisor
from monitor.types import FeatureValue, LabelEvent, PredictionEvent, Rejection

if TYPE_CHECKING:
    from monitor.config import MonitorSettings

__all__ = ["CANONICAL_FIELDS", "DecodeOptions", "decode_any", "decode_lines", "parse_timestamp", "strip_bom"]

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Timestamp = float | str
MAX_FEATURES = 2_000
MAX_STRING = 10_000
#: Driftline's event fields, which ``fields`` may map onto the producer's own names
CANONICAL_FIELDS = ("model", "request_id", "timestamp", "features", "prediction", "label", "model_version",
                    "score", "latency_ms", "error")
BOM = b"\xef\xbb\xbf"

FeatureName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
FeatureString = Annotated[str, msgspec.Meta(max_length=MAX_STRING)]
Version = Annotated[str, msgspec.Meta(max_length=200)]


class _Prediction(msgspec.Struct, forbid_unknown_fields=False):
    model: Name
    request_id: Name
    timestamp: Timestamp
    features: dict[FeatureName, FeatureValue]
    prediction: int | float | str | None
    model_version: Version | None = None
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
    model_version: Version | None = None
    score: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] | None = None
    latency_ms: Annotated[float, msgspec.Meta(ge=0.0)] | None = None
    error: str | None = None


_fast_decoder = msgspec.json.Decoder(_Fast)
_probe_decoder = msgspec.json.Decoder(_Probe)
_prediction_decoder = msgspec.json.Decoder(_Prediction)
_label_decoder = msgspec.json.Decoder(_Label)
_generic_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()
#: bytes that can put a control character or a backslash into a decoded string: JSON escapes (every
#: backslash in a JSON string is escaped), DEL, UTF-8 C1 controls and U+2028/U+2029
_SUSPECT = re.compile(rb"\\|\x7f|\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]")


def _suspect(raw: bytes) -> bool:
    """Whether a decoded name of ``raw`` could hold a control character or a backslash (the common, plain
    ASCII event is answered by two ``memchr`` scans and ``isascii``, several times cheaper than the regex)."""
    if raw.isascii():
        return b"\\" in raw or b"\x7f" in raw
    return _SUSPECT.search(raw) is not None


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """What :func:`decode_any` checks and how it reads producers' events; build it once with
    :meth:`from_settings` and pass it to every call (the worker and ``monitor replay`` do)."""

    max_bytes: int = 1_000_000
    #: declared models; events of any other model are rejected
    models: frozenset[str] | None = None
    #: with ``now``: reject events further ahead of it (None: no limit)
    max_future_skew_s: float | None = 600.0
    #: with ``now``: reject events further behind it (None: no limit)
    max_event_age_s: float | None = None
    timestamp_unit: TimestampUnit = "auto"
    timestamp_source: Literal["event", "record"] = "event"
    #: ``(driftline_name, dotted path in the producer's event)`` for the names that differ
    fields: tuple[tuple[str, str], ...] = ()
    #: the settings' own spelling of the limits, for rejection reasons (default: derived from the seconds)
    skew_text: str = ""
    age_text: str = ""
    #: True when events need the generic (remapping) decode (derived from ``fields`` and ``timestamp_source``)
    mapped: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        for name, path in self.fields:
            if name not in CANONICAL_FIELDS:
                raise ValueError(f"fields: {name!r} is not an event field (one of {', '.join(CANONICAL_FIELDS)})")
            if not path or any(not part for part in path.split(".")):
                raise ValueError(f"fields.{name}: {path!r} is not a dotted path such as 'payload.inputs'")
        object.__setattr__(self, "mapped", bool(self.fields) or self.timestamp_source == "record")
        if not self.skew_text and self.max_future_skew_s is not None:
            object.__setattr__(self, "skew_text", format_duration(self.max_future_skew_s))
        if not self.age_text and self.max_event_age_s is not None:
            object.__setattr__(self, "age_text", format_duration(self.max_event_age_s))

    @classmethod
    def from_settings(cls, settings: MonitorSettings) -> DecodeOptions:
        """The options of ``settings`` (``max_event_bytes``, ``models``, ``max_future_skew``,
        ``max_event_age``, ``timestamp_unit``, ``timestamp_source``, ``fields``)."""
        skew, age = settings.max_future_skew, settings.max_event_age
        return cls(
            max_bytes=settings.max_event_bytes,
            models=frozenset(settings.models) if settings.models else None,
            max_future_skew_s=float(skew) if skew is not None else None,
            max_event_age_s=float(age) if age is not None else None,
            timestamp_unit=settings.timestamp_unit, timestamp_source=settings.timestamp_source,
            fields=tuple((k, v) for k, v in sorted((settings.fields or {}).items()) if k != v),
            skew_text=str(skew) if skew is not None else "", age_text=str(age) if age is not None else "",
        )


DEFAULT_OPTIONS = DecodeOptions()


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
    for v in values:
        if isinstance(v, float) and not math.isfinite(v):
            return "invalid event: a number is not finite"
    return None


def _names_problem(model: str, request_id: str, model_version: str | None,
                   features: Iterable[str] = ()) -> str | None:
    """Why a name of the event cannot be accepted (it would break the metrics store's line protocol)."""
    for what, name in (("model name", model), ("model_version", model_version)):
        if name is not None and (p := name_problem(name)) is not None:
            return f"invalid event: {what} {name[:80]!r} {p}"
    if (p := control_problem(request_id)) is not None:
        return f"invalid event: request_id {request_id[:80]!r} {p}"
    for name in features:
        if (p := name_problem(name)) is not None:
            return f"invalid event: feature name {name[:80]!r} {p}"
    return None


def _insane(ts: float, opts: DecodeOptions, now: float | None) -> str | None:
    if now is None:
        return None
    return time_problem(ts, now, opts.max_future_skew_s, opts.max_event_age_s, opts.skew_text, opts.age_text)


def decode_any(
    raw: bytes,
    *,
    topic: str = "",
    partition: int = -1,
    offset: int = -1,
    options: DecodeOptions | None = None,
    now: float | None = None,
    record_timestamp_ms: int | None = None,
    max_bytes: int | None = None,
    models: frozenset[str] | set[str] | None = None,
) -> PredictionEvent | LabelEvent | Rejection:
    """Decode one Kafka message value into a prediction, a label, or a rejection with a reason.

    ``options`` (default :class:`DecodeOptions`) says what to accept; ``now`` (epoch s) enables the
    wall-clock sanity rule; ``record_timestamp_ms`` is the Kafka record's timestamp, used with
    ``timestamp_source: record``. ``max_bytes`` and ``models``, when given, override the options'.

    >>> decode_any(b'{"model":"m","request_id":"r","timestamp":1,"label":1}').label
    1
    >>> decode_any(b'{"model":"m"').reason.startswith("invalid JSON")
    True
    >>> decode_any(b'{"model":"m","request_id":"r","timestamp":"2100-01-01T00:00:00Z","label":1}',
    ...            now=1767225600.0).reason
    'invalid event: timestamp 2100-01-01T00:00:00Z is 27,028 days ahead of the wall clock (max_future_skew 10m)'
    """
    opts = options if options is not None else DEFAULT_OPTIONS
    if max_bytes is not None or models is not None:
        opts = replace(opts, max_bytes=opts.max_bytes if max_bytes is None else max_bytes,
                       models=opts.models if models is None else frozenset(models))
    if len(raw) <= opts.max_bytes and not opts.mapped:
        fast = _decode_fast(raw, opts, now)
        if fast is not None:
            return fast

    def reject(reason: str, model: str | None = None, ts: float | None = None) -> Rejection:
        return Rejection(reason=reason, raw=bytes(raw[:opts.max_bytes]), topic=topic, partition=partition,
                         offset=offset, model=model, timestamp=ts)

    if len(raw) > opts.max_bytes:
        return reject(f"oversize event: {len(raw)} bytes (max {opts.max_bytes})")
    if opts.mapped:
        return _decode_mapped(raw, reject, opts, now, record_timestamp_ms)
    try:
        return _decode(raw, reject, opts, now)
    except RecursionError:
        return reject("invalid event: JSON nested too deeply")


def _decode_fast(raw: bytes, opts: DecodeOptions, now: float | None,
                 unit: TimestampUnit | None = None) -> PredictionEvent | LabelEvent | None:
    """One decode for a valid event; ``None`` sends anything unusual to :func:`_decode`, which gives the
    rejection its reason (tests/test_hostile_input.py checks that both paths agree)."""
    try:
        ev = _fast_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError):  # ValidationError is a DecodeError
        return None
    models = opts.models
    if models is not None and ev.model not in models:
        return None
    ts = ev.timestamp
    unit = unit or opts.timestamp_unit
    if type(ts) is float:
        if unit == "auto":
            if not -1e11 < ts < 1e11:
                ts = ts / unit_divisor(ts, unit)[0]
        elif unit != "s":
            ts = ts / unit_divisor(ts, unit)[0]
        if not MIN_TS <= ts < MAX_TS:
            return None
    else:
        try:
            ts = parse_timestamp(ts, unit)
        except (ValueError, TypeError, OverflowError):
            return None
    if now is not None:  # the rule of monitor.timestamps.time_problem, inlined on the hot path
        skew, age = opts.max_future_skew_s, opts.max_event_age_s
        if (skew is not None and ts > now + skew) or (age is not None and ts < now - age):
            return None
    if (not raw.isascii() or b"\\" in raw or b"\x7f" in raw) and _suspect(raw) and _names_problem(
            ev.model, ev.request_id, ev.model_version, () if ev.features is msgspec.UNSET else ev.features):
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


def _decode(raw: bytes, reject: Callable[..., Rejection], opts: DecodeOptions, now: float | None,
            unit: TimestampUnit | None = None) -> PredictionEvent | LabelEvent | Rejection:
    unit = unit or opts.timestamp_unit
    try:
        probe = _probe_decoder.decode(raw)
    except msgspec.ValidationError:
        return reject("invalid event: the top level must be a JSON object")
    except msgspec.DecodeError as exc:
        return reject(_reason(exc))
    # the model and time a rejection is counted under: only when they could never harm the metrics store
    model = probe.model if (isinstance(probe.model, str) and 0 < len(probe.model) <= 200
                            and name_problem(probe.model) is None) else None
    if opts.models is not None and model is not None and model not in opts.models:
        return reject(f"unknown model {model!r}: not among the declared models", None)
    try:
        ts_hint: float | None = parse_timestamp(probe.timestamp, unit) if probe.timestamp is not None else None
    except (ValueError, TypeError, OverflowError):
        ts_hint = None
    if ts_hint is not None and _insane(ts_hint, opts, now) is not None:
        ts_hint = None
    try:
        if probe.label is not msgspec.UNSET:
            lab = _label_decoder.decode(raw)
            if isinstance(lab.label, float) and not math.isfinite(lab.label):
                return reject("invalid event: label is not a finite number", model, ts_hint)
            if (problem := _names_problem(lab.model, lab.request_id, None)) is not None:
                return reject(problem, model, ts_hint)
            ts = parse_timestamp(lab.timestamp, unit)
            if (problem := _insane(ts, opts, now)) is not None:
                return reject(f"invalid event: {problem}", model, None)
            return LabelEvent(model=lab.model, request_id=lab.request_id, timestamp=ts, label=lab.label)
        ev = _prediction_decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return reject(_reason(exc), model, ts_hint)
    except ValueError as exc:
        return reject(f"invalid event: {exc}", model, ts_hint)
    try:
        ts = parse_timestamp(ev.timestamp, unit)
    except ValueError as exc:
        return reject(f"invalid event: {exc}", model, None)
    if (problem := _insane(ts, opts, now)) is not None:
        return reject(f"invalid event: {problem}", model, None)
    problem = _check_numbers(ev.features, ev.prediction, ev.score, ev.latency_ms)
    if problem is None:
        problem = _names_problem(ev.model, ev.request_id, ev.model_version, ev.features)
    if problem is not None:
        return reject(problem, model, ts)
    if ev.prediction is None and ev.error is None:
        return reject("invalid event: prediction is null without an error", model, ts)
    return PredictionEvent(
        model=ev.model, request_id=ev.request_id, timestamp=ts, features=ev.features,
        prediction=ev.prediction, model_version=ev.model_version, score=ev.score,
        latency_ms=ev.latency_ms, error=ev.error,
    )


def _lookup(obj: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    """``(found, value)`` of a dotted path in nested JSON objects."""
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def producer_shaped(event: Mapping[str, Any], fields: Mapping[str, str]) -> dict[str, Any]:
    """``event`` as a producer with its own field names would send it: each field moved to its dotted path
    in ``fields`` (the ``fields`` setting; unlisted fields keep their name) — what the decoder reads back.

    >>> producer_shaped({"model": "fraud", "request_id": "r1", "features": {"x": 1}},
    ...                 {"model": "model_name", "request_id": "meta.id", "features": "payload.inputs"})
    {'model_name': 'fraud', 'meta': {'id': 'r1'}, 'payload': {'inputs': {'x': 1}}}
    """
    out: dict[str, Any] = {}
    for key, value in event.items():
        *parents, leaf = fields.get(key, key).split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


_PATH_IN_REASON = re.compile(r"(\$\.|field `)(\w+)")


def _decode_mapped(raw: bytes, reject: Callable[..., Rejection], opts: DecodeOptions, now: float | None,
                   record_timestamp_ms: int | None) -> PredictionEvent | LabelEvent | Rejection:
    """A producer's event: its fields picked out by ``opts.fields`` (and its time from the Kafka record with
    ``timestamp_source: record``), then validated like any event; reasons name the producer's fields."""
    try:
        obj = _generic_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        return reject(_reason(exc))
    except RecursionError:
        return reject("invalid event: JSON nested too deeply")
    if not isinstance(obj, dict):
        return reject("invalid event: the top level must be a JSON object")
    paths = dict(opts.fields)
    event: dict[str, Any] = {}
    for name in CANONICAL_FIELDS:
        found, value = _lookup(obj, paths.get(name, name))
        if found:
            event[name] = value
    unit = opts.timestamp_unit
    if opts.timestamp_source == "record":
        if record_timestamp_ms is None or record_timestamp_ms < 0:
            return reject("invalid event: timestamp_source is 'record' but the input has no record timestamp "
                          "(a Kafka record without one, or a file)")
        event["timestamp"], unit = record_timestamp_ms / 1000.0, "s"
    canonical = _encoder.encode(event)
    fast = _decode_fast(canonical, opts, now, unit)
    if fast is not None:
        return fast

    def renamed(reason: str, model: str | None = None, ts: float | None = None) -> Rejection:
        return reject(_PATH_IN_REASON.sub(lambda m: m.group(1) + paths.get(m.group(2), m.group(2)), reason), model, ts)

    try:
        return _decode(canonical, renamed, opts, now, unit)
    except RecursionError:
        return reject("invalid event: JSON nested too deeply")


def strip_bom(line: bytes) -> bytes:
    """``line`` without a leading UTF-8 byte-order mark (editors on Windows write one at a file's start).

    >>> strip_bom(b'\\xef\\xbb\\xbf{"a":1}')
    b'{"a":1}'
    """
    return line[3:] if line.startswith(BOM) else line


def decode_lines(
    lines: Iterable[bytes], *, topic: str = "file", options: DecodeOptions | None = None,
    now: float | None = None, max_bytes: int | None = None,
) -> Iterable[PredictionEvent | LabelEvent | Rejection]:
    """Decode JSON lines (blank lines and byte-order marks skipped); ``offset`` is the 0-based line number."""
    for i, line in enumerate(lines):
        stripped = strip_bom(line.strip()).strip()
        if not stripped:
            continue
        yield decode_any(stripped, topic=topic, partition=0, offset=i, options=options, now=now,
                         max_bytes=max_bytes)
