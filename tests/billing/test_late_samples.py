"""What billing keeps of a settled session is final: a meter sample handled late (read while
the session was still charging, written after the stop was settled) changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ocpp.v16 import call

from tests.billing.flows import Env, charge, open_env, ready_station, start_body, stop_tx
from tests.support.stations import station
from web.keys import BILLING_STORE


@pytest.fixture
async def env(tmp_path: Path, aiohttp_server: Any) -> AsyncIterator[Env]:
    async with open_env("sandbox", tmp_path, aiohttp_server, {}) as env:
        yield env


def meter(tx_id: int, wh: int, at: str) -> call.MeterValues:
    return call.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=[
        {"timestamp": at, "sampledValue": [{"value": str(wh)}]}])


async def test_a_late_meter_sample_never_overwrites_the_settled_energy(env: Env) -> None:
    """The station's connection is replaced while a MeterValues of the old one is handled:
    billing read the session CHARGING and handed its write to the store, the new connection's
    StopTransaction is settled, then the old sample's write runs (a write handed to the
    store's thread runs even when the handler is cancelled with its connection). Energy and
    cost stay what was captured."""
    store = env.server.app[BILLING_STORE]
    submitted, resume = asyncio.Event(), asyncio.Event()
    writes: list[asyncio.Task[Any]] = []
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body())
        sid = started["sessionId"]
        tx_id = await charge(env, cp, sid)
        original = store.update_session

        async def in_flight(session_id: str, **changes: Any) -> Any:
            if "energy_wh" not in changes or session_id != sid:
                return await original(session_id, **changes)
            store.update_session = original  # once

            async def later() -> Any:
                await resume.wait()
                return await original(session_id, **changes)

            writes.append(asyncio.create_task(later()))
            submitted.set()
            return await asyncio.shield(writes[0])

        store.update_session = in_flight
        late = asyncio.create_task(cp.call(meter(tx_id, 2000, "2026-11-22T10:10:00Z")))
        await submitted.wait()
        async with station(env.ws_url, "EVSE-001") as taken_over:
            await taken_over.call(stop_tx(tx_id, 10000))  # 10 kWh: 17.00
            settled = await env.wait_session(sid, "COMPLETED", "CAPTURED")
            resume.set()
            await writes[0]
            after = await env.session(sid)
        late.cancel()
        with contextlib.suppress(BaseException):
            await late
    assert (settled["energyWh"], settled["costCents"]) == (10000, 1700)
    assert settled["payment"]["capturedAmount"] == 1700
    assert (after["energyWh"], after["costCents"]) == (10000, 1700), after
