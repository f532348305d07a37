#!/usr/bin/env bash
# THE test command (CI runs it through .ci/run): lint, type check, then the whole pytest suite.
# On a fresh machine it installs what it needs: the Python environment (.venv, `pip install -e '.[dev]'`)
# and Debian's influxdb, victoria-metrics, docker-compose, prometheus-alertmanager and chromium (the HTML
# report is tested in it, driven by Playwright; no browser download) — apt-get update once, only when one
# is missing; needs root or password-less sudo. The integration tests start their own servers on
# 127.0.0.1 (tests/conftest.py). Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not integration"`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
echo "== pip install -e '.[dev]'"
.venv/bin/python -m pip install -q -e '.[dev]'

missing=()
command -v influxd >/dev/null 2>&1 || missing+=(influxdb)
command -v victoria-metrics >/dev/null 2>&1 || missing+=(victoria-metrics)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing Debian packages: ${missing[*]}"
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      SUDO=(sudo -n)
    else
      echo "error: ${missing[*]} missing and not root: run 'sudo apt-get install --no-install-recommends ${missing[*]}'" >&2
      exit 1
    fi
  fi
  "${SUDO[@]}" apt-get update -q
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

echo "== ruff"
.venv/bin/ruff check monitor tests simulations
echo "== mypy"
.venv/bin/mypy
echo "== pytest (tests/ and the docstring examples of monitor/: testpaths and --doctest-modules in pyproject.toml)"
.venv/bin/python -m pytest -q "$@"
