"""Hostile and broken TransactionEvents: a CALLERROR naming the fault, never an InternalError,
and the connection stays usable."""

from __future__ import annotations

import json

from tests.support.raw import raw_exchange

BOOT = ('[2,"ok","BootNotification",{"reason":"PowerUp",'
        '"chargingStation":{"model":"M","vendorName":"V"}}]')


def event(uid: str, **overrides: object) -> str:
    payload: dict[str, object] = {
        "eventType": "Started", "timestamp": "2026-11-22T10:00:00Z",
        "triggerReason": "Authorized", "seqNo": 0,
        "transactionInfo": {"transactionId": "T-1"}, "evse": {"id": 1}}
    payload.update(overrides)
    return json.dumps([2, uid, "TransactionEvent", payload])


async def test_broken_transaction_events_get_clear_errors(ws_url: str) -> None:
    replies = await raw_exchange(ws_url, "CP-TXBAD", [
        BOOT,
        event("evse0", evse={"id": 0}),
        event("time", timestamp="yesterday"),
        event("seq", seqNo=10**30),
        event("longid", transactionInfo={"transactionId": "x" * 37}),
        event("huge", meterValue=[{"timestamp": "2026-11-22T10:00:00Z",
                                   "sampledValue": [{"value": 1e300}]}]),
        event("ok"),
    ], subprotocol="ocpp2.0.1")
    codes = {reply[1]: reply[2] for reply in replies if reply[0] == 4}
    assert codes == {
        "evse0": "PropertyConstraintViolation",  # EVSE 0 is the station, not a place to charge
        "time": "PropertyConstraintViolation",
        "seq": "TypeConstraintViolation",
        "longid": "TypeConstraintViolation",  # the schema's maxLength 36
    }
    assert [reply[1] for reply in replies if reply[0] == 3] == ["ok", "huge", "ok"]
