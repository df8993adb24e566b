#!/usr/bin/env bash
# Quick start 2: set up, then run every test (unit, integration against real servers, e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
exec .venv/bin/python -m pytest -q "$@"
