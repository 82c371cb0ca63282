"""Hypothesis-generated OCPP 2.0.1 TransactionEvents against the live server: near-valid
events (any order, repeated seqNos, hostile numbers and timestamps, offline replays) each get
a CALLRESULT valid against the official 2.0.1 schema or a 2.0.1 CALLERROR that is never
InternalError, and the connection keeps answering."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect

from csms.ocpp.framing import MessageType
from csms.ocpp.schemas import violation
from tests.fuzz.test_ocpp_frames import FUZZ
from tests.support.ocpp_frames import integers, timestamps

ERROR_CODES_201 = {"FormatViolation", "GenericError", "InternalError", "MessageTypeNotSupported",
                   "NotImplemented", "NotSupported", "OccurrenceConstraintViolation",
                   "PropertyConstraintViolation", "ProtocolError", "RpcFrameworkError",
                   "SecurityError", "TypeConstraintViolation"}
numbers = st.one_of(st.integers(0, 100_000), st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from([1e300, -1e300, 2**63, 10**30, -5, 0.5]))


@st.composite
def transaction_events(draw: st.DrawFn) -> str:
    info: dict[str, Any] = {"transactionId": draw(st.sampled_from(["T-1", "T-2", "", "x" * 36]))}
    if draw(st.booleans()):
        info["remoteStartId"] = draw(integers)
    payload: dict[str, Any] = {
        "eventType": draw(st.sampled_from(["Started", "Updated", "Ended"])),
        "timestamp": draw(timestamps),
        "triggerReason": draw(st.sampled_from(["Authorized", "MeterValuePeriodic",
                                               "RemoteStop", "EVCommunicationLost"])),
        "seqNo": draw(st.one_of(st.integers(0, 5), integers)),
        "transactionInfo": info,
    }
    if draw(st.booleans()):
        payload["evse"] = {"id": draw(st.one_of(st.integers(0, 3), integers))}
    if draw(st.booleans()):
        payload["offline"] = True
    if draw(st.booleans()):
        payload["idToken"] = {"idToken": draw(st.sampled_from(["TAG", "", "T" * 36])),
                              "type": "ISO14443"}
    if draw(st.booleans()):
        payload["meterValue"] = [{"timestamp": draw(timestamps), "sampledValue": [
            {"value": draw(numbers), **draw(st.sampled_from([
                {}, {"unitOfMeasure": {"unit": "kWh"}},
                {"unitOfMeasure": {"unit": "Wh", "multiplier": draw(integers)}},
                {"phase": "L1"}, {"measurand": "Power.Active.Import"}]))}]}]
    return json.dumps([2, "ev", "TransactionEvent", payload])


@pytest.fixture
async def station_ws(ws_url: str) -> AsyncIterator[ClientConnection]:
    async with connect(f"{ws_url}/CP-FUZZ201", subprotocols=["ocpp2.0.1"],
                       max_size=None) as ws:
        yield ws


@FUZZ
@given(frame=transaction_events())
async def test_every_transaction_event_is_answered_and_the_connection_survives(
        station_ws: ClientConnection, frame: str) -> None:
    await station_ws.send(frame)
    await station_ws.send('[2,"hb","Heartbeat",{}]')
    reply = json.loads(await asyncio.wait_for(station_ws.recv(), 5))
    if reply[0] == MessageType.CallError:
        assert reply[2] in ERROR_CODES_201 - {"InternalError"}, (frame[:300], reply)
    else:
        assert violation("2.0.1", MessageType.CallResult, "TransactionEvent", reply[2]) is None
    heartbeat = json.loads(await asyncio.wait_for(station_ws.recv(), 5))
    assert heartbeat[:2] == [3, "hb"]
