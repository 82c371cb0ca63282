"""Operator API: commands round trip to a station, errors, Bearer token."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from ocpp.routing import on
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from tests.conftest import make_settings
from tests.support.stations import FakeStation, station


async def post(url: str, json: Any = None, headers: dict | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=json, headers=headers) as resp:
            return resp.status, await resp.json()


async def test_commands_round_trip(ws_url: str, http_url: str) -> None:
    base = f"{http_url}/api/stations/CP-CMD/commands"
    async with station(ws_url, "CP-CMD") as cp:
        await cp.boot()
        cases = [
            ("Reset", {"type": "Hard"}, {"status": "Accepted"}),
            ("UnlockConnector", {"connectorId": 1}, {"status": "Unlocked"}),
            ("ChangeAvailability", {"connectorId": 0, "type": "Inoperative"},
             {"status": "Accepted"}),
            ("GetConfiguration", {"key": ["HeartbeatInterval"]},
             {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False,
                                    "value": "300"}]}),
            ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "60"},
             {"status": "Accepted"}),
            ("TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 1},
             {"status": "Accepted"}),
            ("ClearCache", {}, {"status": "Accepted"}),
            ("DataTransfer", {"vendorId": "com.example", "messageId": "ping"},
             {"status": "Accepted", "data": "pong"}),
            ("RemoteStartTransaction", {"idTag": "APP-1", "connectorId": 1},
             {"status": "Accepted"}),
            ("RemoteStopTransaction", {"transactionId": 42}, {"status": "Accepted"}),
        ]
        for action, payload, expected in cases:
            status, body = await post(f"{base}/{action}", payload)
            assert status == 200, (action, body)
            assert body == {"action": action, "response": expected}
        assert [name for name, _ in cp.received] == [c[0] for c in cases]
        assert ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "60"}) \
            in cp.received

        status, body = await post(f"{base}/Reset", {"type": "Sideways"})
        assert status == 422 and body["success"] is False
        assert body["error"]["code"] == "invalid_payload"
        status, body = await post(f"{base}/BootNotification", {})
        assert status == 404
        status, body = await post(f"{base}/Reset", [1, 2])
        assert status == 422

    # a command the station does not implement: its CALLERROR comes back as 502
    async with station(ws_url, "CP-CMD2") as cp2:
        await cp2.boot()
        status, body = await post(f"{http_url}/api/stations/CP-CMD2/commands/UpdateFirmware",
                                  {"location": "https://example.com/fw.bin",
                                   "retrieveDate": "2026-11-22T10:00:00Z"})
        assert status == 502
        assert body["error"]["code"] == "station_error"
        assert body["error"]["ocppErrorCode"] == "NotImplemented"
        assert (await cp2.call(call.Heartbeat())).current_time  # still usable

    status, body = await post(f"{http_url}/api/stations/NOT-HERE/commands/Reset",
                              {"type": "Soft"})
    assert status == 404
    assert body["error"]["code"] == "station_not_connected"


class SilentStation(FakeStation):
    @on(Action.reset)
    async def on_reset(self, type: str) -> call_result.Reset:
        await asyncio.sleep(30)
        return call_result.Reset(status="Accepted")


async def test_command_timeout_is_504(tmp_path, start_server) -> None:
    server = await start_server(make_settings(tmp_path, CSMS_OCPP__COMMAND_TIMEOUT="0.5"))
    ws_url = f"ws://{server.host}:{server.port}/ocpp"
    http_url = f"http://{server.host}:{server.port}"
    async with station(ws_url, "CP-SLOW", cls=SilentStation) as cp:
        await cp.boot()
        status, body = await post(f"{http_url}/api/stations/CP-SLOW/commands/Reset",
                                  {"type": "Soft"})
        assert status == 504
        assert body["error"]["code"] == "station_timeout"


async def test_operator_token_required_when_configured(tmp_path, start_server) -> None:
    server = await start_server(make_settings(tmp_path, CSMS_API__OPERATOR_TOKEN="op-secret"))
    http_url = f"http://{server.host}:{server.port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{http_url}/api/stations") as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "unauthorized"
        async with http.get(f"{http_url}/api/stations",
                            headers={"Authorization": "Bearer wrong"}) as resp:
            assert resp.status == 401
        async with http.get(f"{http_url}/api/stations",
                            headers={"Authorization": "Bearer op-secret"}) as resp:
            assert resp.status == 200
        async with http.get(f"{http_url}/healthz") as resp:
            assert resp.status == 200


async def test_bad_bodies_and_unknown_resources(http_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{http_url}/api/stations", data="{nope",
                             headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["code"] == "malformed_json"
        async with http.post(f"{http_url}/api/stations", json={"id": "x/y"}) as resp:
            assert resp.status == 422
            assert (await resp.json())["error"]["field"] == "id"
        async with http.get(f"{http_url}/api/transactions/abc") as resp:
            assert resp.status == 404
        async with http.get(f"{http_url}/api/transactions/999") as resp:
            assert resp.status == 404
        async with http.get(f"{http_url}/api/transactions?active=maybe") as resp:
            assert resp.status == 422
        async with http.get(f"{http_url}/api/stations/nobody") as resp:
            assert resp.status == 404
            assert (await resp.json())["success"] is False
