"""Reconciliation finishes what an unknown gateway outcome left half-done, with the same request.

The gateway is the real sandbox, wrapped so that it loses its answers (the request is carried
out, the response never arrives): what a timeout after the gateway acted looks like.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ocpp.v16 import call

from billing.gateways.base import GatewayResult
from tests.billing.flows import T0, Env, charge, open_env, ops, ready_station, start_body, stop_tx
from tests.support.stations import station
from web.app import PARTS
from web.keys import BILLING


class LosingGateway:
    """The real gateway, whose next `lose` authorization answers are lost after it acted."""

    def __init__(self, inner: Any, lose: int) -> None:
        self.inner = inner
        self.lose = lose

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def authorize(self, **kwargs: Any) -> GatewayResult:
        result = await self.inner.authorize(**kwargs)
        if self.lose > 0:
            self.lose -= 1
            return GatewayResult(success=False, status="failed", amount=kwargs["amount"],
                                 error="read timeout", transient=True)
        return result


@pytest.fixture
async def env(tmp_path: Path, aiohttp_server: Any) -> AsyncIterator[Env]:
    async with open_env("sandbox", tmp_path, aiohttp_server, {}) as env:
        yield env


async def test_a_saved_card_hold_with_a_lost_answer_is_released_by_reconciliation(
        env: Env) -> None:
    """The station start's hold was placed but its answer lost: the driver was refused, so the
    retry (same key, same saved card) finds the hold and reconciliation releases it."""
    app = env.server.app
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body(saveCard=True, idTag="RFID-9"))
        tx_id = await charge(env, cp, started["sessionId"])
        await cp.call(stop_tx(tx_id, 1000))
        await env.wait_session(started["sessionId"], "COMPLETED", "CAPTURED")
        await cp.status(1, "Available")

        ledger = app[PARTS].ledger
        ledger.gateway = LosingGateway(ledger.gateway, lose=10)  # every in-request attempt
        start = await cp.call(call.StartTransaction(connector_id=1, id_tag="RFID-9",
                                                    meter_start=0, timestamp=T0))
        assert start.id_tag_info["status"] == "Blocked"
        [failed] = await env.get("/api/sessions?stationId=EVSE-001&status=FAILED")
        assert ops(failed) == [("AUTHORIZE", 5000, "PENDING")]

        ledger.gateway.lose = 0  # the gateway answers again
        await app[BILLING].reconcile()
        done = await env.wait_session(failed["sessionId"], "FAILED", "VOIDED")
    assert ops(done) == [("AUTHORIZE", 5000, "SUCCEEDED"), ("VOID", 5000, "SUCCEEDED")]
    session = await app[BILLING].get(failed["sessionId"])
    assert session.charge_id is not None
    held = await app[PARTS].gateway.fetch(charge_id=session.charge_id)
    assert held.status == "voided"  # the hold placed at the gateway is released, not leaked
