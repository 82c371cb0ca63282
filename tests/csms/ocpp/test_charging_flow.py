"""A station's whole life over a real websocket, checked through the operator API."""

from __future__ import annotations

import aiohttp
from ocpp.v16 import call

from tests.support.stations import station

T0 = "2026-11-22T10:00:00Z"


def sample(value: str, measurand: str | None = None, unit: str | None = None,
           timestamp: str = "2026-11-22T10:05:00Z", **extra: str) -> dict:
    sampled = {"value": value, **extra}
    if measurand:
        sampled["measurand"] = measurand
    if unit:
        sampled["unit"] = unit
    return {"timestamp": timestamp, "sampledValue": [sampled]}


async def test_boot_status_authorize_charge_and_stop(ws_url: str, http_url: str) -> None:
    async with station(ws_url, "CP-1") as cp:
        boot = await cp.boot()
        assert boot.status == "Accepted"
        assert boot.interval == 300
        assert boot.current_time.endswith("Z")

        heartbeat = await cp.call(call.Heartbeat())
        assert heartbeat.current_time.endswith("Z")

        await cp.status(0, "Available")
        await cp.status(1, "Preparing")
        auth = await cp.call(call.Authorize(id_tag="TAG-1"))
        assert auth.id_tag_info["status"] == "Accepted"

        start = await cp.call(call.StartTransaction(
            connector_id=1, id_tag="TAG-1", meter_start=1000, timestamp=T0))
        tx_id = start.transaction_id
        assert tx_id > 0
        assert start.id_tag_info["status"] == "Accepted"
        await cp.status(1, "Charging")

        await cp.call(call.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=[
            sample("1500", "Energy.Active.Import.Register", "Wh", context="Sample.Periodic"),
            sample("7.2", "Power.Active.Import", "kW", timestamp="2026-11-22T10:05:01Z"),
        ]))
        # kWh readings are stored in Wh
        await cp.call(call.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=[
            sample("2.1", unit="kWh", timestamp="2026-11-22T10:10:00Z"),
        ]))

        async with aiohttp.ClientSession() as http:
            async with http.get(f"{http_url}/api/transactions/{tx_id}") as resp:
                running = await resp.json()
        assert running["energyWh"] == 1100
        assert running["stoppedAt"] is None

        stop = await cp.call(call.StopTransaction(
            meter_stop=2345, timestamp="2026-11-22T10:20:00Z", transaction_id=tx_id,
            reason="Local", id_tag="TAG-1", transaction_data=[
                sample("2345", "Energy.Active.Import.Register", "Wh",
                       timestamp="2026-11-22T10:20:00Z", context="Transaction.End")]))
        assert stop.id_tag_info["status"] == "Accepted"
        await cp.status(1, "Available")
        await cp.call(call.DataTransfer(vendor_id="com.example", message_id="hello"))
        await cp.call(call.DiagnosticsStatusNotification(status="Uploaded"))
        await cp.call(call.FirmwareStatusNotification(status="Installed"))

        async with aiohttp.ClientSession() as http:
            async with http.get(f"{http_url}/api/stations/CP-1") as resp:
                assert resp.status == 200
                info = await resp.json()
            async with http.get(f"{http_url}/api/transactions/{tx_id}") as resp:
                tx = await resp.json()
            async with http.get(f"{http_url}/api/transactions",
                                params={"stationId": "CP-1", "active": "false"}) as resp:
                listed = await resp.json()
            async with http.get(f"{http_url}/api/stations/CP-1/messages") as resp:
                frames = await resp.json()

    assert info["connected"] is True
    assert (info["vendor"], info["model"], info["firmwareVersion"]) == \
        ("TestVendor", "TestModel", "1.2.3")
    assert info["firmwareStatus"] == "Installed"
    assert info["diagnosticsStatus"] == "Uploaded"
    assert info["lastSeen"] is not None
    assert [(c["connectorId"], c["status"]) for c in info["connectors"]] == \
        [(0, "Available"), (1, "Available")]

    assert tx["meterStart"] == 1000 and tx["meterStop"] == 2345
    assert tx["energyWh"] == 1345
    assert tx["stopReason"] == "Local"
    assert tx["startedAt"] == "2026-11-22T10:00:00.000Z"
    by_measurand = {(v["measurand"], v["value"], v["unit"]) for v in tx["meterValues"]}
    assert ("Energy.Active.Import.Register", "1500", "Wh") in by_measurand
    assert ("Power.Active.Import", "7.2", "kW") in by_measurand
    assert ("Energy.Active.Import.Register", "2100", "Wh") in by_measurand
    assert ("Energy.Active.Import.Register", "2345", "Wh") in by_measurand
    assert [t["transactionId"] for t in listed] == [tx_id]
    assert any('"BootNotification"' in f["frame"] and f["direction"] == "in" for f in frames)
    assert any(f["direction"] == "out" for f in frames)


async def test_station_disconnect_is_visible(ws_url: str, http_url: str) -> None:
    async with station(ws_url, "CP-2") as cp:
        await cp.boot()
    async with aiohttp.ClientSession() as http:
        for _ in range(50):
            async with http.get(f"{http_url}/api/stations/CP-2") as resp:
                info = await resp.json()
            if not info["connected"]:
                break
            import asyncio
            await asyncio.sleep(0.05)
    assert info["connected"] is False


async def test_unknown_and_blocked_id_tags(ws_url: str, http_url: str, tmp_path,
                                           start_server) -> None:
    from tests.conftest import make_settings

    strict = await start_server(make_settings(tmp_path / "strict",
                                              CSMS_OCPP__ACCEPT_UNKNOWN_ID_TAGS="false"))
    url = f"http://{strict.host}:{strict.port}"
    async with aiohttp.ClientSession() as http:
        async with http.put(f"{url}/api/id-tags/GOOD", json={"status": "Accepted",
                                                             "parentIdTag": "FLEET"}) as resp:
            assert resp.status == 200
        async with http.put(f"{url}/api/id-tags/BAD", json={"status": "Blocked"}) as resp:
            assert resp.status == 200
        async with http.put(f"{url}/api/id-tags/OLD", json={
                "status": "Accepted", "expiryDate": "2020-01-01T00:00:00Z"}) as resp:
            assert resp.status == 200
    async with station(f"ws://{strict.host}:{strict.port}/ocpp", "CP-3") as cp:
        await cp.boot()
        good = await cp.call(call.Authorize(id_tag="GOOD"))
        assert good.id_tag_info == {"status": "Accepted", "parent_id_tag": "FLEET"}
        assert (await cp.call(call.Authorize(id_tag="BAD"))).id_tag_info["status"] == "Blocked"
        assert (await cp.call(call.Authorize(id_tag="OLD"))).id_tag_info["status"] == "Expired"
        unknown = await cp.call(call.Authorize(id_tag="NOBODY"))
        assert unknown.id_tag_info["status"] == "Invalid"
        # the transaction is still recorded; the station decides whether to go on
        start = await cp.call(call.StartTransaction(
            connector_id=1, id_tag="NOBODY", meter_start=0, timestamp=T0))
        assert start.id_tag_info["status"] == "Invalid"
        assert start.transaction_id > 0
