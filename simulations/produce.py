"""Send scenario traffic to Kafka with kafka-python (key = model name)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson


def produce_events(events: Iterable[dict[str, Any] | str], bootstrap: str, *, predictions_topic: str = "predictions",
                   labels_topic: str = "labels", rate: float | None = None,
                   progress: Callable[[int], None] | None = None,
                   security: Mapping[str, Any] | None = None) -> int:
    """Produce events (label events to ``labels_topic``); ``rate`` caps wall-clock events/s. Returns the count."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024,
                             **dict(security or {}))
    sent = 0
    started = time.monotonic()
    try:
        for item in events:
            if isinstance(item, str):
                key = None
                value = item.encode()
                topic = predictions_topic
            else:
                model = item.get("model")
                key = model.encode() if isinstance(model, str) else None
                value = orjson.dumps(item)
                topic = labels_topic if "label" in item else predictions_topic
            producer.send(topic, key=key, value=value)
            sent += 1
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0.005:
                    time.sleep(ahead)
            if progress is not None and sent % 500 == 0:
                progress(sent)
        producer.flush()
    finally:
        producer.close()
    if progress is not None:
        progress(sent)
    return sent
