"""Bad input, exact frames on the wire, idempotent start/stop, late stops, reconnects."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from ocpp.v16 import call
from websockets.asyncio.client import connect

from csms.events import ChargingListener, ConnectorStatusChanged
from csms.keys import CHARGING
from tests.support.raw import raw_exchange
from tests.support.stations import station

T0 = "2026-11-22T10:00:00Z"


async def test_bad_frames_get_callerrors_and_the_connection_keeps_working(ws_url: str) -> None:
    boot_ok = '[2,"b1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]'
    replies = await raw_exchange(ws_url, "CP-BAD", [
        "this is not json",
        '{"not": "an array"}',
        '[2,"u1","BootNotification"]',
        '[2,"u2","FlyToTheMoon",{}]',
        '[2,"u3","SignCertificate",{"csr":"x"}]',
        '[2,"u4","BootNotification",{"chargePointVendor":"V"}]',
        '[2,"u5","BootNotification",{"chargePointVendor":5,"chargePointModel":"M"}]',
        '[2,"u6","StatusNotification",{"connectorId":1,"errorCode":"Nope","status":"Available"}]',
        '[2,"u7","Heartbeat",{"extra":1}]',
        '[2,"u8","StartTransaction",{"connectorId":1,"idTag":"T","meterStart":0,'
        '"timestamp":"yesterday"}]',
        '[2,"u9","Authorize",{"idTag":"123456789012345678901"}]',
        '[9,"u10","Heartbeat",{}]',
        boot_ok,
        '[2,"h1","Heartbeat",{}]',
    ])
    codes = [(r[0], r[1], r[2] if r[0] == 4 else "ok") for r in replies]
    assert codes == [
        (4, "-1", "FormationViolation"),
        (4, "-1", "FormationViolation"),
        (4, "u1", "FormationViolation"),
        (4, "u2", "NotImplemented"),
        (4, "u3", "NotSupported"),
        (4, "u4", "OccurenceConstraintViolation"),
        (4, "u5", "TypeConstraintViolation"),
        (4, "u6", "PropertyConstraintViolation"),
        (4, "u7", "FormationViolation"),
        (4, "u8", "PropertyConstraintViolation"),
        (4, "u9", "TypeConstraintViolation"),
        (4, "u10", "ProtocolError"),
        (3, "b1", "ok"),
        (3, "h1", "ok"),
    ]
    assert all(len(r) == 5 and isinstance(r[4], dict) for r in replies if r[0] == 4)
    assert replies[-2][2]["status"] == "Accepted"


class ExplodingListener(ChargingListener):
    async def connector_status(self, event: ConnectorStatusChanged) -> None:
        raise RuntimeError("boom")


async def test_handler_exception_is_internal_error_and_logged(server, ws_url: str,
                                                              caplog) -> None:
    server.app[CHARGING].listeners.append(ExplodingListener())
    replies = await raw_exchange(ws_url, "CP-BOOM", [
        '[2,"s1","StatusNotification",{"connectorId":1,"errorCode":"NoError",'
        '"status":"Available"}]',
        '[2,"h1","Heartbeat",{}]',
    ])
    assert replies[0][:3] == [4, "s1", "InternalError"]
    assert replies[1][0] == 3
    assert any("CP-BOOM" in r.getMessage() and r.exc_info for r in caplog.records)


async def test_retried_start_gets_the_same_transaction_id(ws_url: str, http_url: str) -> None:
    async with station(ws_url, "CP-IDEM") as cp:
        await cp.boot()
        first = await cp.call(call.StartTransaction(connector_id=1, id_tag="T1",
                                                    meter_start=10, timestamp=T0))
        again = await cp.call(call.StartTransaction(connector_id=1, id_tag="T1",
                                                    meter_start=10, timestamp=T0))
        other = await cp.call(call.StartTransaction(connector_id=2, id_tag="T1",
                                                    meter_start=10, timestamp=T0))
        assert first.transaction_id == again.transaction_id
        assert other.transaction_id != first.transaction_id

        stop = call.StopTransaction(meter_stop=510, timestamp="2026-11-22T11:00:00Z",
                                    transaction_id=first.transaction_id, reason="EVDisconnected",
                                    id_tag="T1")
        answers = [await cp.call(stop) for _ in range(2)]
        assert answers[0] == answers[1]
        # a repeat with different numbers does not overwrite the first stop
        await cp.call(call.StopTransaction(meter_stop=999, timestamp="2026-11-22T12:00:00Z",
                                           transaction_id=first.transaction_id))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{http_url}/api/transactions/{first.transaction_id}") as resp:
            tx = await resp.json()
        async with http.get(f"{http_url}/api/transactions",
                            params={"stationId": "CP-IDEM"}) as resp:
            listed = await resp.json()
    assert (tx["meterStop"], tx["energyWh"], tx["stopReason"]) == (510, 500, "EVDisconnected")
    assert len(listed) == 2


async def test_stop_for_an_unknown_transaction_is_accepted_and_recorded(
        ws_url: str, http_url: str) -> None:
    async with station(ws_url, "CP-LATE") as cp:
        await cp.boot()
        answer = await cp.call(call.StopTransaction(
            meter_stop=4000, timestamp=T0, transaction_id=987654, id_tag="LOST"))
        assert answer.id_tag_info["status"] == "Accepted"
        # the station retries: still accepted, recorded once
        await cp.call(call.StopTransaction(meter_stop=4000, timestamp=T0,
                                           transaction_id=987654, id_tag="LOST"))
        no_tag = await cp.call(call.StopTransaction(meter_stop=1, timestamp=T0,
                                                    transaction_id=987655))
        assert no_tag.id_tag_info is None
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{http_url}/api/orphan-stops",
                            params={"stationId": "CP-LATE"}) as resp:
            orphans = await resp.json()
    assert sorted(o["transactionId"] for o in orphans) == [987654, 987655]


async def test_reconnect_replaces_the_old_connection(ws_url: str, http_url: str) -> None:
    async with station(ws_url, "CP-RE") as old:
        await old.boot()
        async with station(ws_url, "CP-RE") as new:
            await new.boot()
            await asyncio.wait_for(old._connection.wait_closed(), 5)
            async with aiohttp.ClientSession() as http:
                async with http.post(f"{http_url}/api/stations/CP-RE/commands/Reset",
                                     json={"type": "Soft"}) as resp:
                    assert resp.status == 200
                async with http.get(f"{http_url}/api/stations/CP-RE") as resp:
                    assert (await resp.json())["connected"] is True
            assert ("Reset", {"type": "Soft"}) in new.received
            assert old.received == []
            await new.call(call.Heartbeat())


@pytest.mark.parametrize("offered", [["ocpp2.0"], ["ocpp1.5", "foo"]])
async def test_unsupported_subprotocol_is_refused(ws_url: str, offered: list[str]) -> None:
    async with connect(f"{ws_url}/CP-PROTO", subprotocols=offered) as ws:
        assert ws.subprotocol is None
        await asyncio.wait_for(ws.wait_closed(), 5)
    assert ws.close_code == 1002


async def test_no_subprotocol_header_is_taken_as_ocpp16(ws_url: str) -> None:
    async with station(ws_url, "CP-NOPROTO", subprotocols=[]) as cp:
        assert (await cp.boot()).status == "Accepted"


async def test_metrics_and_health(ws_url: str, http_url: str) -> None:
    async with station(ws_url, "CP-MET") as cp:
        await cp.boot()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{http_url}/metrics") as resp:
                text = await resp.text()
            async with http.get(f"{http_url}/healthz") as resp:
                health = await resp.json()
    assert 'csms_ocpp_messages_total{action="BootNotification",direction="in"} 1.0' in text
    assert "csms_connected_stations 1.0" in text
    assert 'csms_ocpp_handler_seconds_count{action="BootNotification"} 1.0' in text
    assert health["status"] == "ok" and health["connectedStations"] == 1
