#!/usr/bin/env bash
# Browser test of the management web UI, for CI.
#
#   bash tests/ui/ci.sh BASE_URL [USER PASS] [run.py options...]
#
# Installs Debian's chromium and chromium-driver when missing, and selenium
# (pinned in requirements.txt) into tests/ui/.venv when that is missing or
# out of date, then runs tests/ui/run.py against BASE_URL, which must already
# serve the UI at / and the management API at /api (this script starts
# nothing). Quiet when everything is already there. Exits with run.py's status.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ $# -lt 1 ]; then
  echo "usage: bash tests/ui/ci.sh BASE_URL [USER PASS] [--full] [--screenshots DIR] [--amqp URL] [--alarm-url URL] [--timeout SECONDS] [--headed]" >&2
  exit 2
fi

export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
apt_updated=
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "$apt_updated" ]; then apt-get update -qq >/dev/null; apt_updated=1; fi
  apt-get install -y -qq "$@" >/dev/null
}
if [ ! -x "$CHROMIUM" ] || [ ! -x "$CHROMEDRIVER" ]; then
  echo "ui: installing chromium and chromium-driver" >&2
  apt_install chromium chromium-driver
fi

# selenium from PyPI in a venv of its own (ignored by git); remade when
# requirements.txt changes. SE_OFFLINE: selenium-manager downloads nothing
# (run.py gives it the driver's path anyway).
venv="$here/.venv"
if ! cmp -s "$here/requirements.txt" "$venv/.requirements.txt" || [ ! -x "$venv/bin/python" ]; then
  echo "ui: installing selenium into $venv" >&2
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    apt_install python3-venv
    python3 -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/.requirements.txt"
fi

export SE_OFFLINE=true
exec "$venv/bin/python" "$here/run.py" "$@"
