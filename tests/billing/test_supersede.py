"""A station that lost a transaction in a reboot, and its clock with it, starts a billed one
stamped before the lost one: the start that arrived runs and is billed for its energy; the lost
one is closed (found by an independent review: the station's clock used to decide)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ocpp.v16 import call

from tests.billing.flows import Env, charge, open_env, ready_station, start_body, stop_tx
from tests.support.stations import station


@pytest.fixture
async def env(tmp_path: Path, aiohttp_server: Any) -> AsyncIterator[Env]:
    async with open_env("sandbox", tmp_path, aiohttp_server, {}) as env:
        yield env


async def test_a_billed_start_after_a_clock_reset_is_billed_for_its_energy(env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        # a local RFID transaction, stamped by the station's clock before its reboot
        lost = await cp.call(call.StartTransaction(
            connector_id=1, id_tag="RFID-1", meter_start=0, timestamp="2026-11-22T12:00:00Z"))
        # the station reboots (lost that transaction, clock now behind) and is Available again
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body())
        sid = started["sessionId"]
        tx_id = await charge(env, cp, sid)  # StartTransaction stamped T0 = 10:00
        assert tx_id != lost.transaction_id
        await cp.call(stop_tx(tx_id, 4000))  # 4 kWh delivered
        done = await env.wait_session(sid, "COMPLETED")
    assert done["payment"]["capturedAmount"] == 800  # 2.00 + 4 x 1.50


@pytest.fixture
async def fast_env(tmp_path: Path, aiohttp_server: Any) -> AsyncIterator[Env]:
    async with open_env("sandbox", tmp_path, aiohttp_server,
                        {"CSMS_BILLING__RECONCILE_INTERVAL": "0.2"}) as env:
        yield env


async def test_the_hold_is_not_voided_while_the_car_still_charges(fast_env: Env) -> None:
    env = fast_env
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        await cp.call(call.StartTransaction(
            connector_id=1, id_tag="RFID-1", meter_start=0, timestamp="2026-11-22T12:00:00Z"))
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body())
        sid = started["sessionId"]
        tx_id = await charge(env, cp, sid)
        await cp.call(call.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=[
            {"timestamp": "2026-11-22T10:20:00Z", "sampledValue": [{"value": "3000"}]}]))

        await asyncio.sleep(1.5)  # a few reconciliation sweeps; no StopTransaction was sent
        body = await env.session(sid)
    assert body["status"] == "CHARGING", body
    assert body["payment"]["status"] == "AUTHORIZED", body
