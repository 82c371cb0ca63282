#!/usr/bin/env bash
# The suite validates docker-compose.yml with `docker-compose config` (no container engine
# needed); make sure Debian's docker-compose is there, or the check is skipped.
set -euo pipefail
if command -v docker-compose >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "docker-compose not found: installing Debian's docker-compose" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
else
  echo "docker-compose not found (Debian/Ubuntu: sudo apt-get install docker-compose);" >&2
  echo "the compose file's validation by docker-compose is skipped." >&2
fi
