"""OCPP 2.0.1 TransactionEvent over a real websocket, seen by the station and the operator API.

The station is the `ocpp` library's v201 client: every answer it gets is validated against the
official 2.0.1 schemas by the library, so a schema violation fails the test."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from csms.keys import HUB
from tests.support.stations import station
from tests.support.stations201 import station201


async def api(http_url: str, path: str, status: int = 200) -> Any:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{http_url}/api{path}") as resp:
            assert resp.status == status, await resp.text()
            return await resp.json()


async def transaction(http_url: str, station_id: str, tx_id: str) -> dict[str, Any]:
    return await api(http_url, f"/transactions/{tx_id}?stationId={station_id}")


async def test_a_station_started_transaction_from_start_to_end(ws_url: str,
                                                               http_url: str) -> None:
    async with station201(ws_url, "CP-TX1") as cp:
        await cp.boot()
        started = await cp.event("Started", "tx-a", 0, timestamp="2026-11-22T10:00:00Z",
                                 wh=1000, id_token="RFID-1")
        assert started.id_token_info == {"status": "Accepted"}
        updated = await cp.event("Updated", "tx-a", 1, timestamp="2026-11-22T10:10:00Z",
                                 wh=1600)
        assert updated.id_token_info is None  # no idToken in the request: none in the answer
        running = await transaction(http_url, "CP-TX1", "tx-a")
        assert running["stoppedAt"] is None and running["energyWh"] == 600
        ended = await cp.event("Ended", "tx-a", 2, timestamp="2026-11-22T10:20:00Z",
                               wh=2500, stopped_reason="EVDisconnected",
                               trigger_reason="EVCommunicationLost")
        assert ended.id_token_info is None
    tx = await transaction(http_url, "CP-TX1", "tx-a")
    assert tx | {"meterValues": None} == tx | {
        "transactionId": "tx-a", "ocppVersion": "2.0.1", "stationId": "CP-TX1",
        "connectorId": 1, "idTag": "RFID-1", "meterStart": 1000, "meterStop": 2500,
        "energyWh": 1500, "startedAt": "2026-11-22T10:00:00.000Z",
        "stoppedAt": "2026-11-22T10:20:00.000Z", "stopReason": "EVDisconnected",
        "sessionId": None, "meterValues": None}
    assert [v["value"] for v in tx["meterValues"]] == ["1000", "1600", "2500"]
    # our own id addresses it too, and lists show the station's id
    assert (await api(http_url, f"/transactions/{tx['id']}"))["transactionId"] == "tx-a"
    listed = await api(http_url, "/transactions?stationId=CP-TX1")
    assert [(t["transactionId"], t["ocppVersion"]) for t in listed] == [("tx-a", "2.0.1")]


async def test_offline_events_out_of_order_land_in_one_transaction_by_their_registers(
        ws_url: str, http_url: str) -> None:
    async with station201(ws_url, "CP-OFF") as cp:
        await cp.boot()
        await cp.event("Started", "off-1", 0, timestamp="2026-11-22T10:00:00Z", wh=5000,
                       id_token="RFID-2")
    async with station201(ws_url, "CP-OFF") as cp:  # back after a connection loss
        await cp.boot()
        # the queued events arrive newest reading first; the Ended carries no reading
        await cp.event("Updated", "off-1", 2, timestamp="2026-11-22T10:20:00Z", wh=5900,
                       offline=True)
        await cp.event("Updated", "off-1", 1, timestamp="2026-11-22T10:10:00Z", wh=5400,
                       offline=True)
        await cp.event("Ended", "off-1", 3, timestamp="2026-11-22T10:30:00Z", offline=True,
                       stopped_reason="Local")
    tx = await transaction(http_url, "CP-OFF", "off-1")
    assert (tx["meterStart"], tx["meterStop"], tx["energyWh"]) == (5000, 5900, 900)
    assert tx["stoppedAt"] == "2026-11-22T10:30:00.000Z"
    assert len(await api(http_url, "/transactions?stationId=CP-OFF")) == 1


async def test_a_repeated_event_is_answered_and_changes_nothing(ws_url: str,
                                                                http_url: str) -> None:
    async with station201(ws_url, "CP-DUP") as cp:
        await cp.boot()
        for _ in range(2):
            answer = await cp.event("Started", "dup", 0, timestamp="2026-11-22T10:00:00Z",
                                    wh=100, id_token="RFID-3")
            assert answer.id_token_info == {"status": "Accepted"}
        await cp.event("Ended", "dup", 1, timestamp="2026-11-22T10:05:00Z", wh=400)
        # a retry of the Ended with another reading (a buggy station) moves nothing
        await cp.event("Ended", "dup", 1, timestamp="2026-11-22T10:06:00Z", wh=900)
    tx = await transaction(http_url, "CP-DUP", "dup")
    assert (tx["meterStart"], tx["meterStop"], tx["stoppedAt"]) == (
        100, 400, "2026-11-22T10:05:00.000Z")
    assert [v["value"] for v in tx["meterValues"]] == ["100", "400"]


async def test_updated_and_ended_without_a_started_create_the_transaction(
        ws_url: str, http_url: str) -> None:
    async with station201(ws_url, "CP-NOSTART") as cp:
        await cp.boot()
        await cp.event("Updated", "u-1", 4, timestamp="2026-11-22T10:05:00Z", wh=3000,
                       id_token="RFID-4", trigger_reason="Authorized")
        running = await transaction(http_url, "CP-NOSTART", "u-1")
        assert (running["idTag"], running["meterStart"], running["stoppedAt"]) == (
            "RFID-4", 3000, None)
        await cp.event("Ended", "u-1", 5, timestamp="2026-11-22T10:15:00Z", wh=3400)
        await cp.event("Ended", "e-only", 9, timestamp="2026-11-22T11:00:00Z", wh=7000)
    tx = await transaction(http_url, "CP-NOSTART", "u-1")
    assert (tx["meterStart"], tx["meterStop"], tx["energyWh"]) == (3000, 3400, 400)
    only = await transaction(http_url, "CP-NOSTART", "e-only")
    assert (only["meterStart"], only["meterStop"], only["stoppedAt"]) == (
        7000, 7000, "2026-11-22T11:00:00.000Z")


async def test_after_ended_late_events_are_kept_but_move_nothing(ws_url: str,
                                                                  http_url: str) -> None:
    async with station201(ws_url, "CP-FROZEN") as cp:
        await cp.boot()
        await cp.event("Started", "f-1", 0, timestamp="2026-11-22T10:00:00Z", wh=0,
                       id_token="RFID-5")
        await cp.event("Ended", "f-1", 2, timestamp="2026-11-22T10:30:00Z", wh=2000)
        # an Updated that was queued offline, and a late one after the end
        await cp.event("Updated", "f-1", 1, timestamp="2026-11-22T09:59:00Z", wh=0,
                       offline=True)
        await cp.event("Updated", "f-1", 3, timestamp="2026-11-22T10:40:00Z", wh=9000)
    tx = await transaction(http_url, "CP-FROZEN", "f-1")
    assert (tx["meterStart"], tx["meterStop"], tx["energyWh"], tx["startedAt"],
            tx["stoppedAt"]) == (0, 2000, 2000, "2026-11-22T10:00:00.000Z",
                                 "2026-11-22T10:30:00.000Z")
    assert sorted(int(v["value"]) for v in tx["meterValues"]) == [0, 0, 2000, 9000]


async def test_an_ended_that_arrives_after_a_reconnect_stops_the_transaction(
        ws_url: str, http_url: str) -> None:
    async with station201(ws_url, "CP-RECON") as cp:
        await cp.boot()
        await cp.event("Started", "r-1", 0, timestamp="2026-11-22T10:00:00Z", wh=200,
                       id_token="RFID-6")
    assert (await transaction(http_url, "CP-RECON", "r-1"))["stoppedAt"] is None
    async with station201(ws_url, "CP-RECON") as cp:
        await cp.boot()
        await cp.event("Ended", "r-1", 1, timestamp="2026-11-22T10:45:00Z", wh=1200,
                       offline=True, stopped_reason="PowerLoss")
    tx = await transaction(http_url, "CP-RECON", "r-1")
    assert (tx["energyWh"], tx["stopReason"]) == (1000, "PowerLoss")


async def test_the_same_transaction_id_on_two_stations_is_two_transactions(
        ws_url: str, http_url: str) -> None:
    for station_id, wh in (("CP-SAME-A", 10), ("CP-SAME-B", 20)):
        async with station201(ws_url, station_id) as cp:
            await cp.boot()
            await cp.event("Started", "1", 0, timestamp="2026-11-22T10:00:00Z", wh=wh)
    a = await transaction(http_url, "CP-SAME-A", "1")
    b = await transaction(http_url, "CP-SAME-B", "1")
    assert (a["meterStart"], b["meterStart"]) == (10, 20) and a["id"] != b["id"]
    await api(http_url, "/transactions/1?stationId=CP-NOBODY", status=404)


async def test_remote_start_links_the_transaction_by_its_remote_start_id(
        server: TestServer, ws_url: str, http_url: str) -> None:
    async with station201(ws_url, "CP-RSID") as cp:
        await cp.boot()
        hub = server.app[HUB]
        assert await hub.remote_start("CP-RSID", 2, "APP-TAG")
        [request] = cp.requests("RequestStartTransaction")
        assert request["evse_id"] == 2 and request["id_token"] == {
            "id_token": "APP-TAG", "type": "Central"}
        assert request["remote_start_id"] >= 1
        # the station's Started names the remoteStartId but no idToken
        answer = await cp.event("Started", "rs-1", 0, timestamp="2026-11-22T10:00:00Z",
                                wh=0, evse_id=2, trigger_reason="RemoteStart",
                                remote_start_id=request["remote_start_id"])
        assert answer.id_token_info is None
        tx = await transaction(http_url, "CP-RSID", "rs-1")
        assert (tx["idTag"], tx["connectorId"]) == ("APP-TAG", 2)
        assert await hub.remote_stop("CP-RSID", tx["id"])
        assert cp.requests("RequestStopTransaction") == [{"transaction_id": "rs-1"}]


async def test_an_ended_whose_seq_no_was_used_before_still_ends_the_transaction(
        ws_url: str, http_url: str) -> None:
    """A station whose seqNo counter started again (a reboot mid-transaction) sends its Ended
    with a seqNo an Updated had: no Ended was received, so it cannot be a repeat of one."""
    async with station201(ws_url, "CP-SEQRESET") as cp:
        await cp.boot()
        await cp.event("Started", "sr-1", 0, timestamp="2026-11-22T10:00:00Z", wh=100,
                       id_token="RFID-7")
        await cp.event("Updated", "sr-1", 1, timestamp="2026-11-22T10:10:00Z", wh=600)
        await cp.event("Updated", "sr-1", 2, timestamp="2026-11-22T10:20:00Z", wh=1100)
    async with station201(ws_url, "CP-SEQRESET") as cp:  # rebooted: counting from 0 again
        await cp.boot()
        await cp.event("Ended", "sr-1", 1, timestamp="2026-11-22T10:30:00Z", wh=1500,
                       stopped_reason="Local")
        tx = await transaction(http_url, "CP-SEQRESET", "sr-1")
        assert (tx["meterStop"], tx["energyWh"], tx["stoppedAt"]) == (
            1500, 1400, "2026-11-22T10:30:00.000Z")
        # and that Ended, repeated, is a repeat: nothing moves
        await cp.event("Ended", "sr-1", 1, timestamp="2026-11-22T10:31:00Z", wh=1900)
    assert (await transaction(http_url, "CP-SEQRESET", "sr-1"))["meterStop"] == 1500


async def test_a_request_start_sent_by_any_route_links_its_transaction(
        ws_url: str, http_url: str) -> None:
    """An operator's RequestStartTransaction (and one another cluster node built and routed
    here, which arrives the same way) links the transaction that names its remoteStartId to
    its idToken, as the hub's own remote start does."""
    async with station201(ws_url, "CP-OPSTART") as cp:
        await cp.boot()
        async with aiohttp.ClientSession() as http:
            async with http.post(
                    f"{http_url}/api/stations/CP-OPSTART/commands/RequestStartTransaction",
                    json={"idToken": {"idToken": "OP-TOKEN", "type": "Central"},
                          "remoteStartId": 424242, "evseId": 1}) as resp:
                assert resp.status == 200, await resp.text()
        answer = await cp.event("Started", "op-1", 0, timestamp="2026-11-22T10:00:00Z",
                                wh=0, trigger_reason="RemoteStart", remote_start_id=424242)
        assert answer.id_token_info is None
    assert (await transaction(http_url, "CP-OPSTART", "op-1"))["idTag"] == "OP-TOKEN"


