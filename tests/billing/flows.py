"""Shared steps of a charging session seen from outside: the station's part over OCPP and
the driver's part over HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from ocpp.v16 import call

from tests.conftest import make_settings
from tests.support.fake_pagarme import FakePagarme
from tests.support.pagarme import SECRET_KEY, start_fake_pagarme
from tests.support.stations import FakeStation, basic_auth, station
from tests.support.wait import eventually
from tests.support.wallets import APPLE_MERCHANT
from web.app import create_app

T0 = "2026-11-22T10:00:00Z"
PRICE = {"price": 1.50, "fixed_connection_cost": 2.00}


@dataclass
class Env:
    server: TestServer
    fake: FakePagarme | None
    http: aiohttp.ClientSession

    @property
    def ws_url(self) -> str:
        return f"ws://{self.server.host}:{self.server.port}/ocpp"

    @property
    def url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    async def post(self, path: str, body: Any, **kw: Any) -> tuple[int, Any]:
        async with self.http.post(self.url + path, json=body, **kw) as resp:
            return resp.status, await resp.json()

    async def get(self, path: str) -> Any:
        async with self.http.get(self.url + path) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def session(self, sid: str) -> dict[str, Any]:
        return await self.get(f"/charge/{sid}")

    async def wait_session(self, sid: str, status: str, payment: str | None = None,
                           timeout: float = 5) -> dict[str, Any]:
        return await eventually(
            lambda: self.session(sid),
            lambda body: body["status"] == status and (payment is None or
                                                       body["payment"]["status"] == payment),
            timeout=timeout)

    def gateway_count(self, kind: str) -> int | None:
        return None if self.fake is None else self.fake.counts.get(kind, 0)

    async def pay_pix(self, charge_id: str, event_id: str = "evt-1") -> tuple[int, Any]:
        if self.fake is None:
            return await self.post("/webhooks/sandbox", {"id": event_id, "type": "charge.paid",
                                                         "data": {"id": charge_id}})
        if self.fake.charges[charge_id]["status"] == "pending":
            self.fake.mark_pix_paid(charge_id)
        body = self.fake.webhook_body("charge.paid", charge_id)
        body["id"] = event_id
        return await self.post("/webhooks/pagarme", body, headers=basic_auth("hook", "hookpw"))


@contextlib.asynccontextmanager
async def open_env(gateway: str, tmp_path: Path, aiohttp_server: Any,
                   extra: dict[str, str]) -> AsyncIterator[Env]:
    """The whole app on a real port with the `gateway` ("sandbox", or "pagarme" played by the
    fake); on exit, every POST and DELETE the fake received must have had an Idempotency-Key."""
    fake = None
    extra = dict(extra)
    if gateway == "pagarme":
        fake = await start_fake_pagarme(aiohttp_server)
        extra.update(CSMS_BILLING__GATEWAY="pagarme", CSMS_BILLING__PAGARME__BASE_URL=fake.base_url,
                     CSMS_BILLING__PAGARME__SECRET_KEY=SECRET_KEY,
                     CSMS_BILLING__PAGARME__WEBHOOK_USER="hook",
                     CSMS_BILLING__PAGARME__WEBHOOK_PASSWORD="hookpw",
                     CSMS_BILLING__PAGARME__APPLE_PAY_MERCHANT_IDENTIFIER=APPLE_MERCHANT,
                     CSMS_BILLING__GATEWAY_ATTEMPTS="2")
    extra.setdefault("CSMS_BILLING__SANDBOX_PATH", str(tmp_path / "sandbox.db"))
    server = await aiohttp_server(create_app(make_settings(tmp_path, **extra)))
    async with aiohttp.ClientSession() as http:
        yield Env(server, fake, http)
    if fake is not None:
        missing = [r for r in fake.mutating_requests() if not r["headers"].get("Idempotency-Key")]
        assert not missing, "every POST and DELETE to Pagar.me carries an Idempotency-Key"


def start_body(**overrides: Any) -> dict[str, Any]:
    body = {"stationId": 10, "chargePointId": "EVSE-001", "connectorId": 1,
            "method": "CREDIT_CARD", "amount": 5000, "email": "driver@company.com",
            "cpf": "12345678900", "cardToken": "tok_123456789", "saveCard": False,
            "charger": dict(PRICE)}
    body.update(overrides)
    return body


async def ready_station(env: Env, cp: FakeStation) -> None:
    await cp.boot()
    await cp.status(1, "Available")


async def charge(env: Env, cp: FakeStation, sid: str, meter_start: int = 0) -> int:
    """Play the station's part after RemoteStart: StartTransaction with the session's idTag."""
    remote = await cp.wait_for("RemoteStartTransaction")
    start = await cp.call(call.StartTransaction(connector_id=remote["connector_id"],
                                                id_tag=remote["id_tag"],
                                                meter_start=meter_start, timestamp=T0))
    assert start.id_tag_info["status"] == "Accepted"
    await env.wait_session(sid, "CHARGING")
    return start.transaction_id


def stop_tx(tx_id: int, meter_stop: int) -> call.StopTransaction:
    return call.StopTransaction(meter_stop=meter_stop, timestamp="2026-11-22T10:30:00Z",
                                transaction_id=tx_id, reason="Remote")


def ops(body: dict[str, Any]) -> list[tuple[str, int, str]]:
    return [(o["type"], o["amount"], o["status"]) for o in body["payment"]["operations"]]




async def paid_pix_charging(env: Env, cp: FakeStation, event: str = "evt-pix",
                            ) -> tuple[str, int]:
    """A PIX session of 5000 paid by webhook and charging: (sessionId, transactionId)."""
    await ready_station(env, cp)
    status, started = await env.post("/charge/start", start_body(method="PIX", cardToken=None))
    assert status == 200, started
    sid = started["sessionId"]
    await env.pay_pix(started["paymentData"]["chargeId"], event_id=event)
    return sid, await charge(env, cp, sid)


async def card_session(env: Env, cp: FakeStation, energy_wh: int = 12345) -> str:
    """A card session (hold 5000) charged `energy_wh`, stopped and captured."""
    await ready_station(env, cp)
    _, started = await env.post("/charge/start", start_body())
    sid = started["sessionId"]
    tx_id = await charge(env, cp, sid)
    await cp.call(stop_tx(tx_id, energy_wh))
    await env.wait_session(sid, "COMPLETED", "CAPTURED")
    return str(sid)


def meter(tx_id: int, wh: int, at: str) -> call.MeterValues:
    return call.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=[
        {"timestamp": at, "sampledValue": [{"value": str(wh)}]}])


def stop_at(tx_id: int, wh: int, at: str) -> call.StopTransaction:
    return call.StopTransaction(meter_stop=wh, timestamp=at, transaction_id=tx_id,
                                reason="Local")


async def hijacked(env: Env, amount: int = 5000) -> tuple[str, int]:
    """A card session charging 3,000 Wh; then a second client connects as the same station id
    (it replaces the first) and reports 2,000,000 Wh five seconds later."""
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body(amount=amount))
        sid = started["sessionId"]
        tx_id = await charge(env, cp, sid)  # started 10:00:00
        await cp.call(meter(tx_id, 3000, "2026-11-22T10:10:00Z"))
        async with station(env.ws_url, "EVSE-001") as impostor:
            await impostor.call(meter(tx_id, 2_000_000, "2026-11-22T10:10:04Z"))
            running = await env.session(sid)
            assert (running["status"], running["energyWh"]) == ("CHARGING", 3000)
            await impostor.call(stop_at(tx_id, 2_000_000, "2026-11-22T10:10:05Z"))
    return sid, tx_id
