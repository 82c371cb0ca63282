"""Money defects of issue 8 (review F3, F4, F5, F7), each seen from outside: what the driver
app, the operator API and the gateway show."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from billing.gateways.base import GatewayResult
from tests.billing.flows import (
    Env,
    card_session,
    charge,
    open_env,
    ready_station,
    start_body,
    stop_tx,
)
from tests.support.stations import station
from tests.support.wait import eventually
from web.app import PARTS
from web.keys import BILLING

# one try per gateway call and one run per job: a lost answer gives up at once
GIVE_UP_FAST = {"CSMS_TASKS__MAX_ATTEMPTS": "1", "CSMS_BILLING__GATEWAY_ATTEMPTS": "1"}


@pytest.fixture
async def env(tmp_path: Path, aiohttp_server: Any) -> AsyncIterator[Env]:
    async with open_env("sandbox", tmp_path, aiohttp_server, GIVE_UP_FAST) as env:
        yield env


class LosingAnswers:
    """The real gateway; the calls named in `lose` are carried out but their answers lost."""

    def __init__(self, inner: Any, *lose: str) -> None:
        self.inner, self.lose = inner, set(lose)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in self.lose:
            return attr

        async def call(**kwargs: Any) -> GatewayResult:
            await attr(**kwargs)
            return GatewayResult(success=False, status="failed",
                                 amount=kwargs.get("amount") or 0, error="read timeout",
                                 transient=True)

        return call


async def job(env: Env, job_id: str, status: str) -> dict[str, Any]:
    async def find() -> dict[str, Any]:
        return next((j for j in await env.get("/api/jobs") if j["jobId"] == job_id), {})

    return await eventually(find, lambda j: j.get("status") == status)


def op_status(body: dict[str, Any], type: str) -> list[str]:
    return [o["status"] for o in body["payment"]["operations"] if o["type"] == type]


async def captured_session(env: Env) -> str:
    """A card session captured for 17.00 (10 kWh)."""
    async with station(env.ws_url, "EVSE-001") as cp:
        return await card_session(env, cp, 10000)


# F4: an unknown outcome given up keeps its room -------------------------------------------------

async def test_a_refund_whose_outcome_stays_unknown_keeps_its_room(env: Env) -> None:
    """Refund 10.00 of 17.00 is carried out at the gateway but every answer is lost until the
    job gives up: the refund still holds its 10.00, so at most 7.00 more can be refunded, and
    an operator's retry (same key) settles it once."""
    sid = await captured_session(env)
    ledger = env.server.app[PARTS].ledger
    ledger.gateway = LosingAnswers(ledger.gateway, "refund")
    key = {"Idempotency-Key": "first"}
    status, _ = await env.post(f"/api/sessions/{sid}/refund", {"amount": 1000}, headers=key)
    assert status == 202
    given_up = await job(env, f"{sid}:REFUND:first", "FAILED")
    assert "read timeout" in given_up["lastError"]
    body = await env.session(sid)
    assert op_status(body, "REFUND") == ["PENDING"]  # outcome unknown, not refused

    ledger.gateway.lose.clear()
    status, error = await env.post(f"/api/sessions/{sid}/refund", {"amount": 800})
    assert status == 422 and error["error"]["code"] == "refund_exceeds_charged"
    status, _ = await env.post(f"/api/sessions/{sid}/refund", {"amount": 700})
    assert status == 202
    await env.wait_session(sid, "COMPLETED", "PARTIALLY_REFUNDED")

    status, _ = await env.post(f"/api/jobs/{sid}:REFUND:first/retry", {})
    assert status == 202
    done = await env.wait_session(sid, "COMPLETED", "REFUNDED")
    assert done["payment"]["refundedAmount"] == 1700
    charge_id = (await env.server.app[PARTS].store.get_session(sid)).charge_id
    at_gateway = await env.server.app[PARTS].gateway.fetch(charge_id=charge_id)
    assert at_gateway.status == "refunded" and at_gateway.refunded_amount in (None, 1700)


async def test_a_capture_whose_outcome_stays_unknown_is_not_recorded_as_refused(
        env: Env) -> None:
    """The capture reaches the gateway, its answers are lost until the job gives up: the
    operation stays PENDING (the hold may be captured) and the operator's retry captures once."""
    ledger = env.server.app[PARTS].ledger
    ledger.gateway = LosingAnswers(ledger.gateway, "capture")
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body())
        sid = started["sessionId"]
        tx_id = await charge(env, cp, sid)
        await cp.call(stop_tx(tx_id, 10000))
        await job(env, f"{sid}:CAPTURE", "FAILED")
    body = await env.session(sid)
    assert op_status(body, "CAPTURE") == ["PENDING"]
    assert body["payment"]["status"] == "AUTHORIZED"

    ledger.gateway.lose.clear()
    status, _ = await env.post(f"/api/jobs/{sid}:CAPTURE/retry", {})
    assert status == 202
    done = await env.wait_session(sid, "COMPLETED", "CAPTURED")
    assert done["payment"]["capturedAmount"] == 1700
    assert op_status(done, "CAPTURE") == ["SUCCEEDED"]