async def test_a_2_0_1_transaction_has_exactly_the_fields_of_a_1_6_one(ws_url: str,
                                                                        http_url: str) -> None:
    """An operator's client reads both versions with one model: same keys, same types, the
    version in `ocppVersion`; only `transactionId` differs (the 2.0.1 station's string)."""
    async with station(ws_url, "CP-16") as cp16, station201(ws_url, "CP-201") as cp201:
        await cp16.boot()
        started = await cp16.call(call16.StartTransaction(
            connector_id=1, id_tag="RFID-1", meter_start=100, timestamp="2026-11-22T10:00:00Z"))
        await cp16.call(call16.MeterValues(
            connector_id=1, transaction_id=started.transaction_id, meter_value=[
                {"timestamp": "2026-11-22T10:05:00Z", "sampledValue": [{"value": "400"}]}]))
        await cp201.boot()
        await cp201.event("Started", "tx-b", 0, timestamp="2026-11-22T10:00:00Z", wh=100,
                          id_token="RFID-1")
    old = await api(http_url, f"/transactions/{started.transaction_id}")
    new = await transaction(http_url, "CP-201", "tx-b")
    assert old.keys() == new.keys()
    assert (old["ocppVersion"], new["ocppVersion"]) == ("1.6", "2.0.1")
    assert (old["transactionId"], new["transactionId"]) == (old["id"], "tx-b")
    for key in old.keys() - {"transactionId", "meterValues"}:
        assert type(old[key]) is type(new[key]) or None in (old[key], new[key]), key
    assert old["meterValues"][0].keys() == new["meterValues"][0].keys()
    listed = await api(http_url, "/transactions?active=true")
    assert sorted(t["ocppVersion"] for t in listed) == ["1.6", "2.0.1"]
    assert {frozenset(t) for t in listed} == {frozenset(old.keys() - {"meterValues"})}


