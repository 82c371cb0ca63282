"""Remote start and stop from the dashboard, in no OCPP version: the StationCommands port
(STATION_COMMANDS, the cluster's router when there are several nodes) maps them to
RemoteStart/RemoteStopTransaction on 1.6 and RequestStart/RequestStopTransaction on 2.0.1.

A stop names our transaction id (the `id` of the read model), never the station's: on 2.0.1
the port looks the station's own transactionId up. A transaction billed to a session that is
still charging is stopped through billing, as the operator's stop: the stop is recorded and
re-sent until the station reports it (ARCHITECTURE: a stop is a durable intent)."""

from __future__ import annotations

from aiohttp import web

from billing.errors import BillingError
from billing.models import SessionStatus, StopRequester
from csms.commands import CommandError
from csms.keys import STATION_COMMANDS
from web.dashboard import reads
from web.dashboard.render import flash, not_found, see_other
from web.keys import BILLING

routes = web.RouteTableDef()

STOPPABLE_SESSIONS = frozenset({SessionStatus.CHARGING, SessionStatus.STOPPING})


@routes.post("/stations/{station_id}/start", name="dash_remote_start")
async def remote_start(request: web.Request) -> web.Response:
    """Ask the station to start charging on a connector (1.6) or EVSE (2.0.1) for an idTag.

    Unbilled, like a start with an RFID card: the idTag is authorized as the station's own
    would be. Paid sessions start from a driver app (POST /charge/start)."""
    station_id = request.match_info["station_id"]
    form = await request.post()
    id_tag = str(form.get("idTag", "")).strip()
    try:
        connector_id = int(str(form.get("connectorId", "")))
    except ValueError:
        connector_id = 0
    if connector_id < 1 or not id_tag:
        await flash(request, "error",
                    "Remote start: give a connector (EVSE) number from 1 and an idTag")
        raise see_other(request, "dash_station", station_id=station_id)
    try:
        accepted = await request.config_dict[STATION_COMMANDS].remote_start(
            station_id, connector_id, id_tag)
    except CommandError as exc:
        await flash(request, "error", f"Remote start failed: {_reason(exc)}")
    else:
        await flash(request, "ok" if accepted else "error",
                    f"Remote start on #{connector_id} for {id_tag}: the station "
                    + ("accepted it" if accepted else "rejected it"))
    raise see_other(request, "dash_station", station_id=station_id)


@routes.post("/transactions/{transaction_id}/stop", name="dash_remote_stop")
async def remote_stop(request: web.Request) -> web.Response:
    """Stop a running transaction; back to the station's page or the transaction's (the
    form's `back`)."""
    form = await request.post()
    tx = await reads.find_transaction(request, request.match_info["transaction_id"])
    if tx is None:
        return await not_found(request, "No such transaction")
    transaction_id = tx.transaction_id
    if not tx.active:
        await flash(request, "error", "This transaction has already stopped")
    else:
        service = request.config_dict[BILLING]
        session = await service.store.session_by_transaction(transaction_id)
        if session is not None and session.status in STOPPABLE_SESSIONS:
            await _stop_session(request, session.session_id)
        else:
            await _stop_transaction(request, tx.station_id, transaction_id)
    if form.get("back") == "station":
        raise see_other(request, "dash_station", station_id=tx.station_id)
    raise see_other(request, "dash_transaction", transaction_id=str(transaction_id))


async def _stop_session(request: web.Request, session_id: str) -> None:
    try:
        session = await request.config_dict[BILLING].stop(session_id, StopRequester.OPERATOR)
    except BillingError as exc:
        await flash(request, "error", f"Stop refused: {exc.message}")
        return
    if session.stop_last_error:
        await flash(request, "error", f"Stop recorded, not yet taken by the station "
                    f"({session.stop_last_error}): it is sent again until the station stops")
    else:
        await flash(request, "ok", "Stop sent: the station accepted it; the session is "
                    "billed when the station reports the stop")


async def _stop_transaction(request: web.Request, station_id: str, transaction_id: int) -> None:
    try:
        accepted = await request.config_dict[STATION_COMMANDS].remote_stop(
            station_id, transaction_id)
    except CommandError as exc:
        await flash(request, "error", f"Remote stop failed: {_reason(exc)}")
        return
    await flash(request, "ok" if accepted else "error",
                "Remote stop: the station " + ("accepted it" if accepted else "rejected it"))


def _reason(exc: CommandError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