# F5: an operator's Idempotency-Key replays only the same request ---------------------------------

async def test_a_refund_key_reused_with_other_parameters_is_409_naming_the_key(
        env: Env) -> None:
    sid = await captured_session(env)
    url, key = f"/api/sessions/{sid}/refund", {"Idempotency-Key": "k-1"}
    status, first = await env.post(url, {"amount": 100, "reason": "late start"}, headers=key)
    assert status == 202
    for other in ({"amount": 900, "reason": "late start"}, {"amount": 100, "reason": "other"},
                  {"amount": 100}):
        status, body = await env.post(url, other, headers=key)
        assert status == 409, (other, body)
        assert body["error"]["code"] == "idempotency_key_reused" and "k-1" in \
            body["error"]["message"]
    status, again = await env.post(url, {"amount": 100, "reason": "late start"}, headers=key)
    assert status == 202
    assert (again["refund"]["idempotencyKey"], again["refund"]["amount"]) == \
        (first["refund"]["idempotencyKey"], 100)
    done = await env.wait_session(sid, "COMPLETED", "PARTIALLY_REFUNDED")
    assert done["payment"]["refundedAmount"] == 100
    assert op_status(done, "REFUND") == ["SUCCEEDED"]


async def test_a_refund_key_replays_its_result_after_the_refund_settled(env: Env) -> None:
    """The whole capture refunded: the payment is REFUNDED, nothing is refundable any more, and
    the same request with the same key still replays its stored result."""
    sid = await captured_session(env)
    url, key = f"/api/sessions/{sid}/refund", {"Idempotency-Key": "all"}
    status, first = await env.post(url, {"amount": 1700}, headers=key)
    assert status == 202
    await env.wait_session(sid, "COMPLETED", "REFUNDED")
    status, again = await env.post(url, {"amount": 1700}, headers=key)
    assert status == 202, again
    assert again["refund"]["idempotencyKey"] == first["refund"]["idempotencyKey"]
    assert (again["refund"]["amount"], again["refund"]["status"]) == (1700, "SUCCEEDED")
    status, body = await env.post(url, {"amount": 1}, headers=key)
    assert status == 409 and body["error"]["code"] == "idempotency_key_reused"
    status, body = await env.post(url, {"amount": 1})  # no key: a new refund, nothing left
    assert status == 409 and body["error"]["code"] == "not_refundable"
    assert (await env.session(sid))["payment"]["refundedAmount"] == 1700


# F3: a PIX paid while its webhook was lost, then canceled, is refunded -------------------------

async def pix_started(env: Env, cp: Any) -> tuple[str, str]:
    await ready_station(env, cp)
    status, started = await env.post("/charge/start", start_body(method="PIX", cardToken=None))
    assert status == 200, started
    return started["sessionId"], started["paymentData"]["chargeId"]


async def test_a_paid_pix_canceled_with_its_webhook_lost_is_refunded(env: Env) -> None:
    """Sandbox: the driver pays, `charge.paid` never arrives, the driver stops: release asks
    the gateway first, finds it paid, and refunds all of it (no void of a paid charge)."""
    gateway = env.server.app[PARTS].gateway
    async with station(env.ws_url, "EVSE-001") as cp:
        sid, charge_id = await pix_started(env, cp)
        await gateway.mark_pix_paid(charge_id)  # paid; the webhook never comes
        status, _ = await env.post("/charge/stop", {"sessionId": sid})
        assert status == 200
        body = await env.wait_session(sid, "CANCELED", "REFUNDED")
    assert body["payment"]["refundedAmount"] == 5000
    assert op_status(body, "VOID") == [] and op_status(body, "REFUND") == ["SUCCEEDED"]
    assert (await gateway.fetch(charge_id=charge_id)).status == "refunded"


@pytest.fixture
async def pagarme_env(tmp_path: Path, aiohttp_server: Any) -> AsyncIterator[Env]:
    async with open_env("pagarme", tmp_path, aiohttp_server, {}) as env:  # two tries per call
        yield env


def deletes(env: Env, charge_id: str) -> list[Any]:
    assert env.fake is not None
    return [r["body"] for r in env.fake.mutating_requests()
            if r["method"] == "DELETE" and r["path"].endswith(charge_id)]


