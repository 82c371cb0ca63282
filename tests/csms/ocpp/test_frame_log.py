"""The OCPP message log is bounded: frames truncated, bytes capped, refused stations not
logged (issue 8 item 6)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import make_settings
from tests.support.mongo import BACKENDS, backend_environ
from tests.support.raw import raw_exchange


async def messages(http_url: str, station_id: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{http_url}/api/stations/{station_id}/messages") as resp:
            assert resp.status == 200
            return await resp.json()


async def test_stored_frames_are_truncated_and_the_log_capped(tmp_path, start_server) -> None:
    server = await start_server(make_settings(
        tmp_path, CSMS_OCPP__MESSAGE_LOG_FRAME_BYTES="1024",
        CSMS_OCPP__MESSAGE_LOG_BYTES="20000"))
    ws_url = f"ws://{server.host}:{server.port}/ocpp"
    http_url = f"http://{server.host}:{server.port}"
    big = '[2,"big","DataTransfer",{"vendorId":"V","data":"' + "x" * 500_000 + '"}]'
    await raw_exchange(ws_url, "CP-BIG", [big])
    logged = await messages(http_url, "CP-BIG")
    incoming = [m["frame"] for m in logged if m["direction"] == "in"]
    assert len(incoming) == 1 and incoming[0].startswith('[2,"big","DataTransfer"')
    assert len(incoming[0].encode()) <= 1024 + 64 and "truncated" in incoming[0]

    for n in range(30):  # ids anyone can invent, each with a large frame
        await raw_exchange(ws_url, f"CP-INVENTED-{n}", [big])
    total = 0
    for n in range(30):
        total += sum(len(m["frame"].encode())
                     for m in await messages(http_url, f"CP-INVENTED-{n}"))
    assert 0 < total <= 20000
    assert await messages(http_url, "CP-INVENTED-29")  # the newest are the ones kept


async def test_stations_refused_at_the_upgrade_leave_no_log(tmp_path, start_server) -> None:
    server = await start_server(make_settings(tmp_path,
                                              CSMS_OCPP__ALLOW_UNKNOWN_STATIONS="false"))
    ws_url = f"ws://{server.host}:{server.port}/ocpp"
    http_url = f"http://{server.host}:{server.port}"
    with pytest.raises(InvalidStatus):
        async with connect(f"{ws_url}/CP-NOBODY", subprotocols=["ocpp1.6"]):
            pass
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{http_url}/api/stations", json={"id": "CP-PROTO"}) as resp:
            assert resp.status == 201
    async with connect(f"{ws_url}/CP-PROTO", subprotocols=["ocpp9"]) as ws:
        with pytest.raises(Exception):  # noqa: B017 (closed without a reply)
            await ws.send('[2,"1","Heartbeat",{}]')
            await ws.recv()
    assert await messages(http_url, "CP-NOBODY") == []
    assert await messages(http_url, "CP-PROTO") == []


HEARTBEATS = ['[2,"h1","Heartbeat",{}]', '[2,"h2","Heartbeat",{}]',
              '[2,"bad","Heartbeat",{"surplus":1}]', '[2,"h3","Heartbeat",{}]',
              '[2,"dt","DataTransfer",{"vendorId":"V"}]']


async def test_heartbeats_are_logged_once_per_interval_and_failures_always(
        tmp_path, start_server) -> None:
    server = await start_server(make_settings(tmp_path))  # default: once per 60 s
    ws_url = f"ws://{server.host}:{server.port}/ocpp"
    replies = await raw_exchange(ws_url, "CP-HB", HEARTBEATS)
    assert [r[0] for r in replies] == [3, 3, 4, 3, 3]  # every one answered, the bad one an error
    logged = await messages(f"http://{server.host}:{server.port}", "CP-HB")
    ids = [(m["direction"], m["frame"].split(",")[1]) for m in reversed(logged)]
    assert ids == [("in", '"h1"'), ("out", '"h1"'), ("in", '"bad"'), ("out", '"bad"'),
                   ("in", '"dt"'), ("out", '"dt"')]


async def test_every_heartbeat_is_logged_with_interval_0(tmp_path, start_server) -> None:
    server = await start_server(make_settings(
        tmp_path, CSMS_OCPP__MESSAGE_LOG_HEARTBEAT_INTERVAL="0"))
    await raw_exchange(f"ws://{server.host}:{server.port}/ocpp", "CP-HB", HEARTBEATS)
    logged = await messages(f"http://{server.host}:{server.port}", "CP-HB")
    assert len(logged) == 2 * len(HEARTBEATS)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_log_order_trim_and_truncation_across_flushes(
        tmp_path, start_server, request: pytest.FixtureRequest, backend: str) -> None:
    """What an operator reads is the newest `message_log_size` frames in the order they
    crossed the wire, whichever flush wrote them, truncated frames and all."""
    server = await start_server(make_settings(
        tmp_path, CSMS_OCPP__MESSAGE_LOG_SIZE="7", CSMS_OCPP__MESSAGE_LOG_FRAME_BYTES="300",
        **backend_environ(request, backend)))
    ws_url = f"ws://{server.host}:{server.port}/ocpp"
    http_url = f"http://{server.host}:{server.port}"

    def data(n: int, text: str) -> str:
        return json.dumps([2, f"d{n}", "DataTransfer", {"vendorId": "V", "data": text}],
                          ensure_ascii=False, separators=(",", ":"))

    batches = [[data(1, "één")], [data(2, "x"), data(3, "ü" * 400)],  # 3 is cut to 300 bytes
               [data(4, "y"), data(5, "z")]]
    for batch in batches:
        await raw_exchange(ws_url, "CP-LOG", batch)
        await messages(http_url, "CP-LOG")  # the API flushes the log before it reads
    logged = await messages(http_url, "CP-LOG")
    assert [(m["direction"], m["frame"].split(",")[1]) for m in reversed(logged)] == [
        ("out", '"d2"'), ("in", '"d3"'), ("out", '"d3"'), ("in", '"d4"'), ("out", '"d4"'),
        ("in", '"d5"'), ("out", '"d5"')]
    cut = next(m["frame"] for m in logged if m["direction"] == "in" and '"d3"' in m["frame"])
    assert cut.startswith('[2,"d3","DataTransfer",{"vendorId":"V","data":"üü')
    assert "…[truncated: " in cut and len(cut.encode()) <= 300
    assert [m["at"] for m in logged] == sorted((m["at"] for m in logged), reverse=True)
