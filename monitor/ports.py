"""Protocols the pipeline's outputs go through. Adapters implement them; the core never imports them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from monitor.types import Alert, MetricPoint, RetrainRequest


class MetricSink(Protocol):
    """Buffers points; ``flush`` returns only when every buffered point is durable (or raises)."""

    def add(self, points: Sequence[MetricPoint]) -> None: ...

    def flush(self) -> None: ...


class AlertNotifier(Protocol):
    """Delivers alerts (firing and resolved) to on-call receivers."""

    def notify(self, alerts: Sequence[Alert]) -> None: ...


class RetrainPublisher(Protocol):
    """Publishes retraining requests for retraining pipelines to subscribe to."""

    def publish(self, requests: Sequence[RetrainRequest]) -> None: ...
