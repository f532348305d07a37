"""``monitor run``: the streaming worker. Composition root for the faust app and its adapters."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from monitor.config import ConfigError, MonitorSettings, load_settings, reveal

if TYPE_CHECKING:
    from monitor.core.reference import ReferenceProfile


def make_sink(settings: MonitorSettings):  # type: ignore[no-untyped-def]
    """InfluxDB when ``influx_url`` is set, else a local line-protocol file."""
    if settings.influx_url:
        from monitor.adapters.influx import InfluxSink

        # few retries per flush: the worker's timer calls flush again every flush_interval anyway
        return InfluxSink(settings.influx_url.get_secret_value(), reveal(settings.influx_token), settings.influx_org,
                          settings.influx_bucket,
                          max_buffer_points=settings.sink_max_buffer_points, max_retries=2, max_backoff_s=5.0)
    from monitor.adapters.lpfile import LineProtocolFileSink

    return LineProtocolFileSink(settings.lp_file or Path("driftline-metrics.lp"))


def wait_for_broker(settings: MonitorSettings, attempt: Callable[[], None], log: logging.Logger,
                    sleep: Callable[[float], None] = time.sleep) -> None:
    """Retry ``attempt`` (topic creation: a real round trip) with backoff until the broker answers or
    ``broker_wait`` runs out; every failure is logged with the broker address and the error."""
    deadline = time.monotonic() + settings.broker_wait_s
    delay = 0.5
    while True:
        try:
            attempt()
            return
        except Exception as exc:
            if time.monotonic() + delay > deadline:
                raise SystemExit(f"error: Kafka at {settings.bootstrap_servers} unreachable for "
                                 f"{settings.broker_wait}: {type(exc).__name__}: {exc}") from None
            log.warning("event=broker_unreachable broker=%s retry_in_s=%.1f error=%r", settings.bootstrap_servers,
                        delay, f"{type(exc).__name__}: {exc}"[:200])
            sleep(delay)
            delay = min(delay * 2, 10.0)


def run_worker(settings: MonitorSettings, references: Mapping[str, ReferenceProfile] | None = None) -> None:
    """Create topics, build the app and run the faust worker until SIGTERM/SIGINT.

    ``references`` defaults to the profiles at ``settings.reference``; with none, each model's first
    events become its reference (warm-up).
    """
    from faust import Worker

    from monitor.adapters.heap import settle_heap
    from monitor.adapters.notify import build_dispatcher
    from monitor.adapters.topics import TopicError, TopicSpec, check_copartitioned, ensure_topics, worker_topics
    from monitor.adapters.worker import ReferenceWatcher, build_app
    from monitor.owner import ReferenceBook
    from monitor.pipeline import load_references
    from monitor.segments import check_references

    # structured logs on our own handler: faust's Worker resets the root logger's level
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter('{"ts":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s",'
                                           '"msg":"%(message)s"}'))
    ours = logging.getLogger("driftline")
    ours.handlers[:] = [handler]
    ours.setLevel(logging.INFO)
    ours.propagate = False
    for noisy in ("kafka", "aiokafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    log = logging.getLogger("driftline.run")
    if references is None:
        references = load_references(settings.reference) if settings.reference else {}
    try:
        check_references(references, settings)  # a profile without the configured segments: stop here
    except ValueError as exc:
        raise SystemExit(f"error: reference {settings.reference}: {exc}") from None
    if not references and settings.warmup_events == 0:
        settings = settings.model_copy(update={"warmup_events": 2000})
        log.warning("event=no_reference warmup_events=2000 (each model's first events become its reference)")
    counts: dict[str, int] = {}

    def create() -> None:
        security = settings.kafka_python_security()
        # the input topic first: an existing one keeps its partition count, which the others then follow
        first = ensure_topics(settings.bootstrap_servers, [TopicSpec(settings.predictions_topic, settings.partitions)],
                              replication_factor=settings.replication_factor, security=security)
        n = first.get(settings.predictions_topic) or settings.partitions
        counts.update(ensure_topics(settings.bootstrap_servers, worker_topics(settings, n),
                                    replication_factor=settings.replication_factor, security=security))

    wait_for_broker(settings, create, log)
    try:
        sources = check_copartitioned(settings, counts)
    except TopicError as exc:
        raise SystemExit(f"error: {exc}") from None
    book = ReferenceBook(references.values())
    watcher = ReferenceWatcher(settings, book, configured=set(references))
    published = watcher.catch_up()
    watcher.start()
    notifier = build_dispatcher(
        webhook_url=reveal(settings.webhook_url), webhook_secret=reveal(settings.webhook_secret),
        alertmanager_url=reveal(settings.alertmanager_url), slack_webhook_url=reveal(settings.slack_webhook_url),
        pagerduty_routing_key=reveal(settings.pagerduty_routing_key), repeat_interval_s=settings.repeat_interval_s,
        external_url=settings.external_url)
    app = build_app(settings, dict(references), make_sink(settings), notifier, sources=sources, book=book)
    log.info("event=starting sources=%d warmup_references=%d settings=%s", sources, published, settings.redacted())
    worker = Worker(app, loglevel="WARNING", redirect_stdouts=False)
    settle_heap()  # start-up objects are never garbage: keep the collector off them (monitor/adapters/heap.py)
    try:
        worker.execute_from_commandline()
    finally:
        watcher.stop()
        if notifier is not None:
            notifier.close()


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        config: Annotated[Path | None, typer.Option("--config", "-c", help="YAML config (or MONITOR_CONFIG).")] = None,
        reference: Annotated[Path | None, typer.Option(help="Reference profile or directory (MONITOR_REFERENCE).")] = None,
        broker: Annotated[str | None, typer.Option(help="Kafka bootstrap servers (MONITOR_BROKER).")] = None,
        worker_name: Annotated[str | None, typer.Option(help="Name in logs and metrics.")] = None,
        web_port: Annotated[int | None, typer.Option(help="Port for /metrics and /healthz.")] = None,
    ) -> None:
        """The streaming worker: consume predictions and labels from Kafka; scale by starting more."""
        try:
            settings = load_settings(config, reference=reference, broker=broker, worker_name=worker_name,
                                     web_port=web_port)
        except ConfigError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        from monitor.pipeline import load_references

        try:  # a malformed profile is a one-line error here, not a traceback inside the worker
            references = load_references(settings.reference) if settings.reference else None
        except (OSError, ValueError) as exc:
            typer.echo(f"error: reference {settings.reference}: {exc}", err=True)
            raise typer.Exit(2) from None
        sys.argv = [sys.argv[0]]  # faust's Worker parses argv itself
        run_worker(settings, references)
