#!/usr/bin/env bash
# Installs what the Node.js program and the web page need (apps/node_modules from package-lock.json)
# and, for the browser tests, Debian's chromium when it is missing and this is root on Debian.
# Without node/npm it says so and exits 0: the Node and browser tests then skip with that reason.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v npm >/dev/null 2>&1; then
  echo "apps/setup.sh: npm not found; the Node.js and browser apps (and their tests) need Node.js 18+" >&2
  exit 0
fi
# --ignore-scripts: onnxruntime-node's install script only fetches optional CUDA binaries from outside
# the npm registry (its CPU binaries ship in the package); protobufjs's only checks versions.
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
if ! command -v chromium >/dev/null 2>&1 && [ -z "${CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "apps/setup.sh: installing Debian's chromium for the browser tests" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "apps/setup.sh: no chromium (set CHROMIUM=/path/to/chrome); the browser tests will skip" >&2
  fi
fi
echo "apps/setup.sh: Node.js apps installed in $(pwd)/node_modules" >&2
