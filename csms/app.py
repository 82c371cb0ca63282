"""The one wiring point: `create_app(settings)` builds the whole aiohttp application.

This module is the composition root, so it is the one place in `csms` that imports the HTTP
surfaces (`web`) and, later, `billing`; the charging domain itself never does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import ocpp.messages
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from csms.charging import ChargingService
from csms.config import Settings
from csms.keys import CHARGING, HUB, METRICS, SETTINGS, STORE
from csms.metrics import Metrics
from csms.ocpp.endpoint import ocpp_websocket
from csms.ocpp.hub import Hub
from csms.store import Store
from csms.store.factory import make_store
from web.errors import error_middleware
from web.operator_api import create_operator_api

log = logging.getLogger(__name__)

# Validate in the event loop: the library's default thread-pool validation is the slowest
# option for both throughput and tail latency (see shared/NOTES-ocpp.md).
ocpp.messages.ASYNC_VALIDATION = False
logging.getLogger("ocpp").setLevel(logging.WARNING)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE]
    await store.open()
    await store.mark_all_disconnected()
    yield
    await store.close()


async def _hub_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    hub.frames.start()
    yield
    await hub.stop_tasks()
    await hub.frames.stop()


async def _close_stations(app: web.Application) -> None:
    await app[HUB].close_all()


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


async def metrics_view(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def create_app(settings: Settings, *, store: Store | None = None) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = settings
    app[METRICS] = metrics = Metrics()
    app[STORE] = store = store or make_store(settings.store)
    app[CHARGING] = charging = ChargingService(store, settings.ocpp)
    app[HUB] = Hub(settings.ocpp, store, charging, metrics)

    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_hub_ctx)
    app.on_shutdown.append(_close_stations)

    app.router.add_get("/ocpp/{station_id}", ocpp_websocket, name="ocpp")
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/metrics", metrics_view, name="metrics")
    app.add_subapp("/api", create_operator_api())
    if not settings.api.operator_token:
        log.warning("api.operator_token is empty: the operator API at /api is open to anyone")
    return app
