#!/usr/bin/env bash
# nginx for `make stack` (the balancer) and for the tests that check deploy/nginx*.conf and
# balance two nodes: Debian's `nginx` package when run as root (its service is not started:
# the stack and the tests run their own nginx with their own config and prefix).
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "nginx not found: installing Debian's nginx" >&2
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then  # keep the package from starting a system nginx
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy"
  fi
  status=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; } \
    || status=$?
  [ -n "$policy" ] && rm -f "$policy"
  [ "$status" = 0 ] || echo "could not install nginx (apt-get failed)" >&2
  exit 0
fi
echo "nginx not found. Install it (Debian/Ubuntu: sudo apt-get install nginx); until then" >&2
echo "make stack runs without a balancer and the nginx tests are skipped." >&2
