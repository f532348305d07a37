"""The Kafka topics a worker uses: their specs, and creating them with the configured replication factor.

Inputs (``predictions``, ``labels``) and the internal topics of the two stages share one partition count, so
faust's assignor gives partition *p* of every one of them to the same worker (co-partitioning): a label and
its prediction reach the same stage-1 source, and a source's checkpoint sits on its own partition number.

| topic | key | partitions | cleanup | what is on it |
| --- | --- | --- | --- | --- |
| ``predictions``, ``labels`` | the producer's choice | N | the producer's | input events |
| ``monitor.partials`` | model (watermarks: source) | N | delete, retention ≥ label_grace | stage 1 → stage 2 |
| ``monitor.checkpoints`` | ``source:<p>``, ``owner:<model>``, ``baseline:<slot>:<model>`` | N | compact | next owner |
| ``monitor.references`` | model | 1 | compact | warm-up profiles built by owners |
| ``monitor.retraining`` | model | N | delete | retraining CloudEvents |
| ``monitor.dlq`` | model or none | N | delete | dead letters |
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from monitor.config import MonitorSettings


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)


#: ``max.message.bytes`` of the partials and references topics: the worker producer's max_request_size (16 MiB)
MAX_MESSAGE_BYTES = str(16 * 1024 * 1024)


class TopicError(RuntimeError):
    """The topics exist but cannot work together (e.g. labels partitioned unlike predictions)."""


def worker_topics(settings: MonitorSettings, partitions: int) -> list[TopicSpec]:
    """Every topic ``monitor run`` uses, with ``partitions`` partitions for the co-partitioned ones."""
    week_ms = str(7 * 86_400_000)
    grace_ms = str(int(max(7 * 86_400.0, 4 * (settings.label_grace_s + settings.window_s)) * 1000))
    specs = [
        TopicSpec(settings.predictions_topic, partitions),
        # a partial window (segment sub-states) or a profile (nested segment profiles) can pass the brokers'
        # default 1 MB message limit: allow what the worker's producer may send
        TopicSpec(settings.partials_topic, partitions, {"cleanup.policy": "delete", "retention.ms": grace_ms,
                                                        "max.message.bytes": MAX_MESSAGE_BYTES}),
        TopicSpec(settings.checkpoint_topic, partitions, {"cleanup.policy": "compact"}),
        TopicSpec(settings.references_topic, 1, {"cleanup.policy": "compact", "max.message.bytes": MAX_MESSAGE_BYTES}),
        TopicSpec(settings.retraining_topic, partitions, {"retention.ms": week_ms}),
        TopicSpec(settings.dlq_topic, partitions, {"retention.ms": week_ms}),
    ]
    if settings.labels_topic:
        specs.insert(1, TopicSpec(settings.labels_topic, partitions))
    return specs


def ensure_topics(bootstrap: str, specs: Iterable[TopicSpec], *, replication_factor: int = 1,
                  security: Mapping[str, object] | None = None) -> dict[str, int]:
    """Create the topics that do not exist yet (idempotent, safe against concurrent creators) and return
    every topic's actual partition count. Existing topics are left as they are."""
    from kafka import KafkaAdminClient, KafkaConsumer
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    specs = list(specs)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000, bootstrap_timeout_ms=5000,
                             **dict(security or {}))
    try:
        existing = set(admin.list_topics())
        for spec in specs:
            if spec.name in existing:
                continue
            # one request per topic: a concurrent creator must not hide the other topics
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([NewTopic(spec.name, num_partitions=spec.partitions,
                                              replication_factor=replication_factor,
                                              topic_configs=dict(spec.configs))])
    finally:
        admin.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **dict(security or {}))
    try:
        counts: dict[str, int] = {}
        for spec in specs:
            parts = consumer.partitions_for_topic(spec.name)
            for _ in range(50):
                if parts:
                    break
                consumer._client.poll(timeout_ms=100)  # metadata of a topic created a moment ago
                parts = consumer.partitions_for_topic(spec.name)
            counts[spec.name] = len(parts or ())
        return counts
    finally:
        consumer.close()


def check_copartitioned(settings: MonitorSettings, counts: Mapping[str, int]) -> int:
    """The number of input partitions; raises :class:`TopicError` when the co-partitioned topics differ."""
    n = counts.get(settings.predictions_topic, 0)
    if n < 1:
        raise TopicError(f"topic {settings.predictions_topic!r} has no partitions")
    names = [t for t in (settings.labels_topic, settings.partials_topic, settings.checkpoint_topic) if t]
    wrong = {t: counts.get(t, 0) for t in names if counts.get(t, 0) != n}
    if wrong:
        detail = ", ".join(f"{t!r} has {c}" for t, c in wrong.items())
        raise TopicError(f"topic {settings.predictions_topic!r} has {n} partitions but {detail}: labels, partials "
                         "and checkpoints must have as many partitions as predictions (a label reaches the "
                         "worker of its prediction only then); recreate them or use other topic names")
    return n