async def test_a_no_authorization_token_gets_id_token_info_and_no_id_tag(
        ws_url: str, http_url: str) -> None:
    """OCPP 2.0.1 E01/E02: idTokenInfo is required in the answer whenever the request holds an
    idToken, the empty one of type NoAuthorization (a free-vend station) included. It is no
    driver's token: the transaction is recorded without an idTag, so nobody is billed."""
    async with station201(ws_url, "CP-NOAUTH") as cp:
        await cp.boot()
        free = {"id_token": "", "type": "NoAuthorization"}
        started = await cp.call(call201.TransactionEvent(
            event_type="Started", timestamp="2026-11-22T10:00:00Z", trigger_reason="CablePluggedIn",
            seq_no=0, transaction_info={"transaction_id": "na-1"},
            evse={"id": 1, "connector_id": 1}, id_token=free))
        assert started.id_token_info == {"status": "Accepted"}
        authorized = await cp.call(call201.Authorize(id_token=free))
        assert authorized.id_token_info == {"status": "Accepted"}
        ended = await cp.call(call201.TransactionEvent(
            event_type="Ended", timestamp="2026-11-22T10:30:00Z", trigger_reason="EVDeparted",
            seq_no=1, transaction_info={"transaction_id": "na-1"}, id_token=free))
        assert ended.id_token_info == {"status": "Accepted"}
    tx = await transaction(http_url, "CP-NOAUTH", "na-1")
    assert (tx["idTag"], tx["sessionId"], tx["stoppedAt"]) == (
        "", None, "2026-11-22T10:30:00.000Z")


