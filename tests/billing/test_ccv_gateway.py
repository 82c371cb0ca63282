"""CcvGateway against the fake CCV Payment API over real HTTP (terminal authorise, capture,
reversal, refund, fetch, one-way card token, idempotency, transient faults, exact amounts)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web

from billing.gateways.base import (
    Customer,
    GatewayResult,
    PaymentGateway,
    Terminal,
    TerminalGateway,
)
from billing.gateways.ccv import (
    CcvGateway,
    ccv_amount,
    cents_from_ccv,
    idempotency_reference,
    map_status,
)
from tests.support.ccv import API_KEY, MANAGEMENT_SYSTEM_ID, ccv_settings, start_fake_ccv
from tests.support.fake_ccv import DEFAULT_CARD_TOKEN, FakeCcv
from tests.support.net import free_port

TERMINAL = Terminal(terminal_id="IM30-0001")
OTHER_CARD = "998765432109876543"


@pytest.fixture
async def fake_ccv(aiohttp_server: Any) -> FakeCcv:
    return await start_fake_ccv(aiohttp_server)


@pytest.fixture
async def hooks(aiohttp_server: Any) -> dict[str, Any]:
    """A webhook receiver: {"url", "received": [bodies]}."""
    received: list[Any] = []

    async def receive(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/webhooks/ccv", receive)
    server = await aiohttp_server(app)
    return {"url": f"http://{server.host}:{server.port}/webhooks/ccv", "received": received}


@pytest.fixture
async def ccv(fake_ccv: FakeCcv) -> AsyncIterator[CcvGateway]:
    gateway = CcvGateway(ccv_settings(fake_ccv), "BRL")
    yield gateway
    await gateway.close()


async def authorise(gw: CcvGateway, hooks: dict[str, Any], amount: int = 5000,
                    key: str = "s1:authorize", session_id: str = "s1") -> GatewayResult:
    return await gw.authorize_terminal(session_id=session_id, amount=amount, terminal=TERMINAL,
                                       webhook_url=hooks["url"], description="EV charging CP-1/1",
                                       idempotency_key=key)


async def approved(gw: CcvGateway, fake: FakeCcv, hooks: dict[str, Any],
                   amount: int = 5000) -> str:
    result = await authorise(gw, hooks, amount)
    await fake.settled()
    assert (await gw.fetch(charge_id=result.charge_id or "")).status == "authorized"
    return result.charge_id or ""


def basic(user: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:".encode()).decode()


def test_ccv_implements_the_port_and_the_terminal_extension(fake_ccv: FakeCcv) -> None:
    gateway = CcvGateway(ccv_settings(fake_ccv), "BRL")
    assert isinstance(gateway, PaymentGateway) and isinstance(gateway, TerminalGateway)


async def test_authorise_on_a_terminal_sends_the_documented_payment(
    ccv: CcvGateway, fake_ccv: FakeCcv, hooks: dict[str, Any]
) -> None:
    result = await authorise(ccv, hooks)
    assert result.success and not result.transient
    assert result.status == "pending" and result.amount == 5000
    assert result.charge_id and result.charge_id.startswith("TL")

    [request] = fake_ccv.requests
    assert request["method"] == "POST" and request["path"] == "/api/v1/payment"
    assert request["headers"]["Authorization"] == basic(API_KEY)
    assert request["headers"]["Idempotency-Reference"] == idempotency_reference("s1:authorize")
    assert request["body"] == {
        "transactionType": "authorise",
        "amount": "50.00",
        "currency": "brl",
        "method": "terminal",
        "webhookUrl": hooks["url"],
        "merchantOrderReference": "s1",
        "description": "EV charging CP-1/1",
        "details": {"terminalId": "IM30-0001", "managementSystemId": MANAGEMENT_SYSTEM_ID,
                    "accessProtocol": "OPI_NL", "operatingEnvironment": "UNATTENDED"},
    }


async def test_approved_authorisation_posts_a_webhook_and_fetch_says_authorized(
    ccv: CcvGateway, fake_ccv: FakeCcv, hooks: dict[str, Any]
) -> None:
    result = await authorise(ccv, hooks)
    await fake_ccv.settled()
    assert hooks["received"] == [{"id": result.charge_id}]

    fetched = await ccv.fetch(charge_id=result.charge_id or "")
    assert fetched.success and fetched.status == "authorized"
    assert fetched.amount == 5000 and fetched.charge_id == result.charge_id
    assert fetched.card_fingerprint == DEFAULT_CARD_TOKEN and fetched.card_last4 == "3456"
    get = fake_ccv.requests[-1]
    assert get["method"] == "GET" and get["path"] == "/api/v1/transaction"
    assert get["query"] == {"reference": result.charge_id}
    assert "Idempotency-Reference" not in get["headers"]


async def test_declined_authorisation(
    ccv: CcvGateway, fake_ccv: FakeCcv, hooks: dict[str, Any]
) -> None:
    fake_ccv.terminal(TERMINAL.terminal_id).queue("decline")
    result = await authorise(ccv, hooks)
    await fake_ccv.settled()
    assert hooks["received"] == [{"id": result.charge_id}]
    fetched = await ccv.fetch(charge_id=result.charge_id or "")
    assert not fetched.success and not fetched.transient
    assert fetched.status == "declined" and "rejected" in (fetched.error or "")


async def test_terminal_timeout_stays_pending_then_expires_as_declined(
    ccv: CcvGateway, fake_ccv: FakeCcv, hooks: dict[str, Any]
) -> None:
    fake_ccv.terminal(TERMINAL.terminal_id).queue("timeout")
    result = await authorise(ccv, hooks)
    await fake_ccv.settled()
    assert hooks["received"] == []
    assert (await ccv.fetch(charge_id=result.charge_id or "")).status == "pending"

    await fake_ccv.expire(result.charge_id or "")
    assert hooks["received"] == [{"id": result.charge_id}]
    fetched = await ccv.fetch(charge_id=result.charge_id or "")
    assert fetched.status == "declined" and "expired" in (fetched.error or "")


async def test_partial_capture(ccv: CcvGateway, fake_ccv: FakeCcv, hooks: dict[str, Any]) -> None:
    reference = await approved(ccv, fake_ccv, hooks)
    result = await ccv.capture(charge_id=reference, amount=1234, idempotency_key="s1:capture")
    assert result.success and result.status == "captured" and result.amount == 1234
    assert result.charge_id  # the capture's own reference: a refund names it
    assert fake_ccv.transactions[result.charge_id]["originalReference"] == reference
    assert result.raw["originalReference"] == reference and result.raw["type"] == "capture"
    request = fake_ccv.requests[-1]
    assert request["path"] == "/api/v1/capture"
    assert request["body"] == {"reference": reference, "amount": "12.34"}
    assert request["headers"]["Idempotency-Reference"] == idempotency_reference("s1:capture")


async def test_capture_above_the_hold_is_a_final_failure(
    ccv: CcvGateway, fake_ccv: FakeCcv, hooks: dict[str, Any]
) -> None:
    reference = await approved(ccv, fake_ccv, hooks)
    result = await ccv.capture(charge_id=reference, amount=5001, idempotency_key="s1:capture")
    assert not result.success and not result.transient and result.status == "failed"
    assert "HTTP 400" in (result.error or "")


async def test_release_reverses_the_authorisation(
    ccv: CcvGateway, fake_ccv: FakeCcv, hooks: dict[str, Any]
) -> None:
    reference = await approved(ccv, fake_ccv, hooks)
    result = await ccv.void(charge_id=reference, amount=None, idempotency_key="s1:void")
    assert result.success and result.status == "voided" and result.charge_id == reference
    request = fake_ccv.requests[-1]
    assert request["path"] == "/api/v1/reversal" and request["body"] == {"reference": reference}

    again = await ccv.void(charge_id=reference, amount=None, idempotency_key="s1:void:2")
    assert not again.success and not again.transient
    late = await ccv.capture(charge_id=reference, amount=100, idempotency_key="s1:capture")
    assert not late.success and not late.transient


async def test_refund_after_capture(
    ccv: CcvGateway, fake_ccv: FakeCcv, hooks: dict[str, Any]
) -> None:
    reference = await approved(ccv, fake_ccv, hooks)
    capture = await ccv.capture(charge_id=reference, amount=3000, idempotency_key="s1:capture")
    assert capture.charge_id and capture.charge_id != reference  # the capture's own
    assert fake_ccv.transactions[capture.charge_id]["type"] == "capture"
    refused = await ccv.refund(charge_id=reference, amount=1000, idempotency_key="s1:refund:a")
    assert not refused.success and not refused.transient  # an authorise is not refunded
    result = await ccv.refund(charge_id=capture.charge_id, amount=1000,
                              idempotency_key="s1:refund")
    assert result.success and result.status == "refunded" and result.amount == 1000
    request = fake_ccv.requests[-1]
    assert request["path"] == "/api/v1/refund"
    assert request["body"] == {"reference": capture.charge_id, "amount": "10.00"}

    over = await ccv.refund(charge_id=capture.charge_id, amount=2001,
                            idempotency_key="s1:refund:2")
    assert not over.success and not over.transient and "refund_limit" in (over.error or "")


async def test_card_token_of_the_card_presented_at_the_terminal(
    ccv: CcvGateway, fake_ccv: FakeCcv, hooks: dict[str, Any]
) -> None:
    fake_ccv.terminal(TERMINAL.terminal_id).queue("approve", OTHER_CARD)
    asked = await ccv.request_card_token(session_id="s1", terminal=TERMINAL,
                                         webhook_url=hooks["url"], idempotency_key="s1:token:1")
    assert asked.success and asked.status == "pending" and asked.reference
    request = fake_ccv.requests[-1]
    assert request["path"] == "/api/v1/token"
    assert request["headers"]["Idempotency-Reference"] == idempotency_reference("s1:token:1")
    assert request["body"]["method"] == "terminal"
    assert request["body"]["details"]["terminalId"] == "IM30-0001"

    await fake_ccv.settled()
    assert hooks["received"] == [{"id": asked.reference}]
    token = await ccv.fetch_card_token(reference=asked.reference)
    assert token.success and token.status == "success" and token.token == OTHER_CARD
    assert len(token.token) == 18 and token.token.startswith("99")

    fake_ccv.terminal(TERMINAL.terminal_id).queue("decline")
    refused = await ccv.request_card_token(session_id="s1", terminal=TERMINAL,
                                           webhook_url=hooks["url"], idempotency_key="s1:token:2")
    await fake_ccv.settled()
    result = await ccv.fetch_card_token(reference=refused.reference or "")
    assert not result.success and result.status == "failed" and result.token is None


async def test_same_key_replays_the_authorisation(
    ccv: CcvGateway, fake_ccv: FakeCcv, hooks: dict[str, Any]
) -> None:
    first = await authorise(ccv, hooks)
    second = await authorise(ccv, hooks)
    assert second.charge_id == first.charge_id
    assert fake_ccv.counts["payment"] == 1 and fake_ccv.counts["replays"] == 1
    other = await authorise(ccv, hooks, key="s2:authorize", session_id="s2")
    assert other.charge_id != first.charge_id and fake_ccv.counts["payment"] == 2


async def test_a_lost_capture_answer_is_transient_and_the_retry_captures_once(
    ccv: CcvGateway, fake_ccv: FakeCcv, hooks: dict[str, Any]
) -> None:
    reference = await approved(ccv, fake_ccv, hooks)
    fake_ccv.fail_next(1, 502, after_processing=True)
    lost = await ccv.capture(charge_id=reference, amount=2500, idempotency_key="s1:capture")
    assert not lost.success and lost.transient and lost.status == "failed"
    retry = await ccv.capture(charge_id=reference, amount=2500, idempotency_key="s1:capture")
    assert retry.success and retry.status == "captured" and retry.amount == 2500
    assert fake_ccv.counts["capture"] == 1 and fake_ccv.counts["replays"] == 1


async def test_5xx_is_transient(ccv: CcvGateway, fake_ccv: FakeCcv, hooks: dict[str, Any]) -> None:
    fake_ccv.fail_next(1, 503)
    result = await authorise(ccv, hooks)
    assert not result.success and result.transient and "HTTP 503" in (result.error or "")
    assert fake_ccv.counts["payment"] == 0
    assert (await authorise(ccv, hooks)).status == "pending"
    fake_ccv.fail_next(1, 500)
    assert (await ccv.fetch(charge_id="TLX")).transient


async def test_timeouts_and_network_errors_are_transient(
    fake_ccv: FakeCcv, hooks: dict[str, Any]
) -> None:
    slow = CcvGateway(ccv_settings(fake_ccv, timeout=0.2), "BRL")
    fake_ccv.delay = 1.0
    try:
        result = await authorise(slow, hooks)
    finally:
        await slow.close()
    assert not result.success and result.transient and "timeout" in (result.error or "")

    down = CcvGateway(ccv_settings(fake_ccv, base_url=f"http://127.0.0.1:{free_port()}"), "BRL")
    try:
        result = await down.capture(charge_id="TLX", amount=100, idempotency_key="k")
    finally:
        await down.close()
    assert not result.success and result.transient and "network" in (result.error or "")


async def test_a_wrong_api_key_is_a_final_failure(
    fake_ccv: FakeCcv, hooks: dict[str, Any]
) -> None:
    gateway = CcvGateway(ccv_settings(fake_ccv, api_key="t_wrong"), "BRL")
    try:
        result = await authorise(gateway, hooks)
    finally:
        await gateway.close()
    assert not result.success and not result.transient and "HTTP 401" in (result.error or "")
    assert fake_ccv.counts["unauthorized"] == 1


@pytest.mark.parametrize(("cents", "sent"), [(1, "0.01"), (1999, "19.99"), (100000, "1000.00"),
                                             (10, "0.10"), (123456789, "1234567.89")])
async def test_amounts_are_converted_exactly(
    ccv: CcvGateway, fake_ccv: FakeCcv, hooks: dict[str, Any], cents: int, sent: str
) -> None:
    result = await authorise(ccv, hooks, amount=cents)
    assert fake_ccv.requests[-1]["body"]["amount"] == sent
    assert fake_ccv.transactions[result.charge_id or ""]["amount"] == Decimal(sent)
    await fake_ccv.settled()
    fetched = await ccv.fetch(charge_id=result.charge_id or "")
    assert fetched.status == "authorized" and fetched.amount == cents
    capture = await ccv.capture(charge_id=result.charge_id or "", amount=cents,
                                idempotency_key="s1:capture")
    assert capture.status == "captured" and capture.amount == cents
    assert fake_ccv.requests[-1]["body"]["amount"] == sent


def test_amount_helpers() -> None:
    assert [ccv_amount(c) for c in (1, 1999, 100000)] == ["0.01", "19.99", "1000.00"]
    assert cents_from_ccv(0.01) == 1 and cents_from_ccv(19.99) == 1999
    assert cents_from_ccv("1000.00") == 100000 and cents_from_ccv(1000) == 100000
    with pytest.raises(ValueError):
        cents_from_ccv("0.001")
    with pytest.raises(ValueError):
        ccv_amount(True)  # type: ignore[arg-type]


def test_idempotency_reference_is_stable_and_short() -> None:
    long_key = "session-" + "x" * 80 + ":capture"
    assert idempotency_reference(long_key) == idempotency_reference(long_key)
    assert len(idempotency_reference(long_key)) <= 50
    assert idempotency_reference("a:capture") != idempotency_reference("a:void")


@pytest.mark.parametrize(("kind", "status", "expected"), [
    ("authorise", "pending", "pending"), ("authorise", "success", "authorized"),
    ("authorise", "failed", "declined"), ("authorise", "manualintervention", "pending"),
    ("capture", "success", "captured"), ("capture", "failed", "failed"),
    ("capture", "manualintervention", "failed"),
    ("reversal", "success", "voided"), ("refund", "success", "refunded"),
    ("sale", "success", "captured"),
])
def test_status_mapping(kind: str, status: str, expected: str) -> None:
    assert map_status({"type": kind, "status": status}) == expected


async def test_every_post_carries_basic_auth_and_an_idempotency_reference(
    ccv: CcvGateway, fake_ccv: FakeCcv, hooks: dict[str, Any], customer: Customer
) -> None:
    reference = await approved(ccv, fake_ccv, hooks)
    capture = await ccv.capture(charge_id=reference, amount=100, idempotency_key="s1:capture")
    assert capture.charge_id
    await ccv.refund(charge_id=capture.charge_id, amount=50, idempotency_key="s1:refund")
    await ccv.request_card_token(session_id="s1", terminal=TERMINAL, webhook_url=hooks["url"],
                                 idempotency_key="s1:token")
    assert len(fake_ccv.mutating_requests()) == 4
    assert fake_ccv.counts["no_idempotency"] == 0 and fake_ccv.counts["unauthorized"] == 0
    for request in fake_ccv.requests:
        assert request["headers"]["Authorization"] == basic(API_KEY)
    for request in fake_ccv.mutating_requests():
        assert 0 < len(request["headers"]["Idempotency-Reference"]) <= 50

    sent = len(fake_ccv.requests)
    refused = await ccv.authorize(session_id="s9", amount=100, customer=customer,
                                  card_token="tok", description="x", idempotency_key="s9:a")
    assert not refused.success and not refused.transient
    pix = await ccv.create_pix(session_id="s9", amount=100, customer=customer, expires_in=900,
                               description="x", idempotency_key="s9:p")
    assert not pix.success and len(fake_ccv.requests) == sent
