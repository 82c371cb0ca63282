"""Reconciliation finishes what an unknown gateway outcome left half-done, with the same request.

The gateway is the real sandbox, wrapped so that it loses its answers (the request is carried
out, the response never arrives): what a timeout after the gateway acted looks like.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from ocpp.v16 import call

import billing.reconcile
from billing.gateways.base import GatewayResult
from billing.ledger import Request
from billing.models import Method, OperationStatus, OperationType
from billing.sessions import customer_of, new_id_tag, new_session
from csms.domain import utcnow
from tests.billing.flows import T0, Env, charge, open_env, ops, ready_station, start_body, stop_tx
from tests.support.stations import station
from tests.support.wait import eventually
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


# a PIX charge the gateway created whose identifiers never reached the session ----------------

PIX = start_body(method="PIX", cardToken=None)


@pytest.fixture
async def pagarme_env(tmp_path: Path, aiohttp_server: Any) -> AsyncIterator[Env]:
    async with open_env("pagarme", tmp_path, aiohttp_server,
                        {"CSMS_OCPP__REMOTE_START_TIMEOUT": "1"}) as env:
        yield env


async def reconciled(env: Env, sid: str, payment: str = "VOIDED") -> dict[str, Any]:
    """Run the reconciliation sweep until the session has ended with `payment`."""

    async def sweep() -> dict[str, Any]:
        await env.server.app[BILLING].reconcile()
        return await env.session(sid)

    return await eventually(sweep, lambda body: body["status"] in ("FAILED", "CANCELED") and
                            body["payment"]["status"] == payment, timeout=8, interval=0.2)


def voided_once(env: Env, body: dict[str, Any]) -> None:
    """The session failed, its one PIX charge was canceled at the gateway, once, unpaid."""
    assert (body["status"], body["payment"]["status"]) == ("FAILED", "VOIDED"), body
    assert ops(body) == [("CHARGE", 5000, "SUCCEEDED"), ("VOID", 5000, "SUCCEEDED")]
    assert env.fake is not None
    assert (env.fake.counts["orders"], env.fake.counts["cancel"]) == (1, 1)
    assert [r["method"] for r in env.fake.requests].count("DELETE") == 1
    (charge,) = env.fake.charges.values()
    assert (charge["status"], charge["paid_amount"]) == ("canceled", 0)


async def test_a_pix_charge_whose_answer_was_lost_is_voided_by_reconciliation(
        pagarme_env: Env) -> None:
    """The gateway created the PIX order but every answer was lost: the driver got 502 and
    no QR code. Reconciliation sends the CHARGE again with its key (the same charge comes
    back) and cancels it: no QR code is left open that nothing here tracks."""
    env = pagarme_env
    assert env.fake is not None
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        env.fake.fail_next(2, after_processing=True)  # both in-request attempts
        status, body = await env.post("/charge/start", PIX)
        assert status == 502, body
        sid = body["error"]["sessionId"]
        assert ops(await env.session(sid)) == [("CHARGE", 5000, "PENDING")]
        voided_once(env, await reconciled(env, sid))


class Crash(Exception):
    """The process died here."""


async def test_a_crash_at_the_pix_charge_ids_write_leaves_no_charge_untracked(
        pagarme_env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The charge was created and its answer received, but the process died at the write
    that puts its identifiers on the session: the session must not wait for a payment the
    driver cannot make (they never got the QR code); the charge is canceled once."""
    env = pagarme_env
    store = env.server.app[PARTS].store
    crashed: list[str] = []

    def crash_at_charge_id(name: str) -> None:
        original = getattr(store, name)

        async def write(*args: Any, **kwargs: Any) -> Any:
            changes = kwargs.get("changes") or kwargs
            if changes.get("charge_id") and not crashed:
                crashed.append(name)
                raise Crash(name)
            return await original(*args, **kwargs)

        monkeypatch.setattr(store, name, write)

    for name in ("update_session", "settle_operation"):
        crash_at_charge_id(name)
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        async with env.http.post(env.url + "/charge/start", json=PIX) as resp:
            assert resp.status == 500
        assert crashed
        [session] = await env.get("/api/sessions")
        assert session["status"] == "PENDING_PAYMENT"
        voided_once(env, await reconciled(env, session["sessionId"]))


