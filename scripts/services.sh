#!/usr/bin/env bash
# Start/stop/status of the development servers (tansu Kafka broker, InfluxDB 1.6.7, VictoriaMetrics) on
# 127.0.0.1, data in .services/, stopped by PID. `eval "$(bash scripts/services.sh start)"` exports
# MONITOR_BROKER and MONITOR_INFLUX_URL for `monitor run`.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]'; }
exec .venv/bin/python -m monitor.devservices "${1:-status}" --state-dir .services "${@:2}"
