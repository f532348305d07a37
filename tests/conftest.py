"""Session-scoped real servers for the integration tests (started and stopped by PID)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor import devservices


@pytest.fixture(scope="session")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("services")


@pytest.fixture(scope="session")
def kafka_broker(services_dir: Path) -> Iterator[str]:
    svc = devservices.start_kafka(services_dir / "kafka")
    try:
        yield svc.url
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def influxdb(services_dir: Path) -> Iterator[str]:
    """InfluxDB 1.6.7 with database ``driftline``."""
    svc = devservices.start_influxdb(services_dir / "influxdb")
    try:
        devservices.influx1_create_database(svc.url, "driftline")
        yield svc.url
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def victoriametrics(services_dir: Path) -> Iterator[str]:
    svc = devservices.start_victoriametrics(services_dir / "vm")
    try:
        yield svc.url
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def influx_compat(influxdb: str) -> Iterator[str]:
    """The /api/v2/write compat proxy (tests/integration/influx_compat_proxy.py) in front of 1.6.7."""
    from tests.integration.influx_compat_proxy import CompatProxy

    proxy = CompatProxy(influxdb)
    proxy.start()
    try:
        yield proxy.url
    finally:
        proxy.stop()
