"""Station websockets decline permessage-deflate unless `ocpp.websocket_compression` is on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import make_settings


async def test_deflate_is_declined_by_default(ws_url: str) -> None:
    async with aiohttp.ClientSession() as http, \
            http.ws_connect(f"{ws_url}/CP-DEFLATE", protocols=["ocpp1.6"], compress=15) as ws:
        assert ws.compress == 0
        await ws.send_str('[2,"1","Heartbeat",{}]')
        reply = await ws.receive_json()
        assert reply[:2] == [3, "1"]


async def test_deflate_is_accepted_when_configured(start_server: Callable[..., Any],
                                                   tmp_path: Path) -> None:
    server = await start_server(make_settings(tmp_path, CSMS_OCPP__WEBSOCKET_COMPRESSION="true"))
    url = f"ws://{server.host}:{server.port}/ocpp/CP-DEFLATE"
    async with aiohttp.ClientSession() as http, \
            http.ws_connect(url, protocols=["ocpp1.6"], compress=15) as ws:
        assert ws.compress == 15
        await ws.send_str('[2,"1","Heartbeat",{}]')
        reply = await ws.receive_json()
        assert reply[:2] == [3, "1"]
