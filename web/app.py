"""The one wiring point: `create_app(settings)` builds the whole aiohttp application.

This is the composition root: it makes the charging core (`csms`), billing and the HTTP
surfaces, connects billing to the core's events, and opens and closes every resource in a
cleanup context, in this order (closed in reverse): charging store (and the
open-configuration check, web.posture), hub, billing, task set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlencode

from aiohttp import web

from billing.jobs.broker import connect_jobs
from billing.parts import BillingParts
from billing.service import BillingService
from csms.background import TaskSet, stop_if_cancelled, wait_cancelled
from csms.charging import ChargingService
from csms.cluster.node import ClusterNode
from csms.keys import CHARGING, HUB, METRICS, OCPP_SETTINGS, STATION_COMMANDS, STORE, TASKS
from csms.meter_window import with_meter_window
from csms.metrics import Metrics
from csms.ocpp.endpoint import ocpp_websocket
from csms.ocpp.hub import Hub
from csms.store import Store
from csms.store.factory import make_store
from web import health, posture, receipts, terminal, webhooks
from web.apidoc import documented
from web.dashboard.app import setup_dashboard
from web.dashboard.live import LiveFeed
from web.driver.routes import routes as driver_routes
from web.errors import error_middleware
from web.keys import BILLING, BILLING_STORE, CLUSTER, GATEWAY, JOBS, SETTINGS, STATION_PORT
from web.limits import app_limits, body_timeout
from web.operator.routes import create_operator_api
from web.settings import Settings
from web.station_port import StationPort

log = logging.getLogger(__name__)

logging.getLogger("ocpp").setLevel(logging.WARNING)

PARTS = web.AppKey("billing_parts", BillingParts)

# The handler lives in the charging core, which knows no OpenAPI; its description lives here.
OCPP_ENDPOINT = documented(
    "OCPP-J websocket for a charging station (subprotocol ocpp2.0.1 or ocpp1.6)", status=101,
    security="stationBasic", errors=(400, 401, 403, 404))(ocpp_websocket)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open the store, then refuse (production) or warn about (development) what is open.

    aiohttp runs no cleanup when start-up fails, so a refusal closes the store itself.
    """
    store, settings = app[STORE], app[SETTINGS]
    await store.open()
    try:
        stations = await store.list_stations()
        findings = (posture.open_stations(settings, stations)
                    + posture.unservable_stations(settings, stations))
        posture.enforce(settings, posture.open_settings(settings) + findings)
    except BaseException:
        await store.close()
        raise
    if not settings.cluster.enabled:  # in a cluster the others' stations are still connected
        await store.mark_all_disconnected()
    yield
    await store.close()


async def _cluster_ctx(app: web.Application) -> AsyncIterator[None]:
    """Join the cluster (presence, routing, live events over Redis) before stations come."""
    node = app.get(CLUSTER)
    if node is None:
        yield
        return
    await node.start()
    yield
    await node.stop()


async def _hub_ctx(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB]
    hub.frames.start()
    hub.service.last_seen.start()
    hub.service.connections.start()
    yield
    await hub.service.connections.stop()  # the stations' disconnects, noted at shutdown
    await hub.service.last_seen.stop()
    await hub.frames.stop()


async def _billing_ctx(app: web.Application) -> AsyncIterator[None]:
    """Open billing's store, gateway and job broker; reconcile what a crash left half-done.

    With the in-process broker money jobs run here; with Redis this process only enqueues
    them and `csms worker` runs them. The outbox sweeper runs in both.
    """
    settings, parts, service = app[SETTINGS], app[PARTS], app[BILLING]
    await parts.open()
    broker = connect_jobs(settings, parts.jobs)
    try:
        await broker.startup()
    except Exception as exc:  # Redis down: jobs wait in the outbox until it is back
        log.warning("job broker unavailable at start-up (%s); jobs will be enqueued later", exc)
    await service.reconcile()
    background = [
        asyncio.create_task(_repeat(settings.billing.reconcile_interval, service.reconcile,
                                    "reconciliation sweep"), name="reconcile"),
        asyncio.create_task(_repeat(settings.billing.stop_retry_interval, service.resend_stops,
                                    "stop retry sweep"), name="stop-retries"),
        asyncio.create_task(parts.jobs.sweep_forever(), name="outbox-sweeper")]
    yield
    await wait_cancelled(background)
    # The task set (closed before this) no longer touches the billing store; an interrupted
    # job stays in the outbox and the next start (or a worker) finishes it.
    await parts.jobs.drain(timeout=5)
    running = list(getattr(broker, "_running_tasks", ()))
    for task_ in running:
        task_.cancel()
    await asyncio.gather(*running, return_exceptions=True)
    with contextlib.suppress(Exception):
        await broker.shutdown()
    await parts.close()


