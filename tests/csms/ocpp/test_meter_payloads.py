"""The meter actions read their payload as the station sent it (`@camel_payload`): what that
path itself can get wrong, over a real websocket and store. A timestamp that does not parse
refuses the whole frame with PropertyConstraintViolation before anything is stored (also when
it is in a later entry, or in a StopTransaction's transactionData), optional fields are read
under their camelCase names, and the connection keeps answering. tests/fuzz/
test_camel_payloads.py compares the mapping with the snake_case path on generated payloads."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from ocpp.routing import on

from csms.ocpp.version import camel_payload, routes_of
from tests.support.raw import raw_exchange

T0 = "2026-11-22T10:00:00Z"
START = ('[2,"s","StartTransaction",{"connectorId":1,"idTag":"T","meterStart":1000,'
         f'"timestamp":"{T0}"}}]')
BOOT_201 = ('[2,"b","BootNotification",{"reason":"PowerUp",'
            '"chargingStation":{"model":"M","vendorName":"V"}}]')
CUSTOM = {"vendorId": "com.example", "any_key": [1, {"nestedKey": None}]}


def frame(uid: str, action: str, payload: dict[str, Any]) -> str:
    return json.dumps([2, uid, action, payload])


async def api(http_url: str, path: str) -> Any:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{http_url}/api{path}") as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()


async def test_1_6_a_bad_timestamp_anywhere_refuses_the_whole_frame(ws_url: str,
                                                                    http_url: str) -> None:
    [started] = await raw_exchange(ws_url, "CP-MVTS", [START])
    tx = started[2]["transactionId"]

    def meter(uid: str, *timestamps: str) -> str:
        return frame(uid, "MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [
            {"timestamp": at, "sampledValue": [{"value": "1.5", "unit": "kWh",
                                                 "format": "Raw", "location": "Outlet"}]}
            for at in timestamps]})

    def stop(uid: str, at: str) -> str:
        return frame(uid, "StopTransaction", {
            "transactionId": tx, "meterStop": 3000, "timestamp": "2026-11-22T11:00:00Z",
            "idTag": "T", "reason": "Local", "transactionData": [
                {"timestamp": at,
                 "sampledValue": [{"value": "3000", "context": "Transaction.End"}]}]})

    replies = await raw_exchange(ws_url, "CP-MVTS", [
        meter("m1", "2026-11-22T10:10:00Z", "yesterday"),
        meter("m2", "2026-11-22T10:10:00+02:00"),
        stop("x1", "0001-01-01T00:00:00+05:00"),
        '[2,"h","Heartbeat",{}]',
    ])
    assert [r[:3] for r in replies] == [
        [4, "m1", "PropertyConstraintViolation"], [3, "m2", {}],
        [4, "x1", "PropertyConstraintViolation"], [3, "h", replies[3][2]]]
    assert "yesterday" in replies[0][3]
    running = await api(http_url, f"/transactions/{tx}")
    assert running["stoppedAt"] is None  # the refused stop stopped nothing
    assert [(v["timestamp"], v["value"], v["unit"]) for v in running["meterValues"]] == [
        ("2026-11-22T08:10:00.000Z", "1500", "Wh")]  # m2 only, in Wh

    [stopped] = await raw_exchange(ws_url, "CP-MVTS", [
        stop("x2", "2026-11-22T11:00:00")])  # no offset: taken as UTC
    assert stopped[:2] == [3, "x2"] and stopped[2]["idTagInfo"]["status"] == "Accepted"
    done = await api(http_url, f"/transactions/{tx}")
    assert (done["meterStop"], done["stopReason"]) == (3000, "Local")
    assert [(v["timestamp"], v["value"], v["context"]) for v in done["meterValues"]][-1] == (
        "2026-11-22T11:00:00.000Z", "3000", "Transaction.End")


async def test_2_0_1_a_bad_timestamp_in_an_event_stores_nothing_and_the_retry_counts(
        ws_url: str, http_url: str) -> None:
    def event(uid: str, seq_no: int, event_type: str, at: str, wh: float,
              **extra: Any) -> str:
        return frame(uid, "TransactionEvent", {
            "eventType": event_type, "timestamp": T0, "triggerReason": "MeterValuePeriodic",
            "seqNo": seq_no, "customData": CUSTOM,
            "transactionInfo": {"transactionId": "tx-camel", "customData": CUSTOM},
            "evse": {"id": 1, "connectorId": 1}, "meterValue": [{"timestamp": at,
                "sampledValue": [{"value": wh, "customData": CUSTOM, "unitOfMeasure": {
                    "unit": "kWh", "multiplier": 0, "customData": CUSTOM}}]}], **extra})

    replies = await raw_exchange(ws_url, "CP-TECAMEL", [
        BOOT_201,
        event("e0", 0, "Started", T0, 1.0,
              idToken={"idToken": "RFID-9", "type": "ISO14443", "customData": CUSTOM}),
        event("e1", 1, "Updated", "2026-11-22T10:10:00 and then some", 1.5),
        event("e1again", 1, "Updated", "2026-11-22T10:10:00Z", 1.5),
        frame("mv", "MeterValues", {"evseId": 1, "customData": CUSTOM, "meterValue": [
            {"timestamp": "not a time", "sampledValue": [{"value": 1}]}]}),
    ], subprotocol="ocpp2.0.1")
    assert [r[:3] if r[0] == 4 else r[:2] for r in replies] == [
        [3, "b"], [3, "e0"], [4, "e1", "PropertyConstraintViolation"], [3, "e1again"],
        [4, "mv", "PropertyConstraintViolation"]]
    assert replies[1][2]["idTokenInfo"]["status"] == "Accepted"
    tx = await api(http_url, "/transactions/tx-camel?stationId=CP-TECAMEL")
    assert (tx["idTag"], tx["connectorId"], tx["meterStart"], tx["energyWh"]) == (
        "RFID-9", 1, 1000, 500)  # seqNo 1 was not taken by the refused event
    assert [(v["value"], v["unit"]) for v in tx["meterValues"]] == [
        ("1000", "Wh"), ("1500", "Wh")]


class Handlers:
    @on("SnakeAction")
    async def on_snake(self, connector_id: int, meter_value: list[Any]) -> Any:
        return connector_id, meter_value

    @on("CamelBelow")
    @camel_payload
    async def on_camel_below(self, payload: dict[str, Any]) -> Any:
        return payload

    @camel_payload
    @on("CamelAbove")
    async def on_camel_above(self, payload: dict[str, Any]) -> Any:
        return payload


async def test_routes_give_marked_handlers_the_payload_as_sent_and_others_keywords() -> None:
    routes = routes_of(Handlers)
    payload = {"connectorId": 1, "meterValue": [{"sampledValue": []}]}
    assert await routes["SnakeAction"](Handlers(), payload) == (1, [{"sampled_value": []}])
    assert await routes["CamelBelow"](Handlers(), payload) is payload
    assert await routes["CamelAbove"](Handlers(), payload) is payload
