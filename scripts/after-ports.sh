#!/usr/bin/env bash
# after-ports.sh PORT... -- COMMAND...: wait until 127.0.0.1 listens on every PORT, then run
# COMMAND (so a stack's processes start in order without a fixed sleep).
set -euo pipefail
ports=()
while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do ports+=("$1"); shift; done
shift
for port in "${ports[@]}"; do
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
done
exec "$@"
