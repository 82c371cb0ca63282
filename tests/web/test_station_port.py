"""The shared port (web/station_port.py): station upgrades are taken by the lean websocket,
everything else still reaches aiohttp, and both answer a station the same way."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from websockets.asyncio.client import connect

from csms.keys import HUB
from tests.conftest import make_settings
from web.app import create_app
from web.station_port import parse_upgrade

pytestmark = pytest.mark.both_loops  # see tests/conftest.py


def upgrade_head(path: str = "/ocpp/CP-1", **overrides: str | None) -> bytes:
    headers = {"Host": "x", "Upgrade": "websocket", "Connection": "Upgrade",
               "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
               "Sec-WebSocket-Version": "13", "Sec-WebSocket-Protocol": "ocpp1.6"}
    headers.update(overrides)
    lines = [f"GET {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items() if v is not None]
    return "\r\n".join(lines).encode()


def test_only_a_clean_upgrade_to_a_station_path_is_taken() -> None:
    taken = parse_upgrade(upgrade_head())
    assert taken is not None and taken.station_id == "CP-1"
    assert parse_upgrade(upgrade_head("/ocpp/CP-1?x=1")) is not None
    assert parse_upgrade(upgrade_head(Connection="keep-alive, Upgrade")) is not None
    for head in (upgrade_head("/ocpp/CP%201"), upgrade_head("/ocpp/a/b"), upgrade_head("/ocpp/"),
                 upgrade_head("/ocpp/CP-1#x"),  # aiohttp drops the fragment: station CP-1
                 upgrade_head(**{"Sec-WebSocket-Key": None}),
                 upgrade_head(**{"Sec-WebSocket-Key": "short"}),
                 upgrade_head(**{"Sec-WebSocket-Version": "8"}),
                 upgrade_head(Upgrade="h2c"), upgrade_head(Connection="close"),
                 upgrade_head(**{"Content-Length": "5"}),
                 upgrade_head(**{"Transfer-Encoding": "chunked"}),
                 upgrade_head().replace(b"HTTP/1.1", b"HTTP/1.0"),
                 upgrade_head().replace(b"GET", b"POST"),
                 upgrade_head() + b"\r\n folded",
                 upgrade_head() + b"\r\nBad Name: x",
                 upgrade_head(Host="h\xe9".encode("latin-1").decode("latin-1"))):
        assert parse_upgrade(head) is None, head


# Heads aiohttp refuses as malformed HTTP (400): the door must not take them either, so a
# station gets the same answer whichever path its connection takes.
MALFORMED = {
    "duplicate Content-Length": upgrade_head() + b"\r\nContent-Length: 0\r\nContent-Length: 5",
    "no Host": upgrade_head(Host=None),
    "duplicate Host": upgrade_head() + b"\r\nHost: y",
    "a control character in a value": upgrade_head(**{"X-A": "a\x01b"}),
    "a bare CR in a value": upgrade_head(**{"X-A": "a\rb"}),
    "a NUL in a value": upgrade_head(**{"X-A": "a\x00b"}),
    "a field over aiohttp's 8190 bytes": upgrade_head(**{"X-Big": "a" * 9000}),
    "more headers than aiohttp's 128": upgrade_head() + b"".join(
        b"\r\nX-%d: v" % i for i in range(200)),
}


@pytest.mark.parametrize("head", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_head_is_left_to_aiohttp(head: bytes) -> None:
    assert parse_upgrade(head) is None


@pytest.mark.parametrize("head", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_upgrade_gets_aiohttp_s_answer_on_both_paths(
        tmp_path: Path, head: bytes, start_server: Callable[..., Any]) -> None:
    lean = await start_server(make_settings(tmp_path))
    plain = TestServer(create_app(make_settings(tmp_path / "plain")))
    await plain.start_server()
    try:
        answers = []
        for server in (lean, plain):
            reader, writer = await asyncio.open_connection(server.host, server.port)
            writer.write(head + b"\r\n\r\n")  # one write: the head arrives whole
            answers.append((await asyncio.wait_for(reader.readline(), 5)).split(b" ")[1])
            writer.close()
    finally:
        await plain.close()
    assert answers == [b"400", b"400"]


async def test_http_and_stations_share_the_port(server: Any, http_url: str,
                                                ws_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{http_url}/healthz") as resp:
            assert resp.status == 200
        async with http.post(f"{http_url}/api/stations", json={"id": "CP-SHARE"}) as resp:
            assert resp.status == 201
        # an upgrade on a connection aiohttp already serves goes through its route
        async with http.ws_connect(f"{ws_url}/CP-SHARE", protocols=("ocpp1.6",)) as ws:
            assert ws.protocol == "ocpp1.6"
            await ws.send_str('[2,"k","Heartbeat",{}]')
            assert json.loads((await ws.receive()).data)[:2] == [3, "k"]
    async with connect(f"{ws_url}/CP-SHARE", subprotocols=["ocpp1.6"]) as ws:
        await ws.send('[2,"l","Heartbeat",{}]')
        assert json.loads(await ws.recv())[:2] == [3, "l"]


async def _refusal(host: str, port: int, head: bytes) -> tuple[bytes, dict[str, str], Any]:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(head + b"\r\n\r\n")
    status_and_headers = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    lines = status_and_headers.decode().strip().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    body = await reader.readexactly(int(headers["Content-Length"]))
    writer.close()
    return lines[0].encode(), headers, json.loads(body)


@pytest.mark.parametrize(("environ", "head", "status"), [
    ({"CSMS_OCPP__ALLOW_UNKNOWN_STATIONS": "false"}, upgrade_head("/ocpp/CP-NOPE"), 404),
    ({}, upgrade_head("/ocpp/CP-" + "x" * 60), 400),
])
async def test_refusals_are_the_same_on_both_paths(tmp_path: Path, environ: dict[str, str],
                                                   head: bytes, status: int,
                                                   start_server: Callable[..., Any]) -> None:
    lean = await start_server(make_settings(tmp_path, **environ))
    plain = TestServer(create_app(make_settings(tmp_path / "plain", **environ)))
    await plain.start_server()
    try:
        answers = [await _refusal(s.host, s.port, head) for s in (lean, plain)]
    finally:
        await plain.close()
    (lean_status, lean_headers, lean_body), (plain_status, _, plain_body) = answers
    assert lean_status.startswith(f"HTTP/1.1 {status}".encode())
    assert lean_status == plain_status
    assert lean_body == plain_body and lean_body["success"] is False
    assert lean_headers["Content-Type"] == "application/json; charset=utf-8"


async def test_wrong_credentials_are_refused_with_basic_challenge(server: Any, http_url: str,
                                                                  ws_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        await http.post(f"{http_url}/api/stations", json={"id": "CP-PW", "password": "p" * 16})
    status, headers, body = await _refusal(server.host, server.port,
                                           upgrade_head("/ocpp/CP-PW"))
    assert status.startswith(b"HTTP/1.1 401")
    assert headers["WWW-Authenticate"].startswith("Basic")
    assert body["error"]["code"] == "unauthorized"


async def test_a_head_that_never_completes_is_dropped(tmp_path: Path,
                                                      start_server: Callable[..., Any]) -> None:
    server = await start_server(make_settings(tmp_path, CSMS_SERVER__IDLE_TIMEOUT="0.5"))
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"GET /ocpp/CP-SLOW HTTP/1.1\r\nUpgrade: websocket\r\n")
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()


async def test_shutdown_closes_lean_stations_going_away(tmp_path: Path,
                                                        start_server: Callable[..., Any]) -> None:
    server = await start_server(make_settings(tmp_path))
    url = f"ws://{server.host}:{server.port}/ocpp/CP-BYE"
    async with connect(url, subprotocols=["ocpp1.6"]) as ws:
        await ws.send('[2,"a","Heartbeat",{}]')
        await ws.recv()
        assert server.app[HUB].is_connected("CP-BYE")
        await server.close()
        with pytest.raises(Exception):  # noqa: B017 - websockets' ConnectionClosed
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1001


def masked_text(text: str) -> bytes:
    """A client's final text frame (under 126 bytes), masked as RFC 6455 asks."""
    payload, mask = text.encode(), os.urandom(4)
    assert len(payload) < 126
    return bytes((0x81, 0x80 | len(payload))) + mask + \
        bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def test_frames_sent_before_the_101_are_answered_in_order(server: Any) -> None:
    """A station that does not wait for the 101: a frame in the head's own write and one
    written while the station is being admitted are both kept and answered, in order."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(upgrade_head("/ocpp/CP-EAGER") + b"\r\n\r\n"
                 + masked_text('[2,"a","Heartbeat",{}]'))
    await writer.drain()
    writer.write(masked_text('[2,"b","Heartbeat",{}]'))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 ")
    answers = []
    for _ in range(2):
        first, length = await asyncio.wait_for(reader.readexactly(2), 5)
        assert first == 0x81 and length < 126
        answers.append(json.loads(await reader.readexactly(length))[:2])
    assert answers == [[3, "a"], [3, "b"]]
    writer.close()
