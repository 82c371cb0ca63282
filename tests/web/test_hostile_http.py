"""Hostile HTTP requests get a 4xx JSON error, never a 500 (issue 8)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3

import aiohttp
import pytest

from tests.conftest import make_settings
from tests.support.rawhttp import raw_request

START = {"chargePointId": "CP-1", "connectorId": 1, "method": "CREDIT_CARD", "amount": 5000,
         "cardToken": "tok_ok", "charger": {"price": "1.50", "fixed_connection_cost": "2.00"}}


@pytest.fixture
async def guarded(tmp_path, start_server):
    """The app with an operator token and a driver key set."""
    return await start_server(make_settings(tmp_path, CSMS_API__OPERATOR_TOKEN="op-token",
                                            CSMS_API__DRIVER_KEYS="driver-key"))


@pytest.mark.parametrize("path", ["/charge/start", "/charge/stop", "/api/stations",
                                  "/webhooks/sandbox"])
async def test_an_unknown_charset_is_415(http_url: str, path: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{http_url}{path}", data=b'{"id": "x"}',
                             headers={"Content-Type": "application/json; charset=klingon"},
                             ) as resp:
            assert resp.status == 415
            body = await resp.json()
    assert body["success"] is False and "klingon" in body["error"]["message"]


@pytest.mark.parametrize(("path", "header"), [
    ("/charge/stop", b"X-Api-Key: cl\xc3\xa9"),
    ("/charge/stop", b"X-Api-Key: \xff\xfe"),
    ("/api/stations", b"Authorization: Bearer t\xc3\xb6ken"),
    ("/api/stations", b"Authorization: Bearer \xff"),
    ("/webhooks/pagarme", b"Authorization: Basic \xc3\xa9"),
])
async def test_non_ascii_credentials_are_401_without_a_traceback(
        guarded, caplog: pytest.LogCaptureFixture, path: str, header: bytes) -> None:
    caplog.set_level(logging.INFO)
    status, body = await raw_request(
        guarded.host, guarded.port,
        b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%s"
        % (path.encode(), header), b'{"sessionId": "s"}')
    assert status == 401 and body["error"]["code"] == "unauthorized"
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize("path", ["/charge/start", "/api/stations", "/webhooks/sandbox",
                                  "/api/stations/CP-1/commands/Reset"])
async def test_deeply_nested_json_is_400_naming_the_problem(http_url: str, path: str) -> None:
    for depth in (50, 2000):  # 2000: json.loads itself gives up (RecursionError)
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{http_url}{path}", data="[" * depth + "]" * depth,
                                 headers={"Content-Type": "application/json"}) as resp:
                assert resp.status == 400, depth
                body = await resp.json()
        assert body["error"]["code"] == "malformed_json"
        assert "nested deeper than" in body["error"]["message"]


@pytest.mark.parametrize(("amount", "message"), [
    (2**63, "at most 100000"), (9_007_199_254_740_993, "at most 100000"),
    (100_001, "at most 100000"), (True, "integer"), (12.5, "integer"), ("500", "integer"),
])
async def test_charge_start_amount_is_a_strict_integer_within_the_maximum_hold(
        http_url: str, amount: object, message: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{http_url}/charge/start", json={**START, "amount": amount},
                             ) as resp:
            assert resp.status == 422
            body = await resp.json()
    assert body["error"]["field"] == "amount" and message in body["error"]["message"]


async def test_the_maximum_hold_is_configurable(tmp_path, start_server) -> None:
    server = await start_server(make_settings(tmp_path, CSMS_BILLING__MAX_HOLD="200000"))
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://{server.host}:{server.port}/charge/start",
                             json={**START, "amount": 150_000}) as resp:
            body = await resp.json()
    assert body["error"]["code"] != "invalid_request"  # refused later: the station is offline


def webhook_rows(settings) -> int:
    with sqlite3.connect(settings.store.sqlite_path) as conn:
        return conn.execute("SELECT COUNT(*) FROM billing_webhooks").fetchone()[0]


@pytest.mark.parametrize(("body", "status"), [
    ({"type": "charge.paid", "data": {"id": "x" * 1_000_000}}, 413),
    ({"type": "charge.paid", "data": {"id": "ch_1"}, "junk": "x" * 1000}, 422),
    ({"type": "charge.paid", "data": {"id": "ch_1", "more": {"deep": [1, 2]}}}, 422),
    ({"type": "x" * 200, "data": {"id": "ch_1"}}, 422),
    ({"id": "", "type": "charge.paid", "data": {"id": "ch_1"}}, 422),
    ({"type": "charge.paid", "data": {"id": "ch_unknown"}}, 404),
])
async def test_the_sandbox_webhook_stores_nothing_it_should_not(
        server, settings, body: dict, status: int) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://{server.host}:{server.port}/webhooks/sandbox",
                             json=body) as resp:
            assert resp.status == status
            assert (await resp.json())["success"] is False
    assert webhook_rows(settings) == 0


@pytest.fixture
async def impatient(tmp_path, start_server):
    return await start_server(make_settings(
        tmp_path, CSMS_SERVER__IDLE_TIMEOUT="1", CSMS_SERVER__BODY_TIMEOUT="1",
        CSMS_SERVER__MAX_BODY_BYTES="4096"))


async def test_a_client_sending_headers_slowly_is_cut_off(impatient) -> None:
    reader, writer = await asyncio.open_connection(impatient.host, impatient.port)
    writer.write(b"POST /charge/stop HTTP/1.1\r\nHost: x\r\n")

    async def trickle() -> None:
        for n in range(200):  # a header line every 50 ms, never the blank line
            writer.write(b"X-Slow-%d: y\r\n" % n)
            await writer.drain()
            await asyncio.sleep(0.05)

    dripping = asyncio.create_task(trickle())
    try:
        try:
            answered = await asyncio.wait_for(reader.read(), 8)
        except ConnectionResetError:  # closed with our unread headers in its buffer: a reset
            answered = b""
        assert answered == b""  # closed, nothing answered
    finally:
        dripping.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await dripping
        writer.close()


async def test_a_client_sending_the_body_slowly_gets_408(impatient) -> None:
    reader, writer = await asyncio.open_connection(impatient.host, impatient.port)
    writer.write(b"POST /charge/stop HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{\"sessionId\": ")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 8)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"code":"timeout"' in answer.replace(b" ", b"")


async def test_a_body_over_the_maximum_is_413(impatient) -> None:
    status, body = await raw_request(
        impatient.host, impatient.port,
        b"POST /charge/stop HTTP/1.1\r\nHost: x\r\nContent-Type: application/json",
        b'{"sessionId": "' + b"x" * 5000 + b'"}')
    assert status == 413 and body["error"]["code"] == "too_large"


@pytest.mark.parametrize("transaction_id", ["9223372036854775808", "-9223372036854775809",
                                            "2147483648", "0", "x"])
async def test_a_transaction_id_that_cannot_exist_is_404(http_url: str,
                                                         transaction_id: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{http_url}/api/transactions/{transaction_id}") as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["code"] == "not_found"


async def test_the_document_lists_the_body_errors_every_body_route_can_answer(
        http_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{http_url}/api/openapi.json") as resp:
            spec = await resp.json()
    with_body = [op for path in spec["paths"].values() for op in path.values()
                 if "requestBody" in op]
    assert with_body
    assert all({"400", "413", "415", "422"} <= set(op["responses"]) for op in with_body)
