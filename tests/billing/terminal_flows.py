"""Shared rig of the terminal tests: the whole app on a real port with CCV configured (the fake
CCV server on its own port), a bound terminal, a charging terminal session."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.billing.flows import Env, charge, ready_station
from tests.conftest import make_settings
from tests.support.ccv import API_KEY, MANAGEMENT_SYSTEM_ID, start_fake_ccv
from tests.support.fake_ccv import DEFAULT_CARD_TOKEN, FakeCcv
from tests.support.net import free_port
from tests.support.stations import FakeStation
from tests.support.wait import eventually
from web.app import create_app

KIOSK = {"X-Api-Key": "kiosk-key-1"}
SECRET = "hook-secret-1"
OTHER_CARD = "99ABCDEFGHIJKLMNOP"
# 12,345 Wh at 1.50/kWh plus the 2.00 fee: 20.5175 -> 2052 cents (half-up)
ENERGY_WH, COST = 12345, 2052


@dataclass
class TerminalEnv:
    env: Env
    ccv: FakeCcv

    async def post(self, path: str, body: Any, headers: dict[str, str] | None = None,
                   ) -> tuple[int, Any]:
        return await self.env.post(path, body, headers=KIOSK if headers is None else headers)

    async def start(self, amount: int = 5000) -> str:
        status, body = await self.post("/terminal/start", {
            "chargePointId": "EVSE-001", "connectorId": 1, "amount": amount})
        assert status == 202, body
        return str(body["sessionId"])

    async def request(self, request_id: str) -> dict[str, Any]:
        async with self.env.http.get(f"{self.env.url}/terminal/requests/{request_id}",
                                     headers=KIOSK) as resp:
            assert resp.status == 200, await resp.text()
            return dict(await resp.json())

    async def stop_at_terminal(self, expected: str) -> dict[str, Any]:
        status, body = await self.post("/terminal/stop", {"chargePointId": "EVSE-001",
                                                          "connectorId": 1})
        assert status == 202, body
        return await eventually(lambda: self.request(body["requestId"]),
                                lambda r: r["status"] == expected)


@contextlib.asynccontextmanager
async def terminal_env(tmp_path: Path, aiohttp_server: Any, *, webhooks: bool = True,
                       **extra: str) -> AsyncIterator[TerminalEnv]:
    """The app with CCV configured and the fake's terminal answering after 0.2 s; with
    `webhooks=False` CCV's hints go to a port nobody listens on (lost)."""
    ccv = await start_fake_ccv(aiohttp_server)
    ccv.terminal_delay = 0.2
    port = free_port()
    public = f"http://127.0.0.1:{port if webhooks else free_port()}"
    settings = make_settings(
        tmp_path, CSMS_SERVER__PUBLIC_URL=public, CSMS_BILLING__CCV__BASE_URL=ccv.base_url,
        CSMS_BILLING__CCV__API_KEY=API_KEY,
        CSMS_BILLING__CCV__MANAGEMENT_SYSTEM_ID=MANAGEMENT_SYSTEM_ID,
        CSMS_BILLING__CCV__WEBHOOK_SECRET=SECRET, CSMS_API__TERMINAL_KEYS="kiosk-key-1",
        CSMS_BILLING__SANDBOX_PATH=str(tmp_path / "sandbox.db"), **extra)
    server = await aiohttp_server(create_app(settings), port=port)
    async with aiohttp.ClientSession() as http:
        yield TerminalEnv(Env(server, None, http), ccv)
    await ccv.settled()
    missing = [r for r in ccv.mutating_requests()
               if not r["headers"].get("Idempotency-Reference")]
    assert not missing, "every POST to CCV carries an Idempotency-Reference"


async def bound_station(t: TerminalEnv, cp: FakeStation) -> None:
    await ready_station(t.env, cp)
    async with t.env.http.put(f"{t.env.url}/api/stations/EVSE-001/terminal",
                              json={"terminalId": "IM30-1"}) as resp:
        assert resp.status == 200, await resp.text()


async def charging(t: TerminalEnv, cp: FakeStation) -> tuple[str, int]:
    """A terminal session of 5000 approved on the default card and charging."""
    await bound_station(t, cp)
    t.ccv.terminal("IM30-1").queue("approve", DEFAULT_CARD_TOKEN)
    sid = await t.start()
    return sid, await charge(t.env, cp, sid)
