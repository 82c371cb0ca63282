#!/usr/bin/env bash
# The test suite starts its own redis-server on a free port; make sure the binary exists.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1 || [ -n "${CSMS_TEST_REDIS_URL:-}" ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "redis-server not found: installing Debian's redis-server" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
else
  echo "redis-server not found. Install it (Debian/Ubuntu: sudo apt-get install redis-server)" >&2
  echo "or point CSMS_TEST_REDIS_URL at a Redis you own; Redis tests are skipped otherwise." >&2
fi