@pytest.mark.parametrize("paid", [False, True], ids=["unpaid", "paid"])
async def test_a_pix_charge_known_only_to_its_operation_is_adopted_and_released(
        pagarme_env: Env, paid: bool) -> None:
    """What an older build left when it died between the ledger's record of the CHARGE and the
    session's write of the charge id: a SUCCEEDED CHARGE with the charge id, a session
    PENDING_PAYMENT without it. Reconciliation adopts the charge id and cancels the charge,
    or refunds it all when it was paid meanwhile (from a copied code)."""
    env = pagarme_env
    app = env.server.app
    store, gateway = app[PARTS].store, app[PARTS].gateway
    billing = app[BILLING]
    session = new_session("EVSE-001", 1, Method.PIX, new_id_tag(), 5000,
                          billing.sessions.default_tariff, "driver@company.com", "12345678900")
    await store.create_session(session)
    sid, key = session.session_id, f"{session.session_id}:CHARGE"
    await store.begin_operation(sid, OperationType.CHARGE, 5000, key)
    created = await gateway.create_pix(session_id=sid, amount=5000,
                                       customer=customer_of(session), expires_in=900,
                                       description="EV charging", idempotency_key=key)
    assert created.success and created.charge_id
    await store.finish_operation(key, OperationStatus.SUCCEEDED, charge_id=created.charge_id,
                                 raw=created.raw)
    assert env.fake is not None
    if paid:
        env.fake.mark_pix_paid(created.charge_id)
    body = await reconciled(env, sid, "REFUNDED" if paid else "VOIDED")
    assert (await billing.get(sid)).charge_id == created.charge_id
    if not paid:
        voided_once(env, body)
        return
    assert body["status"] == "FAILED"
    assert ops(body) == [("CHARGE", 5000, "SUCCEEDED"), ("REFUND", 5000, "SUCCEEDED")]
    assert (body["payment"]["authorizedAmount"], body["payment"]["refundedAmount"]) == (5000,
                                                                                       5000)
    assert [r["method"] for r in env.fake.requests].count("DELETE") == 1
    charge = env.fake.charges[created.charge_id]
    assert (charge["paid_amount"], charge["canceled_amount"]) == (5000, 5000)


async def test_an_authorization_being_sent_elsewhere_is_left_to_its_sender(env: Env) -> None:
    """Another node (or this one) has recorded the AUTHORIZE and is about to keep its request
    on it and send it: a sweep that reads it in that moment has no payment source to send, so
    it leaves it alone instead of failing a hold the driver is being granted."""
    app = env.server.app
    store, billing = app[PARTS].store, app[BILLING]
    session = new_session("EVSE-001", 1, Method.CREDIT_CARD, new_id_tag(), 5000,
                          billing.sessions.default_tariff, "driver@company.com", "12345678900")
    await store.create_session(session)
    sid = session.session_id
    await store.begin_operation(sid, OperationType.AUTHORIZE, 5000, f"{sid}:AUTHORIZE")
    await billing.reconcile()
    body = await env.session(sid)
    assert ops(body) == [("AUTHORIZE", 5000, "PENDING")]
    assert body["payment"]["status"] == "PENDING"
    # the sender goes on: its authorization is granted
    done = await app[PARTS].ledger.run(sid, Request(
        OperationType.AUTHORIZE, 5000, customer=customer_of(session), card_token="tok_1"))
    assert done.result.success
    assert (await env.session(sid))["payment"]["status"] == "AUTHORIZED"


async def test_an_authorization_whose_sender_died_before_the_call_ends_failed(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Recorded, but its process died before it kept the request and called the gateway:
    nothing reached the gateway. Once no start can still be sending it (older than the remote
    start timeout) the sweep ends it FAILED without a call, so nothing stays PENDING for ever."""
    app = env.server.app
    store, billing_service = app[PARTS].store, app[BILLING]
    session = new_session("EVSE-001", 1, Method.CREDIT_CARD, new_id_tag(), 5000,
                          billing_service.sessions.default_tariff, "driver@company.com",
                          "12345678900")
    await store.create_session(session)
    sid = session.session_id
    await store.begin_operation(sid, OperationType.AUTHORIZE, 5000, f"{sid}:AUTHORIZE")
    later = utcnow() + timedelta(hours=1)
    monkeypatch.setattr(billing.reconcile, "utcnow", lambda: later)
    await billing_service.reconcile()
    body = await env.session(sid)
    assert ops(body) == [("AUTHORIZE", 5000, "FAILED")]
    assert (body["status"], body["payment"]["status"]) == ("FAILED", "FAILED")
