"""`/sessions`, `/sessions/{id}` (energy, running cost, the payment ledger, jobs, receipt,
refund) and `/transactions/{id}` (meter values as a chart and a table)."""

from __future__ import annotations

import secrets

from aiohttp import web

from billing.errors import BillingError
from billing.models import ACTIVE_SESSION_STATUSES, PaymentStatus, SessionStatus
from billing.money import to_cents
from billing.payment import refund_room, refundable
from csms.domain import parse_timestamp
from csms.keys import STORE
from web.dashboard import reads
from web.dashboard.render import flash, money, not_found, page, see_other
from web.keys import BILLING
from web.operator.routes import session_of
from web.operator.views import JobView, TransactionDetail, TransactionView

routes = web.RouteTableDef()

REFUNDABLE = frozenset({PaymentStatus.CAPTURED, PaymentStatus.PAID,
                        PaymentStatus.PARTIALLY_REFUNDED})
ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"


@routes.get("/sessions", name="dash_sessions")
async def sessions(request: web.Request) -> web.Response:
    """Sessions."""
    show_all = request.query.get("show") == "all"
    statuses = None if show_all else ACTIVE_SESSION_STATUSES | {SessionStatus.PENDING_PAYMENT}
    return await page(request, "sessions.html", watch="session", show_all=show_all,
                      sessions=await reads.sessions(request, statuses=statuses))


@routes.get("/sessions/{session_id}", name="dash_session")
async def session(request: web.Request) -> web.Response:
    """One session with its payment ledger and jobs."""
    service = request.config_dict[BILLING]
    session_id = request.match_info["session_id"]
    try:
        found = await service.get(session_id)
    except BillingError:
        return await not_found(request, f"No session {session_id!r}")
    view = await reads.session_of(request, found)
    tx = None if found.transaction_id is None else \
        await request.config_dict[STORE].get_transaction(found.transaction_id)
    room = 0
    if found.payment_status in REFUNDABLE:
        room = refund_room(refundable(found), await service.operations(session_id))
    return await page(
        request, "session.html", watch=f"session:{session_id},job:{session_id}",
        session=view, domain=found, room=room, refund_key=secrets.token_urlsafe(16),
        transaction=None if tx is None else TransactionView.of(tx, session_id),
        jobs=[JobView.of(j) for j in await service.store.list_jobs(session_id=session_id)])


@routes.post("/sessions/{session_id}/refund", name="dash_refund")
async def refund(request: web.Request) -> web.Response:
    """Amount in currency units; the form's one-time key makes a double submit one refund."""
    session_id = request.match_info["session_id"]
    form = await request.post()
    try:
        cents = to_cents(str(form.get("amount", "")))
    except ValueError:
        cents = 0
    if cents <= 0:
        await flash(request, "error", "Refund: enter a positive amount such as 5.00")
        raise see_other(request, "dash_session", session_id=session_id)
    try:
        op = await request.config_dict[BILLING].operator_refund(
            session_id, cents, str(form.get("reason", "")) or None,
            str(form.get("key", "")) or None)
    except BillingError as exc:
        await flash(request, "error", f"Refund refused: {exc.message}")
    else:
        await flash(request, "ok",
                    f"Refund of {money(op.amount)} requested: it runs as a money job")
    raise see_other(request, "dash_session", session_id=session_id)


@routes.post("/sessions/{session_id}/review", name="dash_review")
async def review(request: web.Request) -> web.Response:
    """An operator's decision on implausible energy: charge an amount (currency units), or
    nothing; billing caps it at what was reserved and releases or refunds the rest."""
    session_id = request.match_info["session_id"]
    form = await request.post()
    cents: int | None = None
    if form.get("decision") == "capture":
        try:
            cents = to_cents(str(form.get("amount", "")))
        except ValueError:
            cents = -1
        if cents <= 0:
            await flash(request, "error", "Review: enter the amount owed, such as 5.00")
            raise see_other(request, "dash_session", session_id=session_id)
    try:
        done = await request.config_dict[BILLING].review(session_id, cents)
    except BillingError as exc:
        await flash(request, "error", f"Review refused: {exc.message}")
    else:
        await flash(request, "ok", f"Decided: the session is {done.status.value.lower()}")
    raise see_other(request, "dash_session", session_id=session_id)


def chart_series(tx: TransactionDetail) -> dict[str, list[float | None]]:
    """uPlot columns: time (epoch s), energy delivered (kWh) and power (kW), from unphased
    readings, with the start (0 kWh) and the stop (meterStop) as energy points."""
    rows: dict[str, dict[str, float]] = {}
    if tx.startedAt:
        rows[tx.startedAt] = {ENERGY: 0.0}
    for mv in tx.meterValues:
        if mv.phase or not mv.timestamp or mv.measurand not in (ENERGY, POWER):
            continue
        try:
            number = float(mv.value)
        except ValueError:
            continue
        unit = (mv.unit or ("Wh" if mv.measurand == ENERGY else "W")).lower()
        number *= 1.0 if unit in ("kwh", "kw") else 0.001
        if mv.measurand == ENERGY:
            number -= tx.meterStart / 1000
        rows.setdefault(mv.timestamp, {})[mv.measurand] = number
    if tx.stoppedAt:
        rows.setdefault(tx.stoppedAt, {})[ENERGY] = tx.energyWh / 1000
    stamps = sorted(rows, key=lambda t: parse_timestamp(t))
    return {"t": [parse_timestamp(t).timestamp() for t in stamps],
            "energy": [rows[t].get(ENERGY) for t in stamps],
            "power": [rows[t].get(POWER) for t in stamps]}


@routes.get("/transactions/{transaction_id}", name="dash_transaction")
async def transaction(request: web.Request) -> web.Response:
    """One transaction with its meter values: /transactions/{our id}, or for a 2.0.1
    station /transactions/{its transactionId}?stationId=..."""
    store = request.config_dict[STORE]
    tx = await reads.find_transaction(request, request.match_info["transaction_id"],
                                      request.query.get("stationId"))
    if tx is None:
        return await not_found(request, "No such transaction")
    detail = TransactionDetail.with_values(tx, await session_of(request, tx),
                                           await store.list_meter_values(tx.transaction_id))
    return await page(request, "transaction.html", watch=f"transaction:{tx.transaction_id}",
                      tx=detail, chart=chart_series(detail),
                      values=list(reversed(detail.meterValues)))
