"""Operator commands to OCPP 2.0.1 stations through POST /api/stations/{id}/commands/{Action}:
each one reaches an `ocpp.v201` charge point over a real websocket, and the station's answer
(accepted, rejected, a CALLERROR, or none in time) comes back as the API promises. Payloads
are checked against the official schema of the station's own version."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import make_settings
from tests.support.commanded201 import commanded201
from tests.support.stations import station
from web.settings import Settings

COMPONENT_VARIABLE = {"component": {"name": "OCPPCommCtrlr"},
                      "variable": {"name": "HeartbeatInterval"}}

# action -> (payload, the station's accepting answer, its refusing answer)
COMMANDS: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    "RequestStartTransaction": (
        {"idToken": {"idToken": "04A2B3C4", "type": "ISO14443"}, "remoteStartId": 7,
         "evseId": 1},
        {"status": "Accepted"}, {"status": "Rejected"}),
    "RequestStopTransaction": ({"transactionId": "TX-1"}, {"status": "Accepted"},
                               {"status": "Rejected"}),
    "Reset": ({"type": "OnIdle"}, {"status": "Accepted"}, {"status": "Rejected"}),
    "UnlockConnector": ({"evseId": 1, "connectorId": 1}, {"status": "Unlocked"},
                        {"status": "UnlockFailed"}),
    "ChangeAvailability": ({"operationalStatus": "Inoperative", "evse": {"id": 1}},
                           {"status": "Accepted"}, {"status": "Rejected"}),
    "TriggerMessage": ({"requestedMessage": "StatusNotification",
                        "evse": {"id": 1, "connectorId": 1}},
                       {"status": "Accepted"}, {"status": "Rejected"}),
    "GetVariables": (
        {"getVariableData": [COMPONENT_VARIABLE]},
        {"getVariableResult": [{**COMPONENT_VARIABLE, "attributeStatus": "Accepted",
                                "attributeValue": "300"}]},
        {"getVariableResult": [{**COMPONENT_VARIABLE, "attributeStatus": "Rejected"}]}),
    "SetVariables": (
        {"setVariableData": [{**COMPONENT_VARIABLE, "attributeValue": "120"}]},
        {"setVariableResult": [{**COMPONENT_VARIABLE, "attributeStatus": "Accepted"}]},
        {"setVariableResult": [{**COMPONENT_VARIABLE, "attributeStatus": "Rejected"}]}),
    "GetBaseReport": ({"requestId": 1, "reportBase": "FullInventory"}, {"status": "Accepted"},
                      {"status": "NotSupported"}),
    "ClearCache": ({}, {"status": "Accepted"}, {"status": "Rejected"}),
    "GetTransactionStatus": ({"transactionId": "TX-1"},
                             {"messagesInQueue": False, "ongoingIndicator": True},
                             {"messagesInQueue": False, "ongoingIndicator": True}),
    "DataTransfer": ({"vendorId": "com.example", "messageId": "ping", "data": {"n": 1}},
                     {"status": "Accepted", "data": "pong"}, {"status": "UnknownVendorId"}),
}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, CSMS_OCPP__COMMAND_TIMEOUT="0.5")


async def command(http_url: str, station_id: str, action: str, payload: Any = None,
                  ) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{http_url}/api/stations/{station_id}/commands/{action}",
                             json=payload) as resp:
            return resp.status, await resp.json()


@pytest.mark.parametrize("action", sorted(COMMANDS))
async def test_each_command_is_answered_accepted_and_rejected(ws_url: str, http_url: str,
                                                              action: str) -> None:
    payload, accepted, rejected = COMMANDS[action]
    async with commanded201(ws_url, "CP-C1") as cp:
        status, body = await command(http_url, "CP-C1", action, payload)
        assert (status, body) == (200, {"action": action, "response": accepted})
        cp.behaviour[action] = "reject"
        status, body = await command(http_url, "CP-C1", action, payload)
        assert (status, body) == (200, {"action": action, "response": rejected})
    assert [name for name, _ in cp.received] == [action, action]


async def test_the_station_gets_the_payload_as_sent(ws_url: str, http_url: str) -> None:
    async with commanded201(ws_url, "CP-C2") as cp:
        await command(http_url, "CP-C2", "UnlockConnector", {"evseId": 2, "connectorId": 1})
        await command(http_url, "CP-C2", "SetVariables", COMMANDS["SetVariables"][0])
        status, body = await command(http_url, "CP-C2", "GetVariables",
                                     COMMANDS["GetVariables"][0])
    assert status == 200
    assert body["response"]["getVariableResult"][0]["attributeValue"] == "120"
    assert cp.received[0] == ("UnlockConnector", {"evse_id": 2, "connector_id": 1})


@pytest.mark.parametrize("action", sorted(COMMANDS))
async def test_a_call_error_is_a_502_naming_the_ocpp_code(ws_url: str, http_url: str,
                                                          action: str) -> None:
    async with commanded201(ws_url, "CP-C3") as cp:
        cp.behaviour[action] = "error"
        status, body = await command(http_url, "CP-C3", action, COMMANDS[action][0])
    assert status == 502
    assert body["error"]["code"] == "station_error"
    assert body["error"]["ocppErrorCode"] == "GenericError"
    assert "refuses" in body["error"]["message"]


@pytest.mark.parametrize("action", sorted(COMMANDS))
async def test_no_answer_in_time_is_a_504_and_the_late_answer_changes_nothing(
        ws_url: str, http_url: str, action: str) -> None:
    async with commanded201(ws_url, "CP-C4") as cp:
        cp.behaviour[action] = "silent"
        status, body = await command(http_url, "CP-C4", action, COMMANDS[action][0])
        assert (status, body["error"]["code"]) == (504, "station_timeout")
        cp.behaviour.pop(action)
        cp.release.set()  # the late answer arrives; the next command gets its own
        status, body = await command(http_url, "CP-C4", "ClearCache", {})
        assert (status, body["response"]) == (200, {"status": "Accepted"})


@pytest.mark.parametrize(("action", "payload", "problem"), [
    ("Reset", {"type": "Hard"}, "'Hard' is not one of"),  # 1.6's Reset
    ("Reset", {}, "'type' is a required property"),
    ("UnlockConnector", {"connectorId": 1}, "'evseId' is a required property"),
    ("GetVariables", {"getVariableData": []}, "getVariableData"),
    ("RequestStartTransaction", {"idToken": {"idToken": "X", "type": "RFID"},
                                 "remoteStartId": 1}, "'RFID' is not one of"),
    ("GetTransactionStatus", {"transactionId": "x" * 37}, "is too long"),
    ("DataTransfer", {"vendorId": "v", "extra": 1}, "Additional properties"),
])
async def test_a_payload_invalid_for_2_0_1_is_a_422_naming_the_problem(
        ws_url: str, http_url: str, action: str, payload: dict[str, Any], problem: str) -> None:
    async with commanded201(ws_url, "CP-C5") as cp:
        status, body = await command(http_url, "CP-C5", action, payload)
    assert (status, body["error"]["code"]) == (422, "invalid_payload")
    assert f"OCPP 2.0.1 {action}" in body["error"]["message"]
    assert problem in body["error"]["message"]
    assert cp.received == []  # nothing invalid reaches the station


@pytest.mark.parametrize("action", ["RemoteStartTransaction", "RemoteStopTransaction",
                                    "GetConfiguration", "ChangeConfiguration",
                                    "GetDiagnostics"])
async def test_a_1_6_action_is_a_422_for_a_2_0_1_station(ws_url: str, http_url: str,
                                                         action: str) -> None:
    async with commanded201(ws_url, "CP-C6") as cp:
        status, body = await command(http_url, "CP-C6", action, {})
    assert (status, body["error"]["code"]) == (422, "unsupported_command")
    assert f"{action} is not an OCPP 2.0.1 call" in body["error"]["message"]
    assert cp.received == []


@pytest.mark.parametrize("action", ["RequestStartTransaction", "GetVariables",
                                    "GetBaseReport", "SetVariables"])
async def test_a_2_0_1_action_is_a_422_for_a_1_6_station(ws_url: str, http_url: str,
                                                         action: str) -> None:
    async with station(ws_url, "CP-C7") as cp:
        await cp.boot()
        status, body = await command(http_url, "CP-C7", action, COMMANDS[action][0])
    assert (status, body["error"]["code"]) == (422, "unsupported_command")
    assert f"{action} is not an OCPP 1.6 call" in body["error"]["message"]
    assert cp.received == []


async def test_a_1_6_station_still_gets_its_payload_validated_as_1_6(ws_url: str,
                                                                     http_url: str) -> None:
    async with station(ws_url, "CP-C8") as cp:
        await cp.boot()
        assert (await command(http_url, "CP-C8", "Reset", {"type": "Hard"}))[0] == 200
        status, body = await command(http_url, "CP-C8", "Reset", {"type": "OnIdle"})
    assert (status, body["error"]["code"]) == (422, "invalid_payload")
    assert "OCPP 1.6 Reset" in body["error"]["message"]
    assert cp.received == [("Reset", {"type": "Hard"})]


async def test_unknown_actions_and_absent_stations_are_404(ws_url: str, http_url: str) -> None:
    status, body = await command(http_url, "CP-NONE", "Reset", {"type": "OnIdle"})
    assert (status, body["error"]["code"]) == (404, "station_not_connected")
    async with commanded201(ws_url, "CP-C9"):
        for action in ("BootNotification", "TransactionEvent", "Frobnicate"):
            status, body = await command(http_url, "CP-C9", action, {})
            assert (status, body["error"]["code"]) == (404, "unknown_command"), action
