"""2.0.1 CALLERRORs, seen from the wire: codes spelled as OCPP-J 2.0.1 spells them."""

from __future__ import annotations

from tests.support.raw import raw_exchange

BOOT = ('[2,"ok","BootNotification",{"reason":"PowerUp",'
        '"chargingStation":{"model":"M","vendorName":"V"}}]')


async def test_bad_payloads_get_2_0_1_codes_and_the_connection_stays_usable(
        ws_url: str) -> None:
    replies = await raw_exchange(ws_url, "CP-ERR201", [
        '[2,"a","BootNotification",{"reason":"PowerUp"}]',
        '[2,"b","Heartbeat",{"extra":1}]',
        '[2,"c","StatusNotification",{"timestamp":"2026-11-22T10:00:00Z",'
        '"connectorStatus":"Charging","evseId":1,"connectorId":1}]',
        '[2,"d","MeterValues",{"evseId":"one","meterValue":[]}]',
        '[2,"e","FooBar",{}]',
        '[2,"f","NotifyEVChargingNeeds",{}]',
        '[2,"g","StartTransaction",{}]',
        '[2,"h","TransactionEvent",{}]',
        BOOT,
    ], subprotocol="ocpp2.0.1")
    codes = {reply[1]: reply[2] for reply in replies if reply[0] == 4}
    assert codes == {
        "a": "OccurrenceConstraintViolation",
        "b": "FormatViolation",
        "c": "PropertyConstraintViolation",
        "d": "TypeConstraintViolation",
        "e": "NotImplemented",
        "f": "NotSupported",  # a 2.0.1 action this CSMS does not handle yet
        "g": "NotImplemented",  # 1.6's action is not a 2.0.1 one
        "h": "OccurrenceConstraintViolation",
    }
    assert replies[-1][0] == 3 and replies[-1][2]["status"] == "Accepted"


async def test_the_same_frame_is_spelled_in_1_6_for_a_1_6_station(ws_url: str) -> None:
    replies = await raw_exchange(ws_url, "CP-ERR16", [
        '[2,"a","BootNotification",{"chargePointModel":"M"}]'])
    assert replies[0][2] == "OccurenceConstraintViolation"


async def test_broken_frames_get_the_2_0_1_framing_codes(ws_url: str) -> None:
    replies = await raw_exchange(ws_url, "CP-RPC201", [
        '[2,"a","Heartbeat"',
        '[2,"b","Heartbeat"]',
        '[9,"c",{}]',
        '[2,"d","Heartbeat",[]]',
        BOOT,
    ], subprotocol="ocpp2.0.1")
    assert [reply[2] for reply in replies[:4]] == [
        "RpcFrameworkError", "RpcFrameworkError", "MessageTypeNotSupported", "FormatViolation"]
    assert [reply[1] for reply in replies[:4]] == ["a", "b", "c", "d"]
    assert replies[-1][0] == 3
