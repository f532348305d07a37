"""Kafka outputs for code that does not run inside the faust worker: retraining CloudEvents and DLQ records.

The streaming worker sends both through its own faust producer (monitor/adapters/worker.py). These
synchronous kafka-python publishers are for everything else that drives the pure pipeline —
``monitor replay --publish``, notebooks, batch jobs — and implement :class:`monitor.ports.RetrainPublisher`.

Both publish with ``acks=all`` and retries, and return only when every record is acknowledged by the
broker (``publish`` raises :class:`PublishError` otherwise): a caller that commits input offsets after
``publish`` returns gets at-least-once delivery. Records are keyed by model name (docs/retraining.md), so one
model's requests stay ordered on one partition. A DLQ record is keyed by the model when it could be
recovered from the raw event, else it has no key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from monitor.types import Rejection, RetrainRequest


class PublishError(RuntimeError):
    """At least one record was not acknowledged by the broker."""


ProducerFactory = Callable[..., Any]


def _kafka_producer(**kwargs: Any) -> Any:
    from kafka import KafkaProducer

    return KafkaProducer(**kwargs)


class _Publisher:
    def __init__(self, bootstrap_servers: str, topic: str, *, security: Mapping[str, Any] | None = None,
                 timeout_s: float = 30.0, producer_factory: ProducerFactory = _kafka_producer,
                 **producer_options: Any) -> None:
        self.topic = topic
        self.timeout_s = timeout_s
        options: dict[str, Any] = dict(bootstrap_servers=bootstrap_servers.removeprefix("kafka://"), acks="all",
                                       retries=5, retry_backoff_ms=200, linger_ms=5,
                                       request_timeout_ms=int(timeout_s * 1000))
        options.update(security or {})
        options.update(producer_options)
        self._producer = producer_factory(**options)

    def _send_all(self, records: Sequence[tuple[bytes | None, bytes]]) -> int:
        futures = [self._producer.send(self.topic, key=key, value=value) for key, value in records]
        self._producer.flush(timeout=self.timeout_s)
        failed: list[str] = []
        for fut in futures:
            try:
                fut.get(timeout=self.timeout_s)
            except Exception as exc:  # kafka-python raises KafkaError subclasses and timeouts
                failed.append(f"{type(exc).__name__}: {exc}")
        if failed:
            raise PublishError(f"{len(failed)} of {len(futures)} records to {self.topic!r} not delivered: "
                               f"{failed[0]}")
        return len(futures)

    def close(self, timeout_s: float = 10.0) -> None:
        self._producer.close(timeout=timeout_s)

    def __enter__(self) -> _Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RetrainingPublisher(_Publisher):
    """Publishes :class:`RetrainRequest` as CloudEvents 1.0 (structured JSON) to ``monitor.retraining``.

    ``source`` is the CloudEvents ``source`` attribute (``driftline/<deployment>``). A request published
    twice (at-least-once) carries the same ``id``, so subscribers can deduplicate.
    """

    def __init__(self, bootstrap_servers: str, topic: str = "monitor.retraining", *,
                 source: str = "driftline/default", **kwargs: Any) -> None:
        super().__init__(bootstrap_servers, topic, **kwargs)
        self.source = source

    def publish(self, requests: Sequence[RetrainRequest]) -> None:
        self._send_all([(r.model.encode(), orjson.dumps(r.to_cloudevent(self.source))) for r in requests])


class DeadLetterPublisher(_Publisher):
    """Publishes :class:`Rejection` records (the dead-letter shape of docs/events.md) to ``monitor.dlq``."""

    def __init__(self, bootstrap_servers: str, topic: str = "monitor.dlq", **kwargs: Any) -> None:
        super().__init__(bootstrap_servers, topic, **kwargs)

    def publish(self, rejections: Sequence[Rejection], received_at: float) -> None:
        self._send_all([(r.model.encode() if r.model else None, orjson.dumps(r.to_dlq(received_at)))
                        for r in rejections])


def publishers_from_settings(settings: Any, **kwargs: Any) -> tuple[RetrainingPublisher, DeadLetterPublisher]:
    """Both publishers for a :class:`monitor.config.MonitorSettings` (topics, source and Kafka security)."""
    security = settings.kafka_python_security()
    return (RetrainingPublisher(settings.bootstrap_servers, settings.retraining_topic, source=settings.source,
                                security=security, **kwargs),
            DeadLetterPublisher(settings.bootstrap_servers, settings.dlq_topic, security=security, **kwargs))
