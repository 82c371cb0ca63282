"""The hot handlers answer with the CALLRESULT payload itself (`WireAnswer`, round six of issue
15) instead of the library's call_result dataclass: each answer is exactly what the dataclass
with the same values gives through `payload_of`, and valid for the action's response schema."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from ocpp.v16 import call_result as result16
from ocpp.v201 import call_result as result201
from ocpp.v201 import datatypes as datatypes201

from csms.events import Authorization
from csms.ocpp import v16, v201
from csms.ocpp.framing import MessageType, payload_of
from csms.ocpp.schemas import violation
from csms.ocpp.version import OcppVersion, StationContext
from csms.settings import OcppSettings

NOW = "2026-11-22T10:00:00Z"


class Service:
    """The charging service as the hot handlers see it; `auth` is TransactionEvent's answer."""

    def __init__(self, auth: Authorization | None = None) -> None:
        self.auth = auth

    async def boot(self, *args: Any, **kwargs: Any) -> None: ...

    async def heartbeat(self, *args: Any) -> None: ...

    async def connector_status(self, *args: Any, **kwargs: Any) -> None: ...

    async def meter_values(self, *args: Any, **kwargs: Any) -> None: ...

    async def transaction_event(self, *args: Any) -> Authorization | None:
        return self.auth


def answer(version: OcppVersion, action: str, payload: dict[str, Any],
           service: Service | None = None) -> Any:
    handlers = version.handlers(StationContext("CP"), service or Service(),  # type: ignore[arg-type]
                                OcppSettings(heartbeat_interval=300))
    assert violation(version.name, MessageType.Call, action, payload) is None
    return asyncio.run(version.routes[action](handlers, payload))


SAMPLE_16 = {"timestamp": NOW, "sampledValue": [{"value": "1500"}]}
SAMPLE_201 = {"timestamp": NOW, "sampledValue": [{"value": 1500}]}
ENDED = {"eventType": "Ended", "timestamp": NOW, "triggerReason": "StopAuthorized", "seqNo": 3,
         "transactionInfo": {"transactionId": "CP-tx"},
         "idToken": {"idToken": "T", "type": "ISO14443"}}
UPDATED = {"eventType": "Updated", "timestamp": NOW, "triggerReason": "MeterValuePeriodic",
           "seqNo": 2, "transactionInfo": {"transactionId": "CP-tx"}, "meterValue": [SAMPLE_201]}
CASES = [
    (v16.VERSION, "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"},
     lambda a: result16.BootNotification(current_time=a["currentTime"], interval=300,
                                         status="Accepted")),
    (v16.VERSION, "Heartbeat", {},
     lambda a: result16.Heartbeat(current_time=a["currentTime"])),
    (v16.VERSION, "StatusNotification",
     {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
     lambda a: result16.StatusNotification()),
    (v16.VERSION, "MeterValues", {"connectorId": 1, "transactionId": 7, "meterValue": [SAMPLE_16]},
     lambda a: result16.MeterValues()),
    (v201.VERSION, "BootNotification",
     {"chargingStation": {"vendorName": "V", "model": "M"}, "reason": "PowerUp"},
     lambda a: result201.BootNotification(current_time=a["currentTime"], interval=300,
                                          status="Accepted")),
    (v201.VERSION, "Heartbeat", {},
     lambda a: result201.Heartbeat(current_time=a["currentTime"])),
    (v201.VERSION, "StatusNotification",
     {"timestamp": NOW, "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
     lambda a: result201.StatusNotification()),
    (v201.VERSION, "MeterValues", {"evseId": 1, "meterValue": [SAMPLE_201]},
     lambda a: result201.MeterValues()),
    (v201.VERSION, "TransactionEvent", UPDATED, lambda a: result201.TransactionEvent()),
]


@pytest.mark.parametrize(("version", "action", "payload", "library"), CASES,
                         ids=[f"{c[0].name}-{c[1]}" for c in CASES])
def test_a_hot_answer_is_the_librarys_dataclass_on_the_wire(
        version: OcppVersion, action: str, payload: dict[str, Any], library: Any) -> None:
    wire = answer(version, action, payload)
    assert type(wire) is dict  # the session sends it as it is
    assert wire == payload_of(library(wire))
    assert violation(version.name, MessageType.CallResult, action, wire) is None
    if "currentTime" in wire:
        assert wire["currentTime"].endswith("Z")


@pytest.mark.parametrize("auth", [
    Authorization("Accepted"),
    Authorization("Blocked", parent_id_tag="GROUP",
                  expiry_date=datetime(2027, 1, 1, tzinfo=UTC)),
], ids=["accepted", "blocked-with-group-and-expiry"])
def test_a_transaction_events_authorization_is_the_librarys_id_token_info(
        auth: Authorization) -> None:
    wire = answer(v201.VERSION, "TransactionEvent", ENDED, Service(auth))
    group = datatypes201.IdTokenType(id_token=auth.parent_id_tag, type="Central") \
        if auth.parent_id_tag else None
    library = result201.TransactionEvent(id_token_info=datatypes201.IdTokenInfoType(
        status=auth.status, group_id_token=group,
        cache_expiry_date_time="2027-01-01T00:00:00.000Z" if auth.expiry_date else None))
    assert wire == payload_of(library)
    assert violation("2.0.1", MessageType.CallResult, "TransactionEvent", wire) is None