async def test_a_paid_pix_canceled_with_its_webhook_lost_is_refunded_on_pagarme(
        pagarme_env: Env) -> None:
    env = pagarme_env
    assert env.fake is not None
    async with station(env.ws_url, "EVSE-001") as cp:
        sid, charge_id = await pix_started(env, cp)
        env.fake.mark_pix_paid(charge_id)
        await env.post("/charge/stop", {"sessionId": sid})
        body = await env.wait_session(sid, "CANCELED", "REFUNDED")
    assert body["payment"]["refundedAmount"] == 5000
    assert deletes(env, charge_id) == [{"amount": 5000}]  # one refund, no void
    assert env.fake.charges[charge_id]["canceled_amount"] == 5000


async def test_a_pix_paid_between_the_fetch_and_the_cancel_is_recorded_as_refunded(
        pagarme_env: Env) -> None:
    """The fetch still shows it pending; the driver pays before the DELETE, which (on a paid
    charge) refunds it: the ledger records the money returned, not a void of nothing."""
    env = pagarme_env
    fake = env.fake
    assert fake is not None
    async with station(env.ws_url, "EVSE-001") as cp:
        sid, charge_id = await pix_started(env, cp)

        def pay_after_the_fetch(request: Any) -> None:
            if request.method == "GET" and request.path.endswith(charge_id):
                fake.on_processed = None
                fake.mark_pix_paid(charge_id)

        fake.on_processed = pay_after_the_fetch
        await env.post("/charge/stop", {"sessionId": sid})
        body = await env.wait_session(sid, "CANCELED", "REFUNDED")
    assert (body["payment"]["authorizedAmount"], body["payment"]["refundedAmount"]) == \
        (5000, 5000)
    assert deletes(env, charge_id) == [{}]  # the one cancel, which returned the money
    assert fake.charges[charge_id]["canceled_amount"] == 5000


async def test_a_canceled_pix_whose_fetch_failed_is_refunded_by_the_sweep(
        pagarme_env: Env) -> None:
    """The gateway does not answer the fetch at the stop: the session is CANCELED with its
    payment PENDING, and the reconciliation sweep asks again and refunds it."""
    env = pagarme_env
    assert env.fake is not None
    async with station(env.ws_url, "EVSE-001") as cp:
        sid, charge_id = await pix_started(env, cp)
        env.fake.mark_pix_paid(charge_id)
        env.fake.fail_next(1, status=503)
        await env.post("/charge/stop", {"sessionId": sid})
        body = await env.wait_session(sid, "CANCELED")
        assert body["payment"]["status"] == "PENDING" and deletes(env, charge_id) == []
        await env.server.app[BILLING].reconcile()
        body = await env.wait_session(sid, "CANCELED", "REFUNDED")
    assert body["payment"]["refundedAmount"] == 5000
    assert deletes(env, charge_id) == [{"amount": 5000}]


# F7: a retried AUTHORIZE sends the body the first one sent, and its token is then scrubbed -------

def orders(env: Env) -> list[Any]:
    assert env.fake is not None
    return [r for r in env.fake.requests if r["method"] == "POST" and r["path"].endswith("/orders")]


async def test_a_retried_authorization_sends_the_same_request_and_forgets_the_token(
        pagarme_env: Env) -> None:
    """The order is created but its answer is lost: the start fails (502) and the sweep asks
    again with the same key and the same body (the driver's name included). Once the outcome
    is known, the card token is no longer kept in the ledger."""
    env = pagarme_env
    assert env.fake is not None
    store = env.server.app[PARTS].store
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        env.fake.fail_next(2, status=503, after_processing=True)  # both tries of the start
        status, body = await env.post("/charge/start", start_body(name="Ana Souza"))
        assert status == 502, body
        sid = body["error"]["sessionId"]
        pending = await store.get_operation(f"{sid}:AUTHORIZE")
        assert pending is not None and pending.status.value == "PENDING"
        await env.server.app[BILLING].reconcile()
        done = await env.wait_session(sid, "FAILED", "VOIDED")
    first, *retries = orders(env)
    assert len(retries) == 2
    for retry in retries:
        assert retry["headers"]["Idempotency-Key"] == first["headers"]["Idempotency-Key"]
        assert retry["body"] == first["body"]
    assert first["body"]["customer"]["name"] == "Ana Souza"
    assert op_status(done, "AUTHORIZE") == ["SUCCEEDED"]
    for op in await store.list_operations(sid):
        kept = repr(op.raw)
        assert "tok_123456789" not in kept and "card_token" not in kept, (op.type, kept)
