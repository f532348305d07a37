"""Session-scoped real servers for the integration tests, on 127.0.0.1 with free ports.

Each server keeps its data in a temp dir and is stopped by PID at the end of the session. A missing
``influxd``/``victoria-metrics`` binary is installed with apt-get (:func:`devservices.ensure_debian_packages`;
CI runs as root). Fixtures start lazily: a test run that uses none of them starts nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor import devservices
from monitor.adapters.receiver import WebhookServer


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Parent temp dir of the session's server data and logs."""
    return tmp_path_factory.mktemp("services")


@pytest.fixture
def tmp_workdir(tmp_path: Path) -> Path:
    """A fresh, empty per-test working directory (for worker logs, replay output, state files)."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    return workdir


@pytest.fixture(scope="session")
def kafka_broker(services_dir: Path) -> Iterator[str]:
    """A tansu Kafka-protocol broker (memory storage); yields the bootstrap ``127.0.0.1:PORT``."""
    svc = devservices.start_kafka(services_dir / "kafka")
    try:
        yield svc.url
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def influxdb(services_dir: Path) -> Iterator[str]:
    """InfluxDB 1.6.7 with database ``driftline``; yields ``http://127.0.0.1:PORT``."""
    svc = devservices.start_influxdb(services_dir / "influxdb")
    try:
        devservices.influx1_create_database(svc.url, "driftline")
        yield svc.url
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def victoriametrics(services_dir: Path) -> Iterator[str]:
    """VictoriaMetrics (accepts influxdb-client's ``/api/v2/write``); yields ``http://127.0.0.1:PORT``."""
    svc = devservices.start_victoriametrics(services_dir / "vm")
    try:
        yield svc.url
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def influx_compat(influxdb: str) -> Iterator[str]:
    """URL of an ``/api/v2/write`` → ``/write?db=<bucket>`` proxy in front of the 1.6.7 server.

    Lets influxdb-client's WriteApi (which needs the v2 write API of InfluxDB ≥ 1.8) write into 1.6.7;
    see tests/integration/influx_compat_proxy.py.
    """
    from tests.integration.influx_compat_proxy import CompatProxy

    proxy = CompatProxy(influxdb)
    proxy.start()
    try:
        yield proxy.url
    finally:
        proxy.stop()


@pytest.fixture(scope="session")
def alertmanager(services_dir: Path) -> Iterator[tuple[str, WebhookServer]]:
    """A real Alertmanager 0.25 routing every alert to a local webhook receiver (group_wait and
    group_interval 1 s, resolved notifications on); yields ``(alertmanager_url, webhook_server)``."""
    server = WebhookServer().start()
    try:
        svc = devservices.start_alertmanager(services_dir / "alertmanager", devservices.alertmanager_config(server.url))
        try:
            yield svc.url, server
        finally:
            svc.stop()
    finally:
        server.stop()
