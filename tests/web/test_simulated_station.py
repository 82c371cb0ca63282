"""`csms simulate --idle`: a station that acts like hardware (OCPP 1.6 or 2.0.1) carries the
driver flow from start to receipt, and stops by itself when the car is full."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from csms.simulator import SimulationConfig, run_simulation
from csms.simulator.cli import config_from_args
from tests.billing.flows import Env, open_env, start_body
from tests.support.wait import eventually
from web.cli import build_parser


@contextlib.asynccontextmanager
async def idle_station(env: Env, **config: Any) -> AsyncIterator[None]:
    """EVSE-001 simulated, idle until the driver API starts it; connector 1 reported Available."""
    simulation = asyncio.create_task(run_simulation(SimulationConfig(
        url=env.ws_url, ids=("EVSE-001",), idle=True, duration=math.inf, progress_interval=0,
        meter_interval=0.2, **config)))

    async def connector() -> Any:
        async with env.http.get(env.url + "/api/stations/EVSE-001") as resp:
            return (await resp.json()) if resp.status == 200 else {}

    try:
        await eventually(connector, lambda s: s.get("connected") and any(
            c["connectorId"] == 1 and c["status"] == "Available" for c in s["connectors"]))
        yield
    finally:
        simulation.cancel()
        await asyncio.gather(simulation, return_exceptions=True)


VERSIONS = pytest.mark.parametrize("ocpp", ["1.6", "2.0.1"])


@VERSIONS
async def test_the_driver_flow_runs_from_start_to_receipt(tmp_path: Path, aiohttp_server: Any,
                                                          ocpp: str) -> None:
    async with open_env("sandbox", tmp_path, aiohttp_server, {}) as env, \
            idle_station(env, power_kw=36, ocpp=ocpp):
        status, started = await env.post("/charge/start", start_body())
        assert status == 200, started
        sid = started["sessionId"]
        await env.wait_session(sid, "CHARGING")
        await eventually(lambda: env.session(sid), lambda s: s["energyWh"] > 0)
        status, _ = await env.post("/charge/stop", {"sessionId": sid})
        assert status == 200
        done = await env.wait_session(sid, "COMPLETED", "CAPTURED")
        receipt_url = (await eventually(lambda: env.session(sid),
                                        lambda s: s["receiptUrl"]))["receiptUrl"]
        async with env.http.get(env.url + receipt_url) as resp:
            assert resp.status == 200
            receipt = await resp.text()
        tx = await env.get(f"/api/transactions/{done['transactionId']}")
    # The card's last digits as the sandbox reports them (tok_123456789), not the charge id's.
    assert "EVSE-001" in receipt and "****6789" in receipt
    assert f"****{started['paymentData']['chargeId'][-4:]}" not in receipt
    assert done["payment"]["capturedAmount"] == done["costCents"] >= 200
    assert done["energyWh"] > 0
    assert (tx["ocppVersion"], tx["energyWh"]) == (ocpp, done["energyWh"])


@VERSIONS
async def test_the_station_stops_when_the_car_is_full(tmp_path: Path, aiohttp_server: Any,
                                                      ocpp: str) -> None:
    async with open_env("sandbox", tmp_path, aiohttp_server, {}) as env, \
            idle_station(env, power_kw=36, battery_kwh=0.02, ocpp=ocpp):
        _, started = await env.post("/charge/start", start_body())
        done = await env.wait_session(started["sessionId"], "COMPLETED", "CAPTURED")
        tx = await env.get(f"/api/transactions/{done['transactionId']}")
    assert done["energyWh"] == 20
    assert (tx["stopReason"], tx["ocppVersion"]) == ("EVDisconnected", ocpp)


def test_fixed_ids_and_idle_options() -> None:
    args = build_parser().parse_args(["simulate", "--id", "EVSE-001,EVSE-002", "--id", "EVSE-9",
                                      "--idle", "--power-kw", "11", "--battery-kwh", "40"])
    config = config_from_args(args)
    assert config.ids == ("EVSE-001", "EVSE-002", "EVSE-9") and config.stations == 3
    assert [config.station_id(i) for i in range(3)] == ["EVSE-001", "EVSE-002", "EVSE-9"]
    assert config.idle and config.duration == math.inf
    assert (config.power_kw, config.battery_kwh) == (11, 40)
    plain = config_from_args(build_parser().parse_args(["simulate", "--stations", "2"]))
    assert plain.duration == 60 and not plain.idle and plain.station_id(1) == "SIM0002"
    assert plain.ocpp_version(1) == "1.6"


def test_the_ocpp_option_picks_each_stations_version() -> None:
    mixed = config_from_args(build_parser().parse_args(["simulate", "--ocpp", "mixed",
                                                        "--stations", "4"]))
    assert [mixed.ocpp_version(i) for i in range(4)] == ["1.6", "2.0.1", "1.6", "2.0.1"]
    only = config_from_args(build_parser().parse_args(["simulate", "--ocpp", "2.0.1"]))
    assert only.ocpp_version(0) == only.ocpp_version(7) == "2.0.1"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["simulate", "--ocpp", "2.1"])
