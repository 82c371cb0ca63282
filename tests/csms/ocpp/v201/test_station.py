"""An OCPP 2.0.1 station (the `ocpp` library's v201 client) over a real websocket."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from ocpp.v201 import call
from websockets.asyncio.client import connect

from tests.csms.ocpp.test_station_auth import provision
from tests.support.stations import station
from tests.support.stations201 import station201


async def get_station(http_url: str, station_id: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{http_url}/api/stations/{station_id}") as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


@pytest.mark.parametrize(("offered", "agreed"), [
    (["ocpp2.0.1"], "ocpp2.0.1"),
    (["ocpp1.6", "ocpp2.0.1"], "ocpp2.0.1"),
    (["ocpp2.0.1", "ocpp1.6"], "ocpp2.0.1"),
    (["ocpp1.6"], "ocpp1.6"),
])
async def test_the_newest_offered_version_is_agreed(ws_url: str, offered: list[str],
                                                    agreed: str) -> None:
    async with connect(f"{ws_url}/CP-NEG", subprotocols=offered) as ws:
        assert ws.subprotocol == agreed


async def test_boot_heartbeat_and_status_show_in_the_operator_api(ws_url: str,
                                                                  http_url: str) -> None:
    async with station201(ws_url, "CP-201") as cp:
        boot = await cp.boot()
        assert boot.status == "Accepted" and boot.interval == 300
        assert (await cp.call(call.Heartbeat())).current_time.endswith("Z")
        await cp.status(1, 1, "Available")
        await cp.status(2, 1, "Occupied")
        await cp.status(3, 1, "Available")
        await cp.status(3, 2, "Faulted")  # another cable of EVSE 3: the EVSE stays usable

        view = await get_station(http_url, "CP-201")
        assert view["connected"] and view["ocppVersion"] == "2.0.1"
        assert (view["vendor"], view["model"], view["serialNumber"], view["firmwareVersion"]) \
            == ("Vendor201", "Model201", "SN-201", "2.0.1-fw")
        connectors = {c["connectorId"]: c for c in view["connectors"]}
        assert {k: c["status"] for k, c in connectors.items()} == \
            {1: "Available", 2: "Occupied", 3: "Available"}
        assert connectors[3]["info"] == "connector 2: Faulted"
        evses = {e["evseId"]: e for e in view["evses"]}
        assert {k: e["status"] for k, e in evses.items()} == \
            {1: "Available", 2: "Occupied", 3: "Available"}
        assert evses[3]["connectors"] == [{"connectorId": 1, "status": "Available"},
                                          {"connectorId": 2, "status": "Faulted"}]

        await cp.status(3, 1, "Unavailable")
        connectors = (await get_station(http_url, "CP-201"))["connectors"]
        evse3 = next(c for c in connectors if c["connectorId"] == 3)
        assert (evse3["status"], evse3["errorCode"]) == ("Unavailable", "NoError")

    async with station(ws_url, "CP-16") as cp16:
        await cp16.boot()
        view16 = await get_station(http_url, "CP-16")
        assert (view16["ocppVersion"], view16["evses"]) == ("1.6", None)
    assert (await get_station(http_url, "CP-201"))["ocppVersion"] is None


async def test_authorize_answers_id_token_info(ws_url: str, http_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{http_url}/api/id-tags/BLOCKED-1",
                            json={"status": "Blocked"}) as resp:
            assert resp.status in (200, 201), await resp.text()
    async with station201(ws_url, "CP-AUTH") as cp:
        known = await cp.call(call.Authorize(id_token={"id_token": "BLOCKED-1",
                                                       "type": "ISO14443"}))
        assert known.id_token_info["status"] == "Blocked"
        anyone = await cp.call(call.Authorize(id_token={"id_token": "04A2B3C4D5E6F7",
                                                        "type": "ISO14443"}))
        assert anyone.id_token_info["status"] == "Accepted"


async def test_security_profile_1_applies_to_2_0_1(ws_url: str, http_url: str) -> None:
    await provision(http_url, "CP-SEC201", "correct-horse")
    async with station201(ws_url, "CP-SEC201", password="correct-horse") as cp:
        assert (await cp.boot()).status == "Accepted"
    with pytest.raises(Exception, match="401"):
        async with station201(ws_url, "CP-SEC201", password="wrong-horse"):
            pass


async def test_reports_and_notifications_are_answered(ws_url: str, http_url: str) -> None:
    at = "2026-11-22T10:00:00Z"
    async with station201(ws_url, "CP-NOTE") as cp:
        await cp.call(call.MeterValues(evse_id=1, meter_value=[{
            "timestamp": at, "sampled_value": [
                {"value": 12.5, "unit_of_measure": {"unit": "kWh"}},
                {"value": 7.4, "measurand": "Power.Active.Import",
                 "unit_of_measure": {"unit": "W", "multiplier": 3}}]}]))
        await cp.call(call.SecurityEventNotification(type="StartupOfTheDevice", timestamp=at))
        await cp.call(call.NotifyEvent(generated_at=at, seq_no=0, event_data=[{
            "event_id": 1, "timestamp": at, "trigger": "Alerting", "actual_value": "true",
            "event_notification_type": "HardWiredNotification",
            "component": {"name": "EVSE"}, "variable": {"name": "Problem"}}]))
        await cp.call(call.NotifyReport(request_id=1, generated_at=at, seq_no=0))
        await cp.call(call.FirmwareStatusNotification(status="Downloading"))
        await cp.call(call.LogStatusNotification(status="Uploading"))
        transfer = await cp.call(call.DataTransfer(vendor_id="com.example"))
        assert transfer.status == "UnknownVendorId"

        view = await get_station(http_url, "CP-NOTE")
        assert (view["firmwareStatus"], view["diagnosticsStatus"]) == \
            ("Downloading", "Uploading")


async def test_operator_commands_reach_a_2_0_1_station(ws_url: str, http_url: str) -> None:
    async with station201(ws_url, "CP-CMD") as cp:
        await cp.boot()
        async with aiohttp.ClientSession() as http:
            url = f"{http_url}/api/stations/CP-CMD/commands"
            async with http.post(f"{url}/Reset", json={"type": "Immediate"}) as resp:
                assert resp.status == 200, await resp.text()
                assert (await resp.json())["response"] == {"status": "Accepted"}
            async with http.post(f"{url}/Reset", json={"type": "Hard"}) as resp:
                assert resp.status == 422  # a 1.6 payload, not valid for 2.0.1's Reset
        assert cp.received == [("Reset", {"type": "Immediate"})]
