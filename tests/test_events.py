import json

import pytest

from monitor.events import decode_any, parse_timestamp
from monitor.types import LabelEvent, PredictionEvent, Rejection

GOOD = {"model": "m", "request_id": "r1", "timestamp": "2026-01-01T00:00:00Z",
        "features": {"a": 1.5, "b": "x", "c": None, "d": True}, "prediction": 1, "score": 0.7,
        "latency_ms": 12.0, "model_version": "v1"}


def enc(obj):
    return json.dumps(obj).encode()


def test_prediction_decodes_with_all_fields():
    ev = decode_any(enc(GOOD))
    assert isinstance(ev, PredictionEvent)
    assert ev.timestamp == 1767225600.0
    assert ev.features == {"a": 1.5, "b": "x", "c": None, "d": True}
    assert (ev.score, ev.latency_ms, ev.model_version) == (0.7, 12.0, "v1")


def test_label_is_recognised_by_its_label_field():
    ev = decode_any(enc({"model": "m", "request_id": "r1", "timestamp": 5, "label": "cat"}))
    assert isinstance(ev, LabelEvent) and ev.label == "cat"


@pytest.mark.parametrize("mutate, reason", [
    (lambda e: e.pop("model"), "model"),
    (lambda e: e.update(model=""), "length"),
    (lambda e: e.update(model="x" * 201), "length"),
    (lambda e: e.pop("features"), "features"),
    (lambda e: e.update(features=[1, 2]), "features"),
    (lambda e: e.update(features={"a": {"nested": 1}}), "features"),
    (lambda e: e.update(score=1.5), "score"),
    (lambda e: e.update(latency_ms=-1), "latency_ms"),
    (lambda e: e.update(timestamp="yesterday"), "timestamp"),
    (lambda e: e.update(timestamp="2026-01-01T00:00:00"), "time zone"),
    (lambda e: e.update(timestamp=2e10), "outside 1970..2200 read as seconds"),
    (lambda e: e.update(timestamp=8e12), "outside 1970..2200 read as milliseconds"),
    (lambda e: e.update(model="a\nevil,model=pwn value=1 0"), "control character (U+000A)"),
    (lambda e: e.update(model_version="v\\"), "backslash"),
    (lambda e: e.update(request_id="r\x00"), "control character (U+0000)"),
    (lambda e: e.update(features={"a\r": 1.0}), "control character (U+000D)"),
    (lambda e: e.update(features={"": 1.0}), "length"),
    (lambda e: e.update(model_version="v" * 201), "length"),
    (lambda e: e.update(prediction=None), "prediction is null"),
    (lambda e: e.update(prediction=[1]), "prediction"),
])
def test_invalid_events_are_rejected_with_a_reason(mutate, reason):
    e = dict(GOOD)
    mutate(e)
    out = decode_any(enc(e), topic="predictions", partition=3, offset=42)
    assert isinstance(out, Rejection)
    assert reason in out.reason
    assert (out.topic, out.partition, out.offset) == ("predictions", 3, 42)


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b"[1,2]", b"null", b"\xff\xfe",
                                 b'{"model":"m","request_id":"r","timestamp":1,"features":{"a":NaN},'
                                 b'"prediction":1}',
                                 b'{"model":"m","request_id":"r","timestamp":1,"features":{"a":1e999},'
                                 b'"prediction":1}'])
def test_garbage_never_raises(raw):
    out = decode_any(raw)
    assert isinstance(out, Rejection) and out.reason


def test_oversize_and_unknown_model():
    assert "oversize" in decode_any(enc(GOOD), max_bytes=10).reason
    out = decode_any(enc(GOOD), models=frozenset({"other"}))
    assert isinstance(out, Rejection) and "unknown model" in out.reason


def test_error_event_may_have_null_prediction():
    e = dict(GOOD, prediction=None, error="timeout")
    assert isinstance(decode_any(enc(e)), PredictionEvent)


def test_dlq_record_shape():
    out = decode_any(b"{oops", topic="predictions", partition=1, offset=7)
    rec = out.to_dlq(0.0)
    assert set(rec) == {"reason", "topic", "partition", "offset", "received_at", "raw"}
    assert rec["raw"] == "{oops" and rec["received_at"] == "1970-01-01T00:00:00.000Z"


def test_parse_timestamp_forms():
    assert parse_timestamp("2026-01-01T01:00:00+01:00") == 1767225600.0
    assert parse_timestamp(1767225600) == 1767225600.0