async def test_a_transaction_id_reused_after_a_reboot_is_a_new_transaction(
        ws_url: str, http_url: str) -> None:
    """A station that counts its transaction ids from 1 again after a reboot (the spec forbids
    it; stations do it): the new Started is stamped after the old transaction ended, so it
    starts a new transaction under the same transactionId; a true late repeat of the old
    Started changes nothing, and the old transaction keeps its totals."""
    async with station201(ws_url, "CP-REUSE") as cp:
        await cp.boot()
        await cp.event("Started", "1", 0, timestamp="2026-11-22T10:00:00Z", wh=100,
                       id_token="RFID-OLD")
        await cp.event("Ended", "1", 1, timestamp="2026-11-22T10:30:00Z", wh=1100)
    old = await transaction(http_url, "CP-REUSE", "1")
    async with station201(ws_url, "CP-REUSE") as cp:  # rebooted: ids and seqNos from scratch
        await cp.boot()
        repeat = await cp.event("Started", "1", 0, timestamp="2026-11-22T10:00:00Z", wh=100,
                                id_token="RFID-OLD", offline=True)
        assert repeat.id_token_info == {"status": "Accepted"}
        assert (await transaction(http_url, "CP-REUSE", "1"))["id"] == old["id"]
        started = await cp.event("Started", "1", 0, timestamp="2026-11-22T12:00:00Z",
                                 wh=5000, id_token="RFID-NEW")
        assert started.id_token_info == {"status": "Accepted"}
        await cp.event("Updated", "1", 1, timestamp="2026-11-22T12:10:00Z", wh=5600)
        new = await transaction(http_url, "CP-REUSE", "1")
        assert new["id"] != old["id"] and new["stoppedAt"] is None
        assert (new["idTag"], new["meterStart"], new["energyWh"]) == ("RFID-NEW", 5000, 600)
        await cp.event("Ended", "1", 2, timestamp="2026-11-22T12:20:00Z", wh=6000)
    assert (await api(http_url, f"/transactions/{new['id']}"))["energyWh"] == 1000
    kept = await api(http_url, f"/transactions/{old['id']}")
    assert (kept["idTag"], kept["energyWh"], kept["stoppedAt"]) == (
        "RFID-OLD", 1000, "2026-11-22T10:30:00.000Z")
    listed = await api(http_url, "/transactions?stationId=CP-REUSE")
    assert [(t["transactionId"], t["id"]) for t in listed] == [("1", new["id"]),
                                                               ("1", old["id"])]
