"""Black box: `CSMS_STORE__BACKEND=mongodb csms serve`, a real process on a MongoDB wire server.

What a station, a driver app and an operator see: boot, a paid card session from start to
capture, the transaction in the operator API; then the MongoDB goes away (HTTP 503, OCPP
InternalError) and comes back (service resumes by itself, nothing lost).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import ocpp.exceptions
import pytest
from ocpp.v16 import call

from tests.billing.flows import Env, charge, ready_station, start_body, stop_tx
from tests.support.mongo import MongoServer, start_nx
from tests.support.net import free_port
from tests.support.stations import station
from tests.support.wait import eventually

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.mongodb


@pytest.fixture
def nx(tmp_path: Path) -> Iterator[MongoServer]:
    """An nx-27017 of this test's own: the test stops and restarts it."""
    server = start_nx(tmp_path / "nx")
    yield server
    server.stop()


@pytest.fixture
def serve(nx: MongoServer, tmp_path: Path) -> Iterator[SimpleNamespace]:
    port = free_port()
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "CSMS_STORE__BACKEND": "mongodb",
               "CSMS_STORE__MONGODB_URL": nx.url, "CSMS_STORE__MONGODB_DATABASE": "csms",
               "CSMS_STORE__MONGODB_TIMEOUT": "1",
               "CSMS_BILLING__SANDBOX_PATH": str(tmp_path / "sandbox.db"),
               "CSMS_MAIL__OUTBOX_DIR": str(tmp_path / "outbox")}
    log = open(tmp_path / "serve.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "web.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path, env=environ, stdout=subprocess.PIPE, stderr=log)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert b"csms listening" in line, (tmp_path / "serve.log").read_text()
    try:
        yield SimpleNamespace(host="127.0.0.1", port=port)
    finally:
        process.terminate()
        process.wait(15)
        log.close()


async def test_station_driver_and_operator_on_mongodb(serve: SimpleNamespace,
                                                      nx: MongoServer) -> None:
    async with aiohttp.ClientSession() as http:
        env = Env(serve, None, http)  # type: ignore[arg-type]  # host and port are enough
        async with station(env.ws_url, "EVSE-001") as cp:
            await ready_station(env, cp)
            status, started = await env.post("/charge/start", start_body())
            assert status == 200, started
            sid = started["sessionId"]
            tx_id = await charge(env, cp, sid, meter_start=1000)
            await cp.call(call.MeterValues(
                connector_id=1, transaction_id=tx_id,
                meter_value=[{"timestamp": "2026-11-22T10:10:00Z",
                              "sampledValue": [{"value": "2500"}]}]))
            status, _ = await env.post("/charge/stop", {"sessionId": sid})
            assert status == 200
            await cp.wait_for("RemoteStopTransaction")
            await cp.call(stop_tx(tx_id, 13000))
            body = await env.wait_session(sid, "COMPLETED", "CAPTURED")
            assert (body["energyWh"], body["costCents"]) == (12000, 2000)
            assert body["payment"]["capturedAmount"] == 2000

            tx = await env.get(f"/api/transactions/{tx_id}")
            assert (tx["meterStart"], tx["meterStop"], tx["energyWh"]) == (1000, 13000, 12000)
            assert [v["value"] for v in tx["meterValues"]] == ["2500"]
            info = await env.get("/api/stations/EVSE-001")
            assert info["connected"] is True and info["vendor"] == "TestVendor"

            nx.stop(kill=True)  # MongoDB goes away while serving
            async with http.get(f"{env.url}/charge/{sid}") as resp:
                assert resp.status == 503
                assert (await resp.json())["error"]["code"] == "unavailable"
            async with http.get(f"{env.url}/healthz") as resp:
                assert resp.status == 503
            with pytest.raises(ocpp.exceptions.InternalError):
                await cp.call(call.StatusNotification(connector_id=1, error_code="NoError",
                                                      status="Available"), suppress=False)

            nx.start()  # and comes back: service resumes by itself

            async def healthy() -> Any:
                async with http.get(f"{env.url}/healthz") as resp:
                    return resp.status

            await eventually(healthy, lambda status: status == 200, timeout=15)
            assert (await env.session(sid))["status"] == "COMPLETED"
            await cp.call(call.Heartbeat())
