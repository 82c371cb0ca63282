#!/usr/bin/env bash
# The benchmark's load generator and its ocpp-rpc reference server are Node packages
# (bench/node/package-lock.json); the suite checks that the generator's frames are answered.
# Install them (npm ci, into the gitignored bench/node/node_modules) when npm is here.
set -euo pipefail
cd "$(dirname "$0")/../bench/node"
if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found: the benchmark's generator tests are skipped (install Node.js and npm)" >&2
  exit 0
fi
stamp=node_modules/.package-lock.json
if [ -f "$stamp" ] && [ "$stamp" -nt package-lock.json ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
