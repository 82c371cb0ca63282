"""Black box: `csms serve` as a process, on asyncio's loop and on uvloop (`server.uvloop`):
stations reach the lean websocket and HTTP reaches aiohttp on the one port, and SIGTERM ends
the run after closing the stations with 1001 (going away)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from subprocess import Popen

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["false", "true"], ids=["asyncio", "uvloop"])
def serve(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[int, Popen[bytes]]]:
    port = free_port()
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "CSMS_SERVER__UVLOOP": request.param,
               "CSMS_STORE__SQLITE_PATH": str(tmp_path / "csms.db"),
               "CSMS_BILLING__SANDBOX_PATH": str(tmp_path / "sandbox.db"),
               "CSMS_MAIL__OUTBOX_DIR": str(tmp_path / "outbox"),
               # shown, so the run can be checked for them: an unclosed transport at the
               # loop's end (a connection that outlived the server), a deprecated call
               "PYTHONWARNINGS": "always::ResourceWarning,always::DeprecationWarning"}
    with open(tmp_path / "serve.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "web.cli", "serve", "--host", "127.0.0.1", "--port",
             str(port)], cwd=tmp_path, env=environ, stdout=subprocess.PIPE, stderr=log)
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert b"csms listening" in line, (tmp_path / "serve.log").read_text()
            yield port, process
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    output = (tmp_path / "serve.log").read_bytes()
    assert b"Traceback" not in output
    assert b"Warning:" not in output, output.decode()


async def test_serve_takes_stations_and_http_and_stops_on_sigterm(
        serve: tuple[int, Popen[bytes]]) -> None:
    port, process = serve
    async with connect(f"ws://127.0.0.1:{port}/ocpp/CP-PROC",
                       subprotocols=["ocpp2.0.1"]) as ws:
        await ws.send('[2,"b","BootNotification",{"reason":"PowerUp",'
                      '"chargingStation":{"model":"M","vendorName":"V"}}]')
        assert json.loads(await ws.recv())[2]["status"] == "Accepted"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/api/stations/CP-PROC") as resp:
                assert (await resp.json())["connected"] is True
        process.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 10)
        assert ws.close_code == 1001
    assert await asyncio.to_thread(process.wait, 15) == 0
