"""`/stations` and `/stations/{id}`: boot data, connectors, the running transaction, the OCPP
message log, the device model a 2.0.1 station reported, and one form per command an operator
sends in the station's version (the station's answer is shown)."""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web
from aiohttp_session import get_session

from csms.commands import CommandError, CommandInvalid
from csms.keys import HUB, STATION_COMMANDS, STORE
from web.dashboard import reads
from web.dashboard.render import flash, not_found, page, see_other
from web.keys import BILLING
from web.operator.device_model import latest_report
from web.operator.routes import connected_version, find_station, station_detail
from web.operator.views import FrameView, TariffView

routes = web.RouteTableDef()

FRAMES_SHOWN = 50


def _int(form: Any, name: str) -> int:
    try:
        return int(str(form.get(name, "")))
    except ValueError:
        raise CommandInvalid(f"{name} must be a whole number") from None


def command_payload(action: str, form: Any, version: str = "1.6") -> dict[str, Any]:
    """The OCPP payload (camelCase, as for POST /api/.../commands/{Action}) from a form, in
    the station's version."""
    if version == "2.0.1":
        return command_payload_201(action, form)
    if action == "Reset":
        return {"type": "Hard" if form.get("type") == "Hard" else "Soft"}
    if action == "UnlockConnector":
        return {"connectorId": _int(form, "connectorId")}
    if action == "ChangeAvailability":
        kind = "Inoperative" if form.get("type") == "Inoperative" else "Operative"
        return {"connectorId": _int(form, "connectorId"), "type": kind}
    if action == "TriggerMessage":
        payload: dict[str, Any] = {"requestedMessage": str(form.get("requestedMessage", ""))}
        if form.get("connectorId"):
            payload["connectorId"] = _int(form, "connectorId")
        return payload
    raise CommandInvalid(f"{action} is not a command the dashboard sends")


def command_payload_201(action: str, form: Any) -> dict[str, Any]:
    """The same forms for a 2.0.1 station: EVSE-addressed, 2.0.1's enumerations; evse 0 (or
    none) is the whole station."""
    evse = _int(form, "evseId") if form.get("evseId") else 0
    if action == "Reset":
        return {"type": "OnIdle" if form.get("type") == "OnIdle" else "Immediate"}
    if action == "UnlockConnector":
        return {"evseId": _int(form, "evseId"), "connectorId": _int(form, "connectorId")}
    if action == "ChangeAvailability":
        status = "Inoperative" if form.get("type") == "Inoperative" else "Operative"
        return {"operationalStatus": status, **({"evse": {"id": evse}} if evse else {})}
    if action == "TriggerMessage":
        return {"requestedMessage": str(form.get("requestedMessage", "")),
                **({"evse": {"id": evse}} if evse else {})}
    if action == "GetBaseReport":
        base = str(form.get("reportBase", ""))
        if base not in REPORT_BASES:
            raise CommandInvalid(f"reportBase must be one of {', '.join(REPORT_BASES)}")
        # a fresh id per request, so the station's NotifyReports name this one
        return {"requestId": int(time.time()) % 2**31, "reportBase": base}
    raise CommandInvalid(f"{action} is not a command the dashboard sends")


REPORT_BASES = ("FullInventory", "ConfigurationInventory", "SummaryInventory")


@routes.get("/stations", name="dash_stations")
async def stations(request: web.Request) -> web.Response:
    """Stations."""
    found = sorted(await reads.stations(request), key=lambda s: (not s.connected, s.id))
    return await page(request, "stations.html", watch="station", stations=found)


@routes.get("/stations/{station_id}", name="dash_station")
async def station(request: web.Request) -> web.Response:
    """One station with its message log and commands."""
    station_id = request.match_info["station_id"]
    stored = await find_station(request, station_id)  # a live one not stored yet too
    if stored is None:
        return await not_found(request, f"No station {station_id!r} has connected or been added")
    hub = request.config_dict[HUB]
    await hub.frames.flush()
    frames = await request.config_dict[STORE].list_frames(station_id, FRAMES_SHOWN)
    session = await get_session(request)
    answers = session.pop("answers", {})
    return await page(
        request, "station.html", watch=f"station:{station_id}",
        station=await station_detail(request, stored),
        running=await reads.transactions(request, station_id=station_id, active=True),
        recent=await reads.transactions(request, station_id=station_id, limit=10),
        frames=[FrameView.of(f) for f in frames], answer=answers.get(station_id),
        report=await latest_report(request, station_id), report_bases=REPORT_BASES,
        tariff=await TariffView.of(request.config_dict[BILLING], station_id))


@routes.post("/stations/{station_id}/commands/{action}", name="dash_command")
async def command(request: web.Request) -> web.Response:
    """Send the call, keep the station's answer for the page, redirect back (PRG)."""
    station_id, action = request.match_info["station_id"], request.match_info["action"]
    connected = connected_version(request, station_id)
    try:
        payload = command_payload(action, await request.post(),
                                  connected.name if connected else "1.6")
        response = await request.config_dict[STATION_COMMANDS].call(station_id, action, payload)
        answer = {"action": action, "request": payload, "response": response, "ok": True}
    except CommandError as exc:
        answer = {"action": action, "error": f"{type(exc).__name__}: {exc}", "ok": False}
    session = await get_session(request)
    session["answers"] = {station_id: {**answer, "text": json.dumps(
        answer.get("response", answer.get("error")))}}
    if not answer["ok"]:
        await flash(request, "error", f"{action} failed: {answer['error']}")
    raise see_other(request, "dash_station", station_id=station_id)
