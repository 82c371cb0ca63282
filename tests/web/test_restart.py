"""Data survives a restart of the CSMS (same SQLite file or MongoDB database, a new app)."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from ocpp.v16 import call

from tests.conftest import make_settings
from tests.support.mongo import BACKENDS, backend_environ
from tests.support.stations import station
from web.app import create_app


@pytest.mark.parametrize("backend", BACKENDS)
async def test_data_survives_restart(tmp_path, request: pytest.FixtureRequest,
                                     backend: str) -> None:
    settings = make_settings(tmp_path, **backend_environ(request, backend))
    # aiohttp's own TestServer: the station's upgrade goes through aiohttp's /ocpp route
    # (what a keep-alive connection's upgrade gets), where the suite's go through the lean port
    first = TestServer(create_app(settings))
    await first.start_server()
    try:
        async with station(f"ws://{first.host}:{first.port}/ocpp", "CP-PERSIST") as cp:
            await cp.boot()
            await cp.status(1, "Charging")
            start = await cp.call(call.StartTransaction(
                connector_id=1, id_tag="T", meter_start=100, timestamp="2026-11-22T10:00:00Z"))
            await cp.call(call.MeterValues(connector_id=1, transaction_id=start.transaction_id,
                                           meter_value=[{"timestamp": "2026-11-22T10:01:00Z",
                                                         "sampledValue": [{"value": "600"}]}]))
    finally:
        await first.close()

    second = TestServer(create_app(settings))
    await second.start_server()
    try:
        base = f"http://{second.host}:{second.port}/api"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/stations/CP-PERSIST") as resp:
                info = await resp.json()
            async with http.get(f"{base}/transactions/{start.transaction_id}") as resp:
                tx = await resp.json()
        assert info["vendor"] == "TestVendor" and info["connected"] is False
        assert info["connectors"][0]["status"] == "Charging"
        assert tx["energyWh"] == 500 and len(tx["meterValues"]) == 1

        # the counter keeps going: no transaction id is ever reused
        async with station(f"ws://{second.host}:{second.port}/ocpp", "CP-PERSIST") as cp:
            await cp.boot()
            again = await cp.call(call.StartTransaction(
                connector_id=2, id_tag="T", meter_start=0, timestamp="2026-11-22T11:00:00Z"))
        assert again.transaction_id > start.transaction_id
    finally:
        await second.close()
