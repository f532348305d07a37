#!/usr/bin/env bash
# The demo on embedded defaults: no Docker, no config. Installs into .venv on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/monitor ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[demo]'
fi
exec .venv/bin/monitor demo "$@"