async def _tasks_ctx(app: web.Application) -> AsyncIterator[None]:
    """Work handed off message loops and requests stops first, before what it uses closes."""
    yield
    await app[TASKS].stop()


async def _repeat(interval: float, sweep: Callable[[], Awaitable[None]], what: str) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await sweep()
        except Exception:
            log.exception("%s failed", what)
        stop_if_cancelled()


def ccv_webhook_url(settings: Settings) -> str:
    """Where CCV posts its hints: `server.public_url` + /webhooks/ccv, with the webhook secret
    as `?key=` (empty without a public URL: only the reconciliation sweep learns outcomes)."""
    public = settings.server.public_url.rstrip("/")
    if not public:
        return ""
    return f"{public}/webhooks/ccv?" + urlencode({"key": settings.billing.ccv.webhook_secret})

def _cluster_node(settings: Settings, hub: Hub, charging: ChargingService,
                  store: Store) -> ClusterNode | None:
    cluster = settings.cluster
    if not cluster.enabled:
        return None
    node_id = cluster.node_id or f"{socket.gethostname()}:{settings.server.port}"
    return ClusterNode(cluster, settings.cluster_redis_url, node_id, hub, charging, store)


def create_app(settings: Settings, *, store: Store | None = None) -> web.Application:
    app = web.Application(middlewares=[error_middleware,
                                       body_timeout(settings.server.body_timeout)],
                          **app_limits(settings.server))
    app[SETTINGS] = settings
    app[OCPP_SETTINGS] = settings.ocpp
    app[METRICS] = metrics = Metrics()
    app[TASKS] = tasks = TaskSet()
    app[STORE] = store = with_meter_window(store or make_store(settings.store),
                                           settings.ocpp.meter_commit_window)
    app[CHARGING] = charging = ChargingService(store, settings.ocpp)
    app[HUB] = hub = Hub(settings.ocpp, store, charging, metrics)
    feed = LiveFeed()  # the dashboard's live updates: charging events and billing's writes
    node = _cluster_node(settings, hub, charging, store)
    # One node: events go straight to the feed. A cluster: to Redis, and from Redis (every
    # node's, this one's included) to the feed.
    live = feed if node is None else node.events
    app[STATION_COMMANDS] = commands = hub if node is None else node.router
    app[PARTS] = parts = BillingParts.from_settings(settings, on_change=live.on_change)
    app[BILLING_STORE], app[GATEWAY], app[JOBS] = parts.store, parts.gateway, parts.jobs
    app[BILLING] = billing = BillingService(settings, parts.store, store, parts.ledger,
                                            commands, parts.jobs, tasks, metrics.registry,
                                            terminal_webhook_url=ccv_webhook_url(settings))
    charging.listeners.append(billing.listener)
    charging.listeners.append(live)  # after billing: a meter sample's cost is stored by then
    if node is not None:
        app[CLUSTER] = node
        node.bus.on("event", feed.follow)

    app.cleanup_ctx.extend([_store_ctx, _cluster_ctx, _hub_ctx, _billing_ctx, _tasks_ctx])
    app[STATION_PORT] = port = StationPort(hub, store, settings.ocpp, metrics,
                                           head_timeout=settings.server.idle_timeout)
    app.on_shutdown.append(port.shutdown)  # closes every station, whichever path it came by

    app.router.add_get("/ocpp/{station_id}", OCPP_ENDPOINT, name="ocpp")
    app.add_routes(health.routes)
    app.add_routes(driver_routes)
    app.add_routes(webhooks.routes)
    app.add_routes(terminal.routes)
    app.add_routes(receipts.routes)
    app.add_subapp("/api", create_operator_api())
    setup_dashboard(app, settings, feed)
    return app
