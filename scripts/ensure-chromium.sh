#!/usr/bin/env bash
# The dashboard's browser tests drive Debian's chromium through Playwright (Playwright's own
# browser download is not reachable from here); make sure the binary exists.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -n "${CSMS_TEST_CHROMIUM:-}" ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "chromium not found: installing Debian's chromium" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "chromium not found. Install it (Debian/Ubuntu: sudo apt-get install chromium)" >&2
  echo "or point CSMS_TEST_CHROMIUM at a Chromium binary; browser tests are skipped otherwise." >&2
fi
