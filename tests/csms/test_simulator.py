"""The simulator against the floor server (the `ocpp` library's example central system)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ocpp.routing import after, on
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action, AuthorizationStatus

from csms import simulator
from csms.simulator import SimulationConfig, run_simulation
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]


def _load_floor_server() -> ModuleType:
    spec = importlib.util.spec_from_file_location("floor_server", ROOT / "bench/floor_server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["floor_server"] = module
    spec.loader.exec_module(module)
    return module


floor_server = _load_floor_server()


def _closed_port() -> int:
    return free_port()  # nothing listens there


@pytest.fixture
async def floor_url() -> AsyncIterator[str]:
    server = await floor_server.start_server("127.0.0.1", 0, heartbeat_interval=1)
    try:
        yield f"ws://127.0.0.1:{floor_server.server_port(server)}/ocpp"
    finally:
        server.close()
        await server.wait_closed()


async def test_stations_charge_and_report_meter_values(floor_url: str) -> None:
    config = SimulationConfig(
        url=floor_url, stations=3, duration=2.0, meter_interval=0.2, progress_interval=0
    )
    summary = await run_simulation(config)

    assert summary.errors == {}
    assert summary.ok
    assert summary.stations_connected == 3
    assert summary.stations_booted == 3
    assert summary.transactions_started == 3
    assert summary.transactions_stopped == 3
    expected = {
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "Authorize",
        "StartTransaction",
        "MeterValues",
        "StopTransaction",
    }
    assert set(summary.calls) == expected
    assert set(summary.latency) == expected | {"overall"}
    for action in ("BootNotification", "Authorize", "StartTransaction", "StopTransaction"):
        assert summary.calls[action] == 3
    # About 2 s / 0.2 s = 10 MeterValues per station; leave room for a slow machine.
    assert 3 * 3 <= summary.calls["MeterValues"] <= 3 * 11
    # Two sampled values (energy, power) per MeterValues, all acknowledged.
    assert summary.sampled_values_sent == 2 * summary.calls["MeterValues"]
    assert summary.sampled_values_acked == summary.sampled_values_sent
    assert summary.transaction_data_values_sent == 2 * 3
    assert summary.messages_sent == sum(summary.calls.values())
    assert summary.messages_received == summary.messages_sent
    assert summary.latency["overall"].count == summary.messages_sent
    assert summary.msgs_per_s > 0


class CommandingChargePoint(floor_server.ChargePoint):
    """A central system that, once a transaction starts, sends the station its commands."""

    answers: dict[str, Any] = {}
    stops: list[dict[str, Any]] = []
    starts: list[str] = []

    @on(Action.start_transaction)
    def on_start_transaction(self, id_tag: str, **kwargs: Any):
        self.starts.append(id_tag)
        self.transaction_id = 1000 + len(self.starts)
        return call_result.StartTransaction(
            transaction_id=self.transaction_id,
            id_tag_info={"status": AuthorizationStatus.accepted},
        )

    @after(Action.start_transaction)
    async def after_start_transaction(self, id_tag: str, **kwargs: Any) -> None:
        if len(self.starts) == 1:
            asyncio.get_running_loop().call_later(0.3, self._send_commands_soon)

    def _send_commands_soon(self) -> None:
        self._commands = asyncio.ensure_future(self.send_commands())

    async def send_commands(self) -> None:
        answers = self.answers
        answers["GetConfiguration"] = await self.call(call.GetConfiguration())
        answers["GetConfiguration.unknown"] = await self.call(
            call.GetConfiguration(key=["HeartbeatInterval", "NoSuchKey"])
        )
        answers["ChangeConfiguration"] = await self.call(
            call.ChangeConfiguration(key="MeterValueSampleInterval", value="30")
        )
        answers["ChangeConfiguration.readonly"] = await self.call(
            call.ChangeConfiguration(key="NumberOfConnectors", value="2")
        )
        answers["ClearCache"] = await self.call(call.ClearCache())
        answers["DataTransfer"] = await self.call(call.DataTransfer(vendor_id="someone.else"))
        answers["TriggerMessage"] = await self.call(
            call.TriggerMessage(requested_message="StatusNotification", connector_id=1)
        )
        answers["ChangeAvailability"] = await self.call(
            call.ChangeAvailability(connector_id=1, type="Inoperative")
        )
        answers["RemoteStartTransaction.busy"] = await self.call(
            call.RemoteStartTransaction(id_tag="OTHER", connector_id=1)
        )
        answers["RemoteStopTransaction.wrong"] = await self.call(
            call.RemoteStopTransaction(transaction_id=999)
        )
        answers["RemoteStopTransaction"] = await self.call(
            call.RemoteStopTransaction(transaction_id=self.transaction_id)
        )
        await asyncio.sleep(0.3)
        answers["RemoteStartTransaction"] = await self.call(
            call.RemoteStartTransaction(id_tag="REMOTE", connector_id=1)
        )

    @on(Action.stop_transaction)
    def on_stop_transaction(self, **kwargs: Any):
        self.stops.append(kwargs)
        return call_result.StopTransaction(id_tag_info={"status": AuthorizationStatus.accepted})


async def test_station_answers_calls_from_the_central_system() -> None:
    server = await floor_server.start_server(
        "127.0.0.1", 0, charge_point_class=CommandingChargePoint
    )
    url = f"ws://127.0.0.1:{floor_server.server_port(server)}/ocpp"
    try:
        summary = await run_simulation(
            SimulationConfig(
                url=url, stations=1, duration=2.5, meter_interval=0.2, progress_interval=0
            )
        )
    finally:
        server.close()
        await server.wait_closed()

    answers = CommandingChargePoint.answers
    assert answers["GetConfiguration"].configuration_key
    assert {k["key"] for k in answers["GetConfiguration.unknown"].configuration_key} == {
        "HeartbeatInterval"
    }
    assert answers["GetConfiguration.unknown"].unknown_key == ["NoSuchKey"]
    assert answers["ChangeConfiguration"].status == "Accepted"
    assert answers["ChangeConfiguration.readonly"].status == "Rejected"
    assert answers["ClearCache"].status == "Accepted"
    assert answers["DataTransfer"].status == "UnknownVendorId"
    assert answers["TriggerMessage"].status == "Accepted"
    assert answers["ChangeAvailability"].status == "Scheduled"  # busy charging
    assert answers["RemoteStartTransaction.busy"].status == "Rejected"
    assert answers["RemoteStopTransaction.wrong"].status == "Rejected"
    assert answers["RemoteStopTransaction"].status == "Accepted"
    assert answers["RemoteStartTransaction"].status == "Accepted"

    # The remote stop ended the first transaction; the remote start began a second one, which
    # the station stopped locally when the run ended.
    assert CommandingChargePoint.starts == ["SIMTAG", "REMOTE"]
    reasons = [stop.get("reason") for stop in CommandingChargePoint.stops]
    assert reasons == ["Remote", "Local"]
    assert summary.errors == {}
    assert summary.transactions_started == 2
    assert summary.transactions_stopped == 2
    assert summary.server_calls["RemoteStopTransaction"] == 2
    assert summary.server_calls["TriggerMessage"] == 1


def test_cli_fails_when_the_server_is_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"ws://127.0.0.1:{_closed_port()}/ocpp"
    code = simulator.main(
        ["--url", url, "--stations", "2", "--duration", "1", "--progress-interval", "0"]
    )

    assert code != 0
    out = capsys.readouterr().out
    assert "connect_failed 2" in out


async def test_unreachable_server_counts_connection_failures() -> None:
    url = f"ws://127.0.0.1:{_closed_port()}/ocpp"
    summary = await run_simulation(
        SimulationConfig(url=url, stations=2, duration=1, progress_interval=0)
    )

    assert not summary.ok
    assert summary.errors == {"connect_failed": 2}
    assert summary.stations_connected == 0
    assert summary.messages_sent == 0
