#!/usr/bin/env bash
# Quick start 1: set up, then run the whole pipeline locally (`journey demo --help` for options).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh local
exec .venv/bin/journey demo "$@"
