"""The worker's own health: Prometheus metrics on a private registry, and ``driftline_worker`` points."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class WorkerMetrics:
    """Counters and gauges served at ``/metrics`` on the worker's web port."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.up = Gauge("driftline_up", "1 while the worker runs", registry=r)
        self.events = Counter("driftline_events", "Events consumed", ["topic"], registry=r)
        self.invalid = Counter("driftline_invalid", "Invalid events sent to the DLQ", registry=r)
        self.dlq = Counter("driftline_dlq", "Records produced to the dead-letter topic", registry=r)
        self.windows_closed = Counter("driftline_windows_closed", "Windows closed and flushed", registry=r)
        self.points = Counter("driftline_points", "Metric points handed to the sink", registry=r)
        self.alerts = Counter("driftline_alerts", "Alert transitions", ["status"], registry=r)
        self.retraining = Counter("driftline_retraining", "Retraining events published", registry=r)
        self.sink_buffered = Gauge("driftline_sink_buffered_points", "Points waiting for the sink", registry=r)
        self.sink_up = Gauge("driftline_sink_up", "1 when the last sink flush succeeded", registry=r)
        self.sink_errors = Counter("driftline_sink_write_errors", "Failed sink flushes", registry=r)
        self.paused = Gauge("driftline_consumption_paused", "1 while consumption is paused (backpressure)",
                            registry=r)
        self.pending_acks = Gauge("driftline_pending_events", "Events held until their windows close",
                                  registry=r)
        self.open_windows = Gauge("driftline_open_windows", "Open windows", registry=r)
        self.late = Gauge("driftline_late_events", "Events that arrived after their windows closed (since start)",
                          registry=r)
        self.pending_labels = Gauge("driftline_label_join_pending",
                                    "Predictions held for the label join and duplicate detection",
                                    registry=r)
        self.held_bytes = Gauge("driftline_held_prediction_bytes",
                                "Memory of the predictions held for the label join and duplicate detection",
                                registry=r)
        self.window_lag = Gauge("driftline_window_lag_seconds",
                                "Wall time minus the oldest watermark (how far behind event time is)", registry=r)
        self.consumer_lag = Gauge("driftline_consumer_lag", "Consumer lag in messages (where the broker reports it)",
                                  ["topic", "partition"], registry=r)
        self.partials_sent = Counter("driftline_partials_sent", "Partial windows and updates sent to owners "
                                     "(stage 1)", registry=r)
        self.partials_received = Counter("driftline_partials_received", "Partial windows received (stage 2)",
                                         registry=r)
        self.pending_windows = Gauge("driftline_pending_windows", "Windows waiting for every source to pass "
                                     "their end (stage 2)", registry=r)
        self.late_partials = Gauge("driftline_late_partials", "Partials that arrived after their window was "
                                   "finalized (since start; their events count as late)", registry=r)
        self.unmatched_labels = Gauge("driftline_labels_unmatched", "Labels that found no prediction within "
                                      "label_grace (since start): a labels topic keyed unlike predictions shows "
                                      "here", registry=r)
        self.sources = Gauge("driftline_sources", "Input partitions this worker aggregates (stage 1)", registry=r)
        self.broker_up = Gauge("driftline_broker_up", "0 while the broker does not confirm what the worker "
                               "publishes (partials, checkpoints, retraining, dead letters)", registry=r)
        self.broker_up.set(1)
        self.up.set(1)
        self.sink_up.set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def metric_sum(text: str, name: str) -> float:
    """Sum of every sample of metric ``name`` (all label sets) in Prometheus text exposition.

    >>> metric_sum('# HELP x\\nx_total{a="1"} 2.0\\nx_total{a="2"} 3.0\\nx_totals 9\\n', "x_total")
    5.0
    """
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name):len(name) + 1] in ("{", " "):
            try:
                total += float(line.rsplit(" ", 1)[1])
            except (ValueError, IndexError):
                continue
    return total


def scrape(url: str, name: str, default: float = 0.0, timeout: float = 2.0) -> float:
    """``metric_sum`` of a live ``/metrics`` endpoint; ``default`` when it cannot be reached."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - caller's URL
            return metric_sum(resp.read().decode(), name)
    except OSError:
        return default
