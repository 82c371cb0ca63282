"""PagarmeGateway against the fake Pagar.me V5 server over real HTTP."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from billing.gateways.base import Customer, GatewayResult, PaymentGateway
from billing.gateways.pagarme import PagarmeGateway, map_charge_status
from tests.support.fake_pagarme import FakePagarme
from tests.support.gateways import authorize as authorize_with
from tests.support.net import free_port
from tests.support.pagarme import SECRET_KEY, pagarme_settings
from tests.support.wallets import (
    apple_pay_payload,
    apple_pay_token,
    google_pay_payload,
    google_pay_token,
)


async def authorize(gw: PagarmeGateway, customer: Customer, key: str = "s1:authorize",
                    **kw: object) -> GatewayResult:
    return await authorize_with(gw, customer, key, **{"description": "EV charging EVSE-001",
                                                      **kw})


async def pix(gw: PagarmeGateway, customer: Customer, key: str = "s2:pix") -> GatewayResult:
    return await gw.create_pix(
        session_id="s2",
        amount=3000,
        customer=customer,
        expires_in=900,
        description="EV charging",
        idempotency_key=key,
    )


def test_pagarme_implements_the_port(fake_pagarme: FakePagarme) -> None:
    assert isinstance(PagarmeGateway(pagarme_settings(fake_pagarme)), PaymentGateway)


async def test_authorize_sends_a_documented_order(
    pagarme: PagarmeGateway, fake_pagarme: FakePagarme, customer: Customer
) -> None:
    result = await authorize(pagarme, customer)
    assert result.success and not result.transient
    assert result.status == "authorized" and result.amount == 5000
    assert (result.order_id or "").startswith("or_")
    assert (result.charge_id or "").startswith("ch_")
    assert result.raw["charges"][0]["last_transaction"]["status"] == "authorized_pending_capture"

    [request] = fake_pagarme.requests
    assert request["method"] == "POST" and request["path"] == "/core/v5/orders"
    assert request["headers"]["Idempotency-Key"] == "s1:authorize"
    body = request["body"]
    assert body["code"] == "s1" and body["closed"] is True
    assert body["customer"] == {
        "name": "Ana Souza",
        "email": "ana@example.com",
        "type": "individual",
        "document": "12345678909",
        "document_type": "CPF",
    }
    assert body["items"] == [
        {"amount": 5000, "description": "EV charging EVSE-001", "quantity": 1, "code": "s1"}
    ]
    assert body["payments"] == [
        {
            "payment_method": "credit_card",
            "credit_card": {
                "operation_type": "auth_only",
                "installments": 1,
                "statement_descriptor": "EV CHARGING",
                "card_token": "tok_123456789",
            },
        }
    ]


async def test_declined_card(
    pagarme: PagarmeGateway, fake_pagarme: FakePagarme, customer: Customer
) -> None:
    result = await authorize(pagarme, customer, card_token="tok_decline_stolen")
    assert not result.success and not result.transient
    assert result.status == "declined"
    assert result.error == "Transação recusada"
    assert result.charge_id is not None
    fetched = await pagarme.fetch(charge_id=result.charge_id)
    assert fetched.status == "declined" and not fetched.success


CARD = {"card_token": "tok_123456789"}
GOOGLE = {"card_token": None, "network_token": google_pay_token()}
APPLE = {"card_token": None, "network_token": json.dumps(apple_pay_token()["paymentData"])}
WALLET = {"card_token": None, "network_token": json.dumps(apple_pay_token())}
SENT_SOURCE = {
    "card": {"card_token": "tok_123456789"},
    "google": {"payload": google_pay_payload()},
    "apple": {"card": {"payload": apple_pay_payload()}},
    "wallet": {"card": {"payload": apple_pay_payload()}},
}


def sent_card(fake: FakePagarme) -> dict[str, Any]:
    [order] = [r for r in fake.requests if r["path"].endswith("/orders")][-1:]
    return order["body"]["payments"][0]["credit_card"]


@pytest.mark.parametrize("method", ["card", "google", "apple", "wallet"])
async def test_each_method_holds_captures_and_voids(
    pagarme: PagarmeGateway, fake_pagarme: FakePagarme, customer: Customer, method: str
) -> None:
    source = {"card": CARD, "google": GOOGLE, "apple": APPLE, "wallet": WALLET}[method]
    held = await authorize(pagarme, customer, f"{method}:auth", **source)
    assert held.success and held.status == "authorized" and held.card_reference is None
    assert sent_card(fake_pagarme) == {"operation_type": "auth_only", "installments": 1,
                                       "statement_descriptor": "EV CHARGING",
                                       **SENT_SOURCE[method]}
    captured = await pagarme.capture(charge_id=held.charge_id or "", amount=2052,
                                     idempotency_key=f"{method}:capture")
    assert captured.success and captured.status == "captured" and captured.captured_amount == 2052

    other = await authorize(pagarme, customer, f"{method}:auth-2", **source)
    voided = await pagarme.void(charge_id=other.charge_id or "", amount=None,
                                idempotency_key=f"{method}:void")
    assert voided.success and voided.status == "voided" and voided.amount == 5000


async def test_saving_a_card_uses_the_customer_cards_resource(
    pagarme: PagarmeGateway, fake_pagarme: FakePagarme, customer: Customer
) -> None:
    first = await authorize(pagarme, customer, "s:auth", save_card=True)
    assert first.success and first.status == "authorized"
    customer_id, card_id = (first.card_reference or "").split("/")
    created, card, order = fake_pagarme.mutating_requests()
    assert (created["path"], created["headers"]["Idempotency-Key"]) == (
        "/core/v5/customers", "s:auth:customer")
    assert created["body"] == {"name": "Ana Souza", "email": "ana@example.com",
                               "type": "individual", "document": "12345678909",
                               "document_type": "CPF"}
    assert (card["path"], card["body"]) == (f"/core/v5/customers/{customer_id}/cards",
                                            {"token": "tok_123456789"})
    assert card["headers"]["Idempotency-Key"] == "s:auth:card"
    assert order["body"]["customer_id"] == customer_id and "customer" not in order["body"]
    assert sent_card(fake_pagarme)["card_id"] == card_id == fake_pagarme.cards[card_id]["id"]

    # billing later charges the saved card (the driver starts with their RFID): hold, capture
    later = await authorize(pagarme, customer, "l:auth", card_token=None,
                            card_id=first.card_reference)
    assert later.success and later.status == "authorized" and later.card_reference is None
    assert fake_pagarme.mutating_requests()[-1]["body"]["customer_id"] == customer_id
    assert sent_card(fake_pagarme)["card_id"] == card_id
    captured = await pagarme.capture(charge_id=later.charge_id or "", amount=900,
                                     idempotency_key="l:capture")
    assert captured.status == "captured"
    again = await authorize(pagarme, customer, "v:auth", card_token=None,
                            card_id=first.card_reference)
    voided = await pagarme.void(charge_id=again.charge_id or "", amount=None,
                                idempotency_key="v:void")
    assert voided.status == "voided"
    assert fake_pagarme.counts["customers"] == 1 and fake_pagarme.counts["cards"] == 1

    # a retry with the same key creates neither the customer nor the card again
    retry = await authorize(pagarme, customer, "s:auth", save_card=True)
    assert retry.card_reference == first.card_reference
    assert fake_pagarme.counts["customers"] == 1 and fake_pagarme.counts["orders"] == 3


async def test_a_reference_saved_without_customer_is_sent_with_the_customer_object(
    pagarme: PagarmeGateway, fake_pagarme: FakePagarme, customer: Customer
) -> None:
    declined = await authorize(pagarme, customer, card_token=None, card_id="tok_decline_saved")
    assert declined.status == "declined"
    body = fake_pagarme.requests[-1]["body"]
    assert body["customer"]["document"] == "12345678909" and "customer_id" not in body
    assert body["payments"][0]["credit_card"]["card_id"] == "tok_decline_saved"


async def test_wallets_are_declined_by_test_signature_and_never_saved(
    pagarme: PagarmeGateway, fake_pagarme: FakePagarme, customer: Customer
) -> None:
    google = await authorize(pagarme, customer, "g", card_token=None,
                             network_token=google_pay_token("tok_decline_gpay"))
    apple = await authorize(pagarme, customer, "a", card_token=None,
                            network_token=json.dumps(apple_pay_token("tok_decline_apple")))
    assert google.status == apple.status == "declined"
    kept = await authorize(pagarme, customer, "k", save_card=True, **GOOGLE)
    assert kept.status == "authorized" and kept.card_reference is None
    assert fake_pagarme.counts["customers"] == 0


@pytest.mark.parametrize(("token", "error"), [
    ("tok_gpay", "not a Google Pay or Apple Pay payment token"),
    (google_pay_token().replace('"ECv2"', '"ECv1"'), "only ECv2"),
    ('{"paymentData": {"version": "EC_v1"}}', "not a wallet payment token"),
])
async def test_tokens_that_are_no_documented_wallet_token_are_refused(
    pagarme: PagarmeGateway, fake_pagarme: FakePagarme, customer: Customer, token: str,
    error: str,
) -> None:
    result = await authorize(pagarme, customer, card_token=None, network_token=token)
    assert not result.success and not result.transient and result.status == "failed"
    assert error in (result.error or "") and fake_pagarme.requests == []


async def test_apple_pay_needs_the_merchant_identifier(
    fake_pagarme: FakePagarme, customer: Customer
) -> None:
    gateway = PagarmeGateway(pagarme_settings(fake_pagarme, apple_pay_merchant_identifier=""))
    try:
        result = await authorize(gateway, customer, **APPLE)
    finally:
        await gateway.aclose()
    assert result.status == "failed" and "apple_pay_merchant_identifier" in (result.error or "")


def _order(credit_card: dict[str, Any], **body: Any) -> dict[str, Any]:
    return {"customer": {"name": "A", "email": "a@b.c", "document": "1", "type": "individual",
                         "document_type": "CPF"},
            "items": [{"amount": 100, "description": "x", "quantity": 1}],
            "payments": [{"payment_method": "credit_card", "credit_card": credit_card}], **body}


@pytest.mark.parametrize(("credit_card", "field"), [
    ({"payload": apple_pay_payload()}, "credit_card.payload.type"),
    ({"card": {"payload": google_pay_payload()}}, "credit_card.card.payload.type"),
    ({"payload": {"type": "google_pay", "google_pay": {
        **google_pay_payload()["google_pay"], "version": "ECv2"}}}, "google_pay.version"),
    ({"payload": {"type": "google_pay", "google_pay": {
        **google_pay_payload()["google_pay"], "data": None}}}, "google_pay.data"),
    ({"payload": {"type": "google_pay", "google_pay": {
        **google_pay_payload()["google_pay"], "protocolVersion": "ECv2"}}},
     "google_pay.protocolVersion"),
    ({"card": {"payload": {"type": "apple_pay", "apple_pay": {
        k: v for k, v in apple_pay_payload()["apple_pay"].items()
        if k != "merchant_identifier"}}}}, "apple_pay.merchant_identifier"),
    ({"card_token": "tok_1", "operation_type": "authorize"}, "credit_card.operation_type"),
    ({"card_token": "tok_1", "network_token": {"number": "4"}}, "credit_card"),
    ({"network_token": "tok_gpay"}, "credit_card.network_token"),
])
async def test_the_fake_refuses_shapes_the_docs_do_not_describe(
    fake_pagarme: FakePagarme, credit_card: dict[str, Any], field: str
) -> None:
    async with httpx.AsyncClient(auth=(SECRET_KEY, "")) as client:
        response = await client.post(fake_pagarme.base_url + "/orders", json=_order(credit_card),
                                     headers={"Idempotency-Key": "drift"})
    assert response.status_code == 422, response.text
    assert any(name.endswith(field) for name in response.json()["errors"]), response.json()


async def test_the_fake_refuses_a_card_of_another_customer(fake_pagarme: FakePagarme) -> None:
    async with httpx.AsyncClient(auth=(SECRET_KEY, ""), base_url=fake_pagarme.base_url) as c:
        keys = iter(f"k{i}" for i in range(10))

        async def post(path: str, body: dict[str, Any]) -> httpx.Response:
            return await c.post(path, json=body, headers={"Idempotency-Key": next(keys)})

        owner = _order({})["customer"]
        first = (await post("/customers", owner)).json()["id"]
        second = (await post("/customers", owner)).json()["id"]
        card = (await post(f"/customers/{first}/cards", {"token": "tok_1"})).json()["id"]
        order = _order({"card_id": card, "operation_type": "auth_only"})
        del order["customer"]
        assert (await post("/orders", {**order, "customer_id": first})).status_code == 200
        refused = await post("/orders", {**order, "customer_id": second})
        assert refused.status_code == 422 and "card_id" in refused.text
        assert (await post("/customers", {**owner, "type": "person"})).status_code == 422
        assert (await post(f"/customers/{first}/cards", {"number": "4"})).status_code == 422


async def test_partial_capture_and_over_capture(
    pagarme: PagarmeGateway, fake_pagarme: FakePagarme, customer: Customer
) -> None:
    auth = await authorize(pagarme, customer)
    charge_id = auth.charge_id or ""
    over = await pagarme.capture(charge_id=charge_id, amount=5001, idempotency_key="s1:cap-over")
    assert not over.success and not over.transient and over.status == "failed"
    assert over.error and "HTTP 422" in over.error
    assert "greater than the authorized 5000" in over.error
    assert fake_pagarme.counts["capture"] == 0

    captured = await pagarme.capture(charge_id=charge_id, amount=2052, idempotency_key="s1:capture")
    assert captured.success and captured.status == "captured"
    assert captured.amount == 2052 and captured.captured_amount == 2052
    assert captured.order_id == auth.order_id
    assert fake_pagarme.requests[-1]["body"] == {"amount": 2052}
    assert fake_pagarme.requests[-1]["path"] == f"/core/v5/charges/{charge_id}/capture"

    twice = await pagarme.capture(charge_id=charge_id, amount=100, idempotency_key="s1:capture-2")
    assert not twice.success and not twice.transient
    assert "HTTP 412" in (twice.error or "") and "can not be captured" in (twice.error or "")
    assert fake_pagarme.counts["capture"] == 1


async def test_void(pagarme: PagarmeGateway, fake_pagarme: FakePagarme, customer: Customer) -> None:
    auth = await authorize(pagarme, customer)
    charge_id = auth.charge_id or ""
    voided = await pagarme.void(charge_id=charge_id, amount=None, idempotency_key="s1:void")
    assert voided.success and voided.status == "voided" and voided.amount == 5000
    request = fake_pagarme.requests[-1]
    assert request["method"] == "DELETE" and request["path"] == f"/core/v5/charges/{charge_id}"
    fetched = await pagarme.fetch(charge_id=charge_id)
    assert fetched.status == "voided" and fetched.amount == 5000
    late = await pagarme.capture(charge_id=charge_id, amount=100, idempotency_key="s1:capture")
    assert not late.success and not late.transient


async def test_void_with_amount(
    pagarme: PagarmeGateway, fake_pagarme: FakePagarme, customer: Customer
) -> None:
    auth = await authorize(pagarme, customer)
    voided = await pagarme.void(charge_id=auth.charge_id or "", amount=5000, idempotency_key="v")
    assert voided.success and voided.status == "voided" and voided.amount == 5000
    assert fake_pagarme.requests[-1]["body"] == {"amount": 5000}


async def test_pix_create_fetch_after_paid_and_refunds(
    pagarme: PagarmeGateway, fake_pagarme: FakePagarme, customer: Customer
) -> None:
    created = await pix(pagarme, customer)
    assert created.success and created.status == "pending"
    assert (created.pix_qr_code or "").startswith("000201")
    assert (created.pix_qr_code_url or "").startswith("https://")
    assert created.pix_expires_at
    sent = fake_pagarme.requests[-1]["body"]["payments"]
    assert sent == [{"payment_method": "pix", "pix": {"expires_in": 900}}]
    charge_id = created.charge_id or ""
    assert (await pagarme.fetch(charge_id=charge_id)).status == "pending"

    webhook = fake_pagarme.webhook_body("charge.paid", charge_id)
    assert webhook["type"] == "charge.paid" and webhook["data"]["id"] == charge_id
    assert webhook["data"]["status"] == "pending"  # not paid yet: webhooks are hints
    fake_pagarme.mark_pix_paid(charge_id)
    assert fake_pagarme.webhook_body("charge.paid", charge_id)["data"]["status"] == "paid"
    paid = await pagarme.fetch(charge_id=charge_id)
    assert paid.success and paid.status == "paid" and paid.amount == 3000
    assert paid.refunded_amount == 0

    part = await pagarme.refund(charge_id=charge_id, amount=1000, idempotency_key="s2:refund")
    assert part.success and part.status == "partially_refunded"
    assert part.amount == 1000 and part.refunded_amount == 1000
    too_much = await pagarme.refund(charge_id=charge_id, amount=2001, idempotency_key="s2:r2")
    assert not too_much.success and not too_much.transient
    assert "refundable 2000" in (too_much.error or "")
    rest = await pagarme.refund(charge_id=charge_id, amount=2000, idempotency_key="s2:refund-2")
    assert rest.success and rest.status == "refunded" and rest.refunded_amount == 3000
    assert (await pagarme.fetch(charge_id=charge_id)).status == "refunded"


async def test_full_refund_of_a_captured_card(
    pagarme: PagarmeGateway, fake_pagarme: FakePagarme, customer: Customer
) -> None:
    auth = await authorize(pagarme, customer)
    charge_id = auth.charge_id or ""
    await pagarme.capture(charge_id=charge_id, amount=1500, idempotency_key="cap")
    refund = await pagarme.refund(charge_id=charge_id, amount=1500, idempotency_key="ref")
    assert refund.success and refund.status == "refunded"
    assert refund.captured_amount == 1500 and refund.refunded_amount == 1500


async def test_500_is_transient_and_retry_with_same_key_creates_one_order(
    pagarme: PagarmeGateway, fake_pagarme: FakePagarme, customer: Customer
) -> None:
    fake_pagarme.fail_next(1, status=500)
    first = await authorize(pagarme, customer, "s1:auth")
    assert not first.success and first.transient and first.status == "failed"
    assert first.amount == 5000 and "HTTP 500" in (first.error or "")
    assert fake_pagarme.counts["orders"] == 0

    retry = await authorize(pagarme, customer, "s1:auth")
    assert retry.success and retry.status == "authorized"
    assert fake_pagarme.counts["orders"] == 1
    keys = [r["headers"]["Idempotency-Key"] for r in fake_pagarme.requests]
    assert keys == ["s1:auth", "s1:auth"]


async def test_lost_response_then_retry_replays_without_second_effect(
    pagarme: PagarmeGateway, fake_pagarme: FakePagarme, customer: Customer
) -> None:
    fake_pagarme.fail_next(1, status=502, after_processing=True)
    lost = await authorize(pagarme, customer, "s1:auth")
    assert lost.transient and fake_pagarme.counts["orders"] == 1
    retry = await authorize(pagarme, customer, "s1:auth")
    assert retry.success and retry.status == "authorized"
    assert fake_pagarme.counts["orders"] == 1 and fake_pagarme.counts["replays"] == 1
    assert len(fake_pagarme.charges) == 1

    charge_id = retry.charge_id or ""
    fake_pagarme.fail_next(2, status=503, after_processing=True)
    assert (await pagarme.capture(charge_id=charge_id, amount=900, idempotency_key="c")).transient
    assert (await pagarme.capture(charge_id=charge_id, amount=900, idempotency_key="c")).transient
    done = await pagarme.capture(charge_id=charge_id, amount=900, idempotency_key="c")
    assert done.success and done.status == "captured" and done.captured_amount == 900
    assert fake_pagarme.counts["capture"] == 1

    fake_pagarme.fail_next(1, status=500, after_processing=True)
    assert (await pagarme.refund(charge_id=charge_id, amount=900, idempotency_key="r")).transient
    refund = await pagarme.refund(charge_id=charge_id, amount=900, idempotency_key="r")
    assert refund.success and refund.status == "refunded"
    assert fake_pagarme.counts["cancel"] == 1


async def test_rate_limit_is_transient(
    pagarme: PagarmeGateway, fake_pagarme: FakePagarme, customer: Customer
) -> None:
    fake_pagarme.fail_next(1, status=429)
    assert (await authorize(pagarme, customer)).transient


async def test_network_error_is_transient(customer: Customer, fake_pagarme: FakePagarme) -> None:
    settings = pagarme_settings(fake_pagarme,
                                base_url=f"http://127.0.0.1:{free_port()}/core/v5")
    gateway = PagarmeGateway(settings)
    try:
        result = await authorize(gateway, customer)
        assert not result.success and result.transient and result.status == "failed"
        assert result.amount == 5000 and "network error" in (result.error or "")
        fetched = await gateway.fetch(charge_id="ch_x")
        assert fetched.transient
    finally:
        await gateway.aclose()


async def test_timeout_is_transient(fake_pagarme: FakePagarme, customer: Customer) -> None:
    fake_pagarme.delay = 1.0
    gateway = PagarmeGateway(pagarme_settings(fake_pagarme, timeout=0.1))
    try:
        result = await authorize(gateway, customer)
        assert result.transient and "timeout" in (result.error or "")
    finally:
        await gateway.aclose()


async def test_wrong_secret_key_is_final(fake_pagarme: FakePagarme, customer: Customer) -> None:
    gateway = PagarmeGateway(pagarme_settings(fake_pagarme, secret_key="sk_test_wrong"))
    try:
        result = await authorize(gateway, customer)
    finally:
        await gateway.aclose()
    assert not result.success and not result.transient and result.status == "failed"
    assert "HTTP 401" in (result.error or "") and "denied" in (result.error or "")
    assert fake_pagarme.counts["unauthorized"] == 1 and fake_pagarme.counts["orders"] == 0


async def test_fake_requires_basic_auth(fake_pagarme: FakePagarme) -> None:
    url = fake_pagarme.base_url + "/charges/ch_x"
    async with httpx.AsyncClient() as client:
        assert (await client.get(url)).status_code == 401
        assert (await client.get(url, auth=(SECRET_KEY, "x"))).status_code == 401
        assert (await client.get(url, auth=(SECRET_KEY, ""))).status_code == 404


async def test_validation_error_text_names_the_fields(
    pagarme: PagarmeGateway, customer: Customer
) -> None:
    nameless = Customer(name="", email=customer.email, document=customer.document)
    result = await authorize(pagarme, nameless)
    assert not result.success and not result.transient
    assert result.error == (
        "HTTP 422: The request is invalid. (order.customer.name: The name field is required.)"
    )


async def test_unknown_charge_is_final(pagarme: PagarmeGateway) -> None:
    result = await pagarme.fetch(charge_id="ch_missing")
    assert not result.success and not result.transient and "HTTP 404" in (result.error or "")


async def test_shared_client_is_used_with_settings_auth(
    fake_pagarme: FakePagarme, customer: Customer
) -> None:
    async with httpx.AsyncClient() as client:
        gateway = PagarmeGateway(pagarme_settings(fake_pagarme), client=client)
        assert (await authorize(gateway, customer)).success
        await gateway.aclose()  # not ours: stays open
        assert not client.is_closed


async def test_every_post_and_delete_carries_an_idempotency_key(
    pagarme: PagarmeGateway, fake_pagarme: FakePagarme, customer: Customer
) -> None:
    auth = await authorize(pagarme, customer, "k-auth")
    await pagarme.capture(charge_id=auth.charge_id or "", amount=10, idempotency_key="k-cap")
    await pagarme.refund(charge_id=auth.charge_id or "", amount=10, idempotency_key="k-ref")
    other = await authorize(pagarme, customer, "k-auth-2")
    await pagarme.void(charge_id=other.charge_id or "", amount=None, idempotency_key="k-void")
    created = await pix(pagarme, customer, "k-pix")
    await pagarme.fetch(charge_id=created.charge_id or "")
    mutating = fake_pagarme.mutating_requests()
    assert [r["headers"].get("Idempotency-Key") for r in mutating] == [
        "k-auth",
        "k-cap",
        "k-ref",
        "k-auth-2",
        "k-void",
        "k-pix",
    ]
    gets = [r for r in fake_pagarme.requests if r["method"] == "GET"]
    assert gets and all("Idempotency-Key" not in r["headers"] for r in gets)


@pytest.mark.parametrize(
    ("charge", "status"),
    [
        (
            {
                "status": "pending",
                "payment_method": "credit_card",
                "last_transaction": {"status": "authorized_pending_capture"},
            },
            "authorized",
        ),
        (
            {
                "status": "failed",
                "payment_method": "credit_card",
                "last_transaction": {"status": "not_authorized"},
            },
            "declined",
        ),
        (
            {
                "status": "failed",
                "payment_method": "credit_card",
                "last_transaction": {"status": "with_error"},
            },
            "failed",
        ),
        ({"status": "failed", "payment_method": "pix", "last_transaction": {}}, "failed"),
        (
            {
                "status": "paid",
                "payment_method": "credit_card",
                "paid_amount": 10,
                "last_transaction": {"status": "partial_capture"},
            },
            "captured",
        ),
        ({"status": "paid", "payment_method": "pix", "paid_amount": 10}, "paid"),
        ({"status": "overpaid", "payment_method": "pix", "paid_amount": 12}, "paid"),
        (
            {"status": "paid", "payment_method": "pix", "paid_amount": 10, "canceled_amount": 4},
            "partially_refunded",
        ),
        (
            {
                "status": "canceled",
                "payment_method": "credit_card",
                "paid_amount": 10,
                "canceled_amount": 10,
            },
            "refunded",
        ),
        (
            {
                "status": "canceled",
                "payment_method": "credit_card",
                "paid_amount": 0,
                "canceled_amount": 50,
            },
            "voided",
        ),
        (
            {
                "status": "pending",
                "payment_method": "pix",
                "last_transaction": {"status": "waiting_payment"},
            },
            "pending",
        ),
        ({"status": "processing", "payment_method": "credit_card"}, "pending"),
        ({"status": "chargedback", "payment_method": "credit_card", "paid_amount": 10}, "refunded"),
    ],
)
def test_status_mapping(charge: dict[str, object], status: str) -> None:
    assert map_charge_status(charge) == status


async def test_authorize_reports_the_cards_last_four_digits(
    pagarme: PagarmeGateway, customer: Customer
) -> None:
    """`last_transaction.card.last_four_digits`: what the receipt shows of the card."""
    result = await authorize(pagarme, customer)
    assert result.card_last4 == "0010"
    assert (await pix(pagarme, customer)).card_last4 is None
