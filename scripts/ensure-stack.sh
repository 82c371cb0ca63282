#!/usr/bin/env bash
# What `make stack` needs beyond the virtualenv: redis-server and nginx (the balancer; the
# stack runs without one when it cannot be installed), from Debian when run as root; honcho
# and nx-27017 come with the `stack` extra.
set -euo pipefail
bash "$(dirname "$0")/ensure-redis.sh"
command -v redis-server >/dev/null 2>&1 || { echo "make stack needs redis-server" >&2; exit 1; }
bash "$(dirname "$0")/ensure-nginx.sh"
