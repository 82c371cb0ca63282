"""Monitoring: `GET /healthz` (plain JSON) and `GET /metrics` (Prometheus text format)."""

from __future__ import annotations

import logging
import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from csms.keys import HUB, METRICS, STORE
from web.apidoc import documented

log = logging.getLogger(__name__)
routes = web.RouteTableDef()


class StoreHealth(BaseModel):
    ok: bool
    latencyMs: float


class Health(BaseModel):
    status: str  # "ok" | "unavailable"
    store: StoreHealth
    connectedStations: int


@routes.get("/healthz", name="healthz")
@documented("Liveness and store health (503 while the store is unavailable)", response=Health,
            errors=(503,), public=True)
async def healthz(request: web.Request) -> web.Response:
    started = time.perf_counter()
    ok = True
    try:
        await request.app[STORE].get_station("__healthz__")
    except Exception:
        log.exception("health check: store unavailable")
        ok = False
    body = Health(status="ok" if ok else "unavailable",
                  store=StoreHealth(ok=ok, latencyMs=round((time.perf_counter() - started) * 1000,
                                                           2)),
                  connectedStations=len(request.app[HUB].connected_ids()))
    return web.json_response(body.model_dump(), status=200 if ok else 503)


@routes.get("/metrics", name="metrics")
@documented("Prometheus metrics", content_type="text/plain; version=0.0.4", public=True)
async def metrics_view(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
