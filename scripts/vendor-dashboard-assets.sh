#!/usr/bin/env bash
# Refresh the dashboard's vendored JavaScript from npm at the pinned versions below; the files
# are committed, so nothing is fetched at run time (no CDN). Change a version here, run this,
# and update the <script> tags in web/dashboard/templates/ (the names carry the version).
set -euo pipefail
HTMX=2.0.11 HTMX_SSE=2.2.4 UPLOT=1.6.32
dest="$(cd "$(dirname "$0")/.." && pwd)/web/dashboard/static/vendor"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "htmx.org@$HTMX" "htmx-ext-sse@$HTMX_SSE" "uplot@$UPLOT" >/dev/null
for f in *.tgz; do mkdir "${f%.tgz}"; tar xzf "$f" -C "${f%.tgz}"; done
cp "htmx.org-$HTMX/package/dist/htmx.min.js" "$dest/htmx-$HTMX.min.js"
cp "htmx-ext-sse-$HTMX_SSE/package/dist/sse.min.js" "$dest/htmx-ext-sse-$HTMX_SSE.min.js"
cp "uplot-$UPLOT/package/dist/uPlot.iife.min.js" "$dest/uplot-$UPLOT.iife.min.js"
cp "uplot-$UPLOT/package/dist/uPlot.min.css" "$dest/uplot-$UPLOT.min.css"
cp "htmx.org-$HTMX/package/LICENSE" "$dest/LICENSE.htmx"
cp "htmx-ext-sse-$HTMX_SSE/package/LICENSE" "$dest/LICENSE.htmx-ext-sse"
cp "uplot-$UPLOT/package/LICENSE" "$dest/LICENSE.uplot"
echo "vendored htmx $HTMX, htmx-ext-sse $HTMX_SSE, uPlot $UPLOT into $dest"
