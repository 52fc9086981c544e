#!/usr/bin/env bash
# Browser test of the management web UI, for CI.
#
#   bash tests/ui/ci.sh BASE_URL [USER PASS] [run.mjs options...]
#
# Installs Debian's chromium when missing and the npm dependencies
# (npm ci), then runs tests/ui/run.mjs against BASE_URL, which must already
# serve the UI at / and the management API at /api (this script starts
# nothing). Exits with run.mjs's status.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ $# -lt 1 ]; then
  echo "usage: bash tests/ui/ci.sh BASE_URL [USER PASS] [--screenshots DIR] [--amqp URL]" >&2
  exit 2
fi

chromium_bin="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium_bin" ]; then
  echo "ui: installing chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "ui: installing nodejs and npm" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq nodejs npm >/dev/null
fi

if [ ! -d "$here/node_modules/playwright-core" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

exec node "$here/run.mjs" "$@"
