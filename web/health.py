"""Monitoring: `GET /healthz` (plain JSON) and `GET /metrics` (Prometheus text format)."""

from __future__ import annotations

import logging
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from csms.keys import HUB, METRICS, STORE

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


@routes.get("/healthz", name="healthz")
async def healthz(request: web.Request) -> web.Response:
    started = time.perf_counter()
    ok = True
    try:
        await request.app[STORE].get_station("__healthz__")
    except Exception:
        log.exception("health check: store unavailable")
        ok = False
    body = {"status": "ok" if ok else "unavailable",
            "store": {"ok": ok, "latencyMs": round((time.perf_counter() - started) * 1000, 2)},
            "connectedStations": len(request.app[HUB].connected_ids())}
    return web.json_response(body, status=200 if ok else 503)


@routes.get("/metrics", name="metrics")
async def metrics_view(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
