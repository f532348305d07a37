"""Send scenario traffic to Kafka with kafka-python (key = model name, value = the event's JSON)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

PROGRESS_EVERY = 500


def normalize_bootstrap(text: str) -> str:
    """``kafka://a:9092;kafka://b:9092`` → ``a:9092,b:9092`` (the form kafka-python takes).

    >>> normalize_bootstrap("kafka://127.0.0.1:9092, kafka://h2:9093")
    '127.0.0.1:9092,h2:9093'
    """
    parts = [p.strip().removeprefix("kafka://").rstrip("/") for p in text.replace(";", ",").split(",")]
    hosts = [p for p in parts if p]
    if not hosts:
        raise ValueError(f"no bootstrap server in {text!r}; expected HOST:PORT[,HOST:PORT...]")
    return ",".join(hosts)


def produce_events(events: Iterable[dict[str, Any] | str], bootstrap: str, *, predictions_topic: str = "predictions",
                   labels_topic: str = "labels", rate: float | None = None,
                   progress: Callable[[int], None] | None = None,
                   security: Mapping[str, Any] | None = None) -> int:
    """Produce scenario events to Kafka; return how many were sent.

    Prediction events go to ``predictions_topic`` and label events (dicts with ``"label"``) to
    ``labels_topic``, keyed by the model name; malformed raw strings go to ``predictions_topic`` as-is
    with no key. ``rate`` caps wall-clock events/s (``None``: as fast as possible); ``progress`` is called
    with the running count; ``security`` holds extra KafkaProducer settings (``security_protocol``,
    ``sasl_mechanism``, ``ssl_cafile``…). Flushes before returning and raises ``RuntimeError`` if the
    broker rejected any record.
    """
    from kafka import KafkaProducer

    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be > 0 events/s or None, got {rate}")
    producer = KafkaProducer(bootstrap_servers=normalize_bootstrap(bootstrap), acks="all", linger_ms=5,
                             batch_size=256 * 1024, **dict(security or {}))
    failures: list[BaseException] = []
    sent = 0
    started = time.monotonic()
    try:
        for item in events:
            if isinstance(item, str):
                topic, key, value = predictions_topic, None, item.encode()
            else:
                model = item.get("model")
                key = model.encode() if isinstance(model, str) else None
                topic = labels_topic if "label" in item else predictions_topic
                value = orjson.dumps(item)
            producer.send(topic, key=key, value=value).add_errback(failures.append)
            sent += 1
            if rate is not None:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0.005:
                    time.sleep(ahead)
            if progress is not None and sent % PROGRESS_EVERY == 0:
                progress(sent)
        producer.flush()
    finally:
        producer.close()
    if failures:
        raise RuntimeError(f"{len(failures)} of {sent} records were not delivered; first error: {failures[0]!r}")
    if progress is not None:
        progress(sent)
    return sent
