#!/usr/bin/env bash
# What `make stack` needs beyond the virtualenv: redis-server and (optional) nginx, from
# Debian when run as root; honcho and nx-27017 come with the `stack` extra.
set -euo pipefail
bash "$(dirname "$0")/ensure-redis.sh"
command -v redis-server >/dev/null 2>&1 || { echo "make stack needs redis-server" >&2; exit 1; }
if ! command -v nginx >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "nginx not found: installing Debian's nginx-light (the stack's balancer)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null \
      || echo "could not install nginx: the stack runs without a balancer" >&2
  else
    echo "nginx not found (sudo apt-get install nginx-light): the stack runs without a balancer" >&2
  fi
fi
