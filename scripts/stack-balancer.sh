#!/usr/bin/env bash
# The stack's balancer: nginx with deploy/nginx-stack.conf on 127.0.0.1:8080, in front of the
# two nodes. Without nginx the nodes serve on their own ports and this process just waits.
set -euo pipefail
nginx=$(command -v nginx || PATH=/usr/sbin:/usr/local/sbin command -v nginx || true)
if [ -n "$nginx" ]; then
  mkdir -p data/stack/nginx
  exec bash scripts/after-ports.sh 8081 8082 -- \
    "$nginx" -e stderr -p "$PWD/data/stack/nginx" -c "$PWD/deploy/nginx-stack.conf" -g "daemon off;"
fi
echo "nginx is not installed (Debian: apt-get install nginx): no balancer on :8080;" \
     "use the nodes at 127.0.0.1:8081 and 127.0.0.1:8082" >&2
exec sleep infinity
