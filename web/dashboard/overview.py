"""`/`: what is happening right now and where money stands today (UTC day)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, time

from aiohttp import web

from billing.models import (
    ACTIVE_SESSION_STATUSES,
    JobStatus,
    OperationType,
    SessionStatus,
)
from csms.domain import isoformat, utcnow
from csms.keys import STORE
from web.dashboard import reads
from web.dashboard.render import page
from web.keys import BILLING

routes = web.RouteTableDef()

# Ledger entries that count for each tile; a PIX CHARGE is money taken like an authorization.
TILES = {OperationType.AUTHORIZE: "authorized", OperationType.CHARGE: "authorized",
         OperationType.CAPTURE: "captured", OperationType.REFUND: "refunded"}


@dataclass
class MoneyToday:
    authorized: int = 0
    captured: int = 0
    refunded: int = 0
    failed_jobs: int = 0


async def money_today(request: web.Request, since: datetime) -> MoneyToday:
    """Succeeded ledger entries since `since`, per tile: one aggregate read each."""
    store = request.config_dict[BILLING].store
    today = MoneyToday()
    for tile in ("authorized", "captured", "refunded"):
        types = {op for op, name in TILES.items() if name == tile}
        setattr(today, tile, await store.succeeded_total(types, since))
    today.failed_jobs = len(await store.list_jobs(statuses={JobStatus.FAILED}))
    return today


@routes.get("/", name="dash_overview")
async def overview(request: web.Request) -> web.Response:
    """Overview of stations, sessions and money today."""
    since = datetime.combine(utcnow().date(), time(), tzinfo=UTC)
    cutoff = isoformat(since) or ""
    stations = await reads.stations(request)
    connectors = [(s.id, c) for s in stations for c in s.connectors]
    # energy of the transactions that ended today or still run; billing's session is looked up
    # only for those shown running (the page is rendered again on every meter sample)
    today = [tx for tx in await request.config_dict[STORE].list_transactions(limit=1000)
             if tx.stopped_at is None or tx.stopped_at >= since]
    charging = await reads.transaction_views(request, [tx for tx in today if tx.active])
    return await page(
        request, "overview.html", watch="station,session,job",
        stations=stations, online=sum(s.connected for s in stations),
        # connector 0 is the station itself (OCPP 1.6): not a place a car charges
        status_mix=sorted(Counter(c.status for _, c in connectors
                                  if c.connectorId > 0).items()),
        faults=[(sid, c) for sid, c in connectors
                if c.status == "Faulted" or c.errorCode != "NoError"],
        live_sessions=await reads.sessions(request, statuses=ACTIVE_SESSION_STATUSES),
        in_review=await reads.sessions(request, statuses={SessionStatus.REVIEW}),
        energy_today=sum(tx.energy_wh for tx in today), charging=charging,
        money=await money_today(request, since), since=cutoff)
