"""The one wiring point: `create_app(settings)` builds the whole aiohttp application.

This module is the composition root, so it is the one place in `csms` that imports the HTTP
surfaces (`web`) and, later, `billing`; the charging domain itself never does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from billing.gateways.base import PaymentGateway
from billing.gateways.pagarme import PagarmeGateway
from billing.gateways.sandbox import SandboxGateway, SqliteSandboxChargeStore
from billing.jobs import MoneyJobs
from billing.listener import BillingListener
from billing.receipts import make_mailer
from billing.service import BillingService
from billing.store import BillingStore
from billing.store_sqlite import SqliteBillingStore
from billing.tasks import connect_jobs
from csms.background import TaskSet, stop_if_cancelled, wait_cancelled
from csms.charging import ChargingService
from csms.config import ConfigError, Settings
from csms.keys import CHARGING, HUB, METRICS, SETTINGS, STORE, TASKS
from csms.metrics import Metrics
from csms.ocpp.endpoint import ocpp_websocket
from csms.ocpp.hub import Hub
from csms.store import Store
from csms.store.factory import make_store
from web import driver_api, receipts, webhooks
from web.errors import error_middleware
from web.keys import BILLING, BILLING_STORE, GATEWAY, JOBS
from web.operator_api import create_operator_api

log = logging.getLogger(__name__)

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
    await app[TASKS].stop()
    await hub.frames.stop()


def make_gateway(settings: Settings) -> PaymentGateway:
    if settings.billing.gateway == "pagarme":
        return PagarmeGateway(settings.billing.pagarme)
    return SandboxGateway(SqliteSandboxChargeStore(settings.billing.sandbox_path))


def make_billing_store(settings: Settings) -> BillingStore:
    if settings.store.backend != "sqlite":
        raise ConfigError("store.backend: the MongoDB adapter is not available in this "
                          "release; use \"sqlite\"")
    return SqliteBillingStore(settings.store.sqlite_path)


async def open_billing_parts(store: BillingStore, gateway: PaymentGateway) -> None:
    await store.open()
    if isinstance(gateway, SandboxGateway):
        await gateway.store.open()  # type: ignore[attr-defined]


async def close_billing_parts(store: BillingStore, gateway: PaymentGateway) -> None:
    if isinstance(gateway, SandboxGateway):
        await gateway.store.close()  # type: ignore[attr-defined]
    elif isinstance(gateway, PagarmeGateway):
        await gateway.aclose()
    await store.close()


async def _billing_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open billing's store, gateway and job broker; reconcile what a crash left half-done.

    With the in-process broker money jobs run here; with Redis this process only enqueues
    them and `csms worker` runs them. The outbox sweeper runs in both.
    """
    settings = app[SETTINGS]
    store, gateway, service, jobs = app[BILLING_STORE], app[GATEWAY], app[BILLING], app[JOBS]
    await open_billing_parts(store, gateway)
    broker = connect_jobs(settings, jobs)
    try:
        await broker.startup()
    except Exception as exc:  # Redis down: jobs wait in the outbox until it is back
        log.warning("job broker unavailable at start-up (%s); jobs will be enqueued later", exc)
    await service.reconcile()
    background = [asyncio.create_task(_reconcile_loop(service, settings), name="reconcile"),
                  asyncio.create_task(jobs.sweep_forever(), name="outbox-sweeper")]
    yield
    await wait_cancelled(background)
    # Stop every piece of work that may still touch the billing store before closing it;
    # an interrupted job stays in the outbox and the next start (or a worker) finishes it.
    await app[TASKS].stop()
    await jobs.drain(timeout=5)
    running = list(getattr(broker, "_running_tasks", ()))
    for task_ in running:
        task_.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    with contextlib.suppress(Exception):
        await broker.shutdown()
    await close_billing_parts(store, gateway)


async def _reconcile_loop(service: BillingService, settings: Settings) -> None:
    while True:
        await asyncio.sleep(settings.billing.reconcile_interval)
        try:
            await service.reconcile()
        except Exception:
            log.exception("reconciliation sweep failed")
        stop_if_cancelled()


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
    app[HUB] = hub = Hub(settings.ocpp, store, charging, metrics)
    app[BILLING_STORE] = billing_store = make_billing_store(settings)
    app[GATEWAY] = gateway = make_gateway(settings)
    app[JOBS] = jobs = MoneyJobs(settings, billing_store, store, gateway,
                                 make_mailer(settings.mail))
    app[TASKS] = tasks = TaskSet()
    app[BILLING] = billing = BillingService(settings, billing_store, store, gateway, hub, jobs,
                                            tasks)
    charging.listeners.append(BillingListener(billing))

    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_hub_ctx)
    app.cleanup_ctx.append(_billing_ctx)
    app.on_shutdown.append(_close_stations)

    app.router.add_get("/ocpp/{station_id}", ocpp_websocket, name="ocpp")
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/metrics", metrics_view, name="metrics")
    app.add_routes(driver_api.routes)
    app.add_routes(webhooks.routes)
    app.add_routes(receipts.routes)
    app.add_subapp("/api", create_operator_api())
    if not settings.api.operator_token:
        log.warning("api.operator_token is empty: the operator API at /api is open to anyone")
    return app
