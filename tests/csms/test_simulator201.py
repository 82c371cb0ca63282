"""`csms simulate --ocpp 2.0.1` and `--ocpp mixed` against this CSMS on a real port: the
simulated 2.0.1 stations boot, charge with TransactionEvents and answer every command the
operator API sends a 2.0.1 station, as hardware would."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from csms.simulator import SimulationConfig, run_simulation
from tests.support.wait import eventually


async def api(http_url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.request(method, http_url + path, json=body) as resp:
            return resp.status, await resp.json()


async def command(http_url: str, station_id: str, action: str, payload: Any) -> Any:
    status, body = await api(http_url, "POST",
                             f"/api/stations/{station_id}/commands/{action}", payload)
    assert status == 200, body
    return body["response"]


async def test_2_0_1_stations_charge_with_transaction_events(ws_url: str,
                                                             http_url: str) -> None:
    summary = await run_simulation(SimulationConfig(
        url=ws_url, stations=3, duration=2.0, meter_interval=0.2, progress_interval=0,
        ocpp="2.0.1", id_prefix="S201-"))
    assert summary.errors == {}, summary.error_samples
    assert (summary.stations_booted, summary.transactions_started,
            summary.transactions_stopped) == (3, 3, 3)
    assert set(summary.calls) == {"BootNotification", "Heartbeat", "StatusNotification",
                                  "Authorize", "TransactionEvent"}
    assert summary.sampled_values_acked == summary.sampled_values_sent > 0
    text = summary.format_text()
    assert "TransactionEvent" in text and "stations:     3 on OCPP 2.0.1" in text
    assert f"sampled values: {summary.sampled_values_sent} while charging" in text

    status, transactions = await api(http_url, "GET", "/api/transactions")
    assert status == 200
    assert sorted(t["stationId"] for t in transactions) == ["S201-0001", "S201-0002",
                                                           "S201-0003"]
    for tx in transactions:
        assert tx["ocppVersion"] == "2.0.1"
        assert tx["stoppedAt"] is not None and tx["stopReason"] == "Local"
        assert tx["energyWh"] > 0
        assert tx["transactionId"].startswith(tx["stationId"])


async def test_a_mixed_fleet_alternates_1_6_and_2_0_1(ws_url: str, http_url: str) -> None:
    summary = await run_simulation(SimulationConfig(
        url=ws_url, stations=4, duration=1.5, meter_interval=0.3, progress_interval=0,
        ocpp="mixed", id_prefix="MIX-"))
    assert summary.errors == {}, summary.error_samples
    assert (summary.transactions_started, summary.transactions_stopped) == (4, 4)
    assert {"StartTransaction", "StopTransaction", "TransactionEvent"} <= set(summary.calls)
    assert "4 on OCPP mixed" in summary.format_text()
    _, transactions = await api(http_url, "GET", "/api/transactions")
    versions = {t["stationId"]: t["ocppVersion"] for t in transactions}
    assert versions == {"MIX-0001": "1.6", "MIX-0002": "2.0.1", "MIX-0003": "1.6",
                        "MIX-0004": "2.0.1"}


@contextlib.asynccontextmanager
async def idle_201(ws_url: str, http_url: str, station_id: str) -> AsyncIterator[None]:
    simulation = asyncio.create_task(run_simulation(SimulationConfig(
        url=ws_url, ids=(station_id,), idle=True, duration=math.inf, progress_interval=0,
        meter_interval=0.2, ocpp="2.0.1", power_kw=22)))

    async def view() -> Any:
        status, body = await api(http_url, "GET", f"/api/stations/{station_id}")
        return body if status == 200 else {}

    try:
        await eventually(view, lambda s: s.get("connected") and s["connectors"]
                         and s["connectors"][0]["status"] == "Available")
        yield
    finally:
        simulation.cancel()
        await asyncio.gather(simulation, return_exceptions=True)


async def test_an_idle_2_0_1_station_answers_the_operator_like_hardware(
        ws_url: str, http_url: str) -> None:
    sid = "SIM-201"
    async with idle_201(ws_url, http_url, sid):
        # device model: read, write, and a report in parts that the CSMS keeps
        heartbeat = {"component": {"name": "OCPPCommCtrlr"},
                     "variable": {"name": "HeartbeatInterval"}}
        model = {"component": {"name": "ChargingStation"}, "variable": {"name": "Model"}}
        got = await command(http_url, sid, "GetVariables", {"getVariableData": [
            heartbeat, model, {"component": {"name": "Nope"}, "variable": {"name": "X"}}]})
        assert [(r["attributeStatus"], r.get("attributeValue"))
                for r in got["getVariableResult"]] == \
            [("Accepted", "300"), ("Accepted", "SimCharger-22"), ("UnknownComponent", None)]
        set_ = await command(http_url, sid, "SetVariables", {"setVariableData": [
            {**heartbeat, "attributeValue": "120"}, {**model, "attributeValue": "Other"}]})
        assert [r["attributeStatus"] for r in set_["setVariableResult"]] == \
            ["Accepted", "Rejected"]  # Model is read-only
        assert await command(http_url, sid, "GetBaseReport",
                             {"requestId": 42, "reportBase": "FullInventory"}) == \
            {"status": "Accepted"}
        report = await eventually(
            lambda: api(http_url, "GET", f"/api/stations/{sid}/variables"),
            lambda found: found[0] == 200)
        assert report[1]["requestId"] == 42 and report[1]["parts"] > 1
        values = {(v["component"], v["variable"]): v["value"] for v in report[1]["variables"]}
        assert values[("OCPPCommCtrlr", "HeartbeatInterval")] == "120"
        assert values[("EVSE", "Power")] == "22000"

        # remote start and stop, with the station's own transaction id
        assert await command(http_url, sid, "RequestStartTransaction", {
            "idToken": {"idToken": "OP-1", "type": "Central"}, "remoteStartId": 9,
            "evseId": 1}) == {"status": "Accepted"}
        tx = (await eventually(
            lambda: api(http_url, "GET", f"/api/transactions?stationId={sid}&active=true"),
            lambda found: found[1] and found[1][0]["energyWh"] > 0))[1][0]
        assert await command(http_url, sid, "GetTransactionStatus",
                             {"transactionId": tx["transactionId"]}) == \
            {"messagesInQueue": False, "ongoingIndicator": True}
        assert await command(http_url, sid, "UnlockConnector",
                             {"evseId": 1, "connectorId": 1}) == \
            {"status": "OngoingAuthorizedTransaction"}
        assert await command(http_url, sid, "ChangeAvailability",
                             {"operationalStatus": "Inoperative"}) == {"status": "Scheduled"}
        assert await command(http_url, sid, "RequestStopTransaction",
                             {"transactionId": "not-mine"}) == {"status": "Rejected"}
        assert await command(http_url, sid, "RequestStopTransaction",
                             {"transactionId": tx["transactionId"]}) == {"status": "Accepted"}
        stopped = (await eventually(
            lambda: api(http_url, "GET", f"/api/transactions?stationId={sid}"),
            lambda found: found[1][0]["stoppedAt"] is not None))[1][0]
        assert (stopped["stopReason"], stopped["idTag"]) == ("Remote", "OP-1")
        # the station forgets its transaction once the Ended is answered, so the stop can be
        # stored before it does; it says Available after that
        await eventually(lambda: api(http_url, "GET", f"/api/stations/{sid}"),
                         lambda found: found[1]["connectors"][0]["status"] == "Available")

        # the rest of the 2.0.1 commands, answered as a charger would
        assert await command(http_url, sid, "UnlockConnector",
                             {"evseId": 1, "connectorId": 1}) == {"status": "Unlocked"}
        assert await command(http_url, sid, "ChangeAvailability",
                             {"operationalStatus": "Inoperative", "evse": {"id": 1}}) == \
            {"status": "Accepted"}
        await eventually(lambda: api(http_url, "GET", f"/api/stations/{sid}"),
                         lambda found: found[1]["connectors"][0]["status"] == "Unavailable")
        assert await command(http_url, sid, "TriggerMessage",
                             {"requestedMessage": "Heartbeat"}) == {"status": "Accepted"}
        assert await command(http_url, sid, "TriggerMessage",
                             {"requestedMessage": "SignV2GCertificate"}) == \
            {"status": "NotImplemented"}
        assert await command(http_url, sid, "ClearCache", {}) == {"status": "Accepted"}
        assert await command(http_url, sid, "DataTransfer", {"vendorId": "acme"}) == \
            {"status": "UnknownVendorId"}
        assert await command(http_url, sid, "DataTransfer",
                             {"vendorId": "CSMS-Sim", "data": "ping"}) == \
            {"status": "Accepted", "data": "ping"}
        assert await command(http_url, sid, "Reset", {"type": "Immediate"}) == \
            {"status": "Accepted"}
