"""The sandbox gateway with both stores: rules, invalid moves, idempotency, persistence."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from billing.gateways.base import Customer, GatewayResult, PaymentGateway
from billing.gateways.sandbox import (
    InMemorySandboxChargeStore,
    SandboxChargeStore,
    SandboxGateway,
    SqliteSandboxChargeStore,
)
from tests.support.gateways import authorize
from tests.support.wallets import apple_pay_token, google_pay_token


def test_sandbox_implements_the_port() -> None:
    assert isinstance(SandboxGateway(), PaymentGateway)
    assert SandboxGateway().name == "sandbox"


async def test_authorize_approves_and_ids_look_right(
    sandbox: SandboxGateway, customer: Customer
) -> None:
    result = await authorize(sandbox, customer)
    assert result.success and not result.transient and result.error is None
    assert result.status == "authorized"
    assert result.amount == 5000
    assert re.fullmatch(r"ch_[0-9a-f]{16}", result.charge_id or "")
    assert re.fullmatch(r"or_[0-9a-f]{16}", result.order_id or "")
    assert result.card_reference is None
    assert (await sandbox.fetch(charge_id=result.charge_id or "")).status == "authorized"


@pytest.mark.parametrize("field", ["card_token", "network_token"])
async def test_decline_tokens_are_declined(
    sandbox: SandboxGateway, customer: Customer, field: str
) -> None:
    kwargs = {"card_token": None, field: "tok_decline_insufficient_funds"}
    result = await authorize(sandbox, customer, **kwargs)
    assert not result.success and not result.transient
    assert result.status == "declined"
    assert result.error
    fetched = await sandbox.fetch(charge_id=result.charge_id or "")
    assert fetched.status == "declined" and not fetched.success


async def test_network_token_and_saved_card(sandbox: SandboxGateway, customer: Customer) -> None:
    wallet = await authorize(
        sandbox, customer, "w", card_token=None, network_token="tok_wallet", save_card=True
    )
    assert wallet.status == "authorized"
    assert re.fullmatch(r"card_[0-9a-f]{16}", wallet.card_reference or "")
    again = await authorize(sandbox, customer, "c", card_token=None, card_id=wallet.card_reference)
    assert again.status == "authorized"


async def test_authorize_needs_exactly_one_card_source(
    sandbox: SandboxGateway, customer: Customer
) -> None:
    none = await authorize(sandbox, customer, card_token=None)
    both = await authorize(sandbox, customer, network_token="tok_x")
    for result in (none, both):
        assert not result.success and not result.transient and result.status == "failed"
        assert "exactly one" in (result.error or "")


async def test_partial_capture_then_refund_rules(
    sandbox: SandboxGateway, customer: Customer
) -> None:
    auth = await authorize(sandbox, customer)
    charge_id = auth.charge_id or ""
    over = await sandbox.capture(charge_id=charge_id, amount=5001, idempotency_key="cap-over")
    assert not over.success and not over.transient and over.status == "failed"
    assert "5000" in (over.error or "")

    captured = await sandbox.capture(charge_id=charge_id, amount=2052, idempotency_key="cap")
    assert captured.success and captured.status == "captured"
    assert captured.amount == 2052 and captured.captured_amount == 2052

    second = await sandbox.capture(charge_id=charge_id, amount=100, idempotency_key="cap-2")
    assert not second.success and "captured" in (second.error or "")
    void = await sandbox.void(charge_id=charge_id, amount=None, idempotency_key="void")
    assert not void.success and "not authorized" in (void.error or "")

    too_much = await sandbox.refund(charge_id=charge_id, amount=2053, idempotency_key="r0")
    assert not too_much.success and "2052" in (too_much.error or "")
    part = await sandbox.refund(charge_id=charge_id, amount=52, idempotency_key="r1")
    assert part.status == "partially_refunded" and part.refunded_amount == 52
    rest = await sandbox.refund(charge_id=charge_id, amount=2000, idempotency_key="r2")
    assert rest.status == "refunded" and rest.refunded_amount == 2052
    more = await sandbox.refund(charge_id=charge_id, amount=1, idempotency_key="r3")
    assert not more.success and not more.transient


async def test_void_releases_the_hold(sandbox: SandboxGateway, customer: Customer) -> None:
    auth = await authorize(sandbox, customer)
    charge_id = auth.charge_id or ""
    voided = await sandbox.void(charge_id=charge_id, amount=None, idempotency_key="void")
    assert voided.success and voided.status == "voided" and voided.amount == 5000
    late = await sandbox.capture(charge_id=charge_id, amount=10, idempotency_key="cap")
    assert not late.success and "voided" in (late.error or "")
    refund = await sandbox.refund(charge_id=charge_id, amount=10, idempotency_key="ref")
    assert not refund.success and not refund.transient


async def test_declined_charge_allows_no_moves(sandbox: SandboxGateway, customer: Customer) -> None:
    declined = await authorize(sandbox, customer, card_token="tok_decline")
    charge_id = declined.charge_id or ""
    for result in (
        await sandbox.capture(charge_id=charge_id, amount=10, idempotency_key="a"),
        await sandbox.void(charge_id=charge_id, amount=None, idempotency_key="b"),
        await sandbox.refund(charge_id=charge_id, amount=10, idempotency_key="c"),
    ):
        assert not result.success and not result.transient and result.status == "failed"


async def test_unknown_charge(sandbox: SandboxGateway) -> None:
    result = await sandbox.capture(charge_id="ch_nope", amount=1, idempotency_key="k")
    assert not result.success and not result.transient and "not found" in (result.error or "")
    assert not (await sandbox.fetch(charge_id="ch_nope")).success


async def test_pix_pending_until_paid_then_refundable(
    sandbox: SandboxGateway, customer: Customer
) -> None:
    pix = await sandbox.create_pix(
        session_id="s2",
        amount=3000,
        customer=customer,
        expires_in=900,
        description="EV charging",
        idempotency_key="s2:pix",
    )
    assert pix.success and pix.status == "pending"
    assert pix.pix_qr_code and pix.pix_qr_code.startswith("000201")
    assert pix.pix_qr_code_url and pix.pix_qr_code_url.startswith("https://")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", pix.pix_expires_at or "")
    charge_id = pix.charge_id or ""

    early = await sandbox.refund(charge_id=charge_id, amount=100, idempotency_key="early")
    assert not early.success
    assert not (await sandbox.capture(charge_id=charge_id, amount=1, idempotency_key="x")).success

    paid = await sandbox.mark_pix_paid(charge_id)
    assert paid.status == "paid"
    assert (await sandbox.mark_pix_paid(charge_id)).status == "paid"  # webhook delivered twice
    assert (await sandbox.fetch(charge_id=charge_id)).status == "paid"

    refund = await sandbox.refund(charge_id=charge_id, amount=1000, idempotency_key="s2:refund")
    assert refund.status == "partially_refunded" and refund.refunded_amount == 1000


async def test_mark_pix_paid_rejects_card_charges(
    sandbox: SandboxGateway, customer: Customer
) -> None:
    auth = await authorize(sandbox, customer)
    assert not (await sandbox.mark_pix_paid(auth.charge_id or "")).success
    assert not (await sandbox.mark_pix_paid("ch_unknown")).success


async def test_same_key_same_result_no_second_effect(
    sandbox: SandboxGateway, customer: Customer
) -> None:
    first = await authorize(sandbox, customer, "s1:auth")
    replay = await authorize(sandbox, customer, "s1:auth")
    assert replay == first
    other = await authorize(sandbox, customer, "s1:auth-2")
    assert other.charge_id != first.charge_id
    charge_id = first.charge_id or ""

    cap = await sandbox.capture(charge_id=charge_id, amount=1200, idempotency_key="s1:capture")
    cap_again = await sandbox.capture(
        charge_id=charge_id, amount=1200, idempotency_key="s1:capture"
    )
    assert cap_again == cap and cap.success
    # A replayed authorize still answers with the first result, not the current state.
    assert (await authorize(sandbox, customer, "s1:auth")).status == "authorized"

    ref = await sandbox.refund(charge_id=charge_id, amount=200, idempotency_key="s1:refund")
    ref_again = await sandbox.refund(charge_id=charge_id, amount=200, idempotency_key="s1:refund")
    assert ref_again == ref
    state = await sandbox.fetch(charge_id=charge_id)
    assert state.refunded_amount == 200 and state.captured_amount == 1200


async def test_concurrent_captures_apply_once(sandbox: SandboxGateway, customer: Customer) -> None:
    auth = await authorize(sandbox, customer)
    charge_id = auth.charge_id or ""
    results = await asyncio.gather(
        *(
            sandbox.capture(charge_id=charge_id, amount=100 + i, idempotency_key=f"cap-{i}")
            for i in range(5)
        )
    )
    assert sum(r.success for r in results) == 1
    same_key = await asyncio.gather(
        *(sandbox.refund(charge_id=charge_id, amount=10, idempotency_key="ref") for _ in range(5))
    )
    assert all(r == same_key[0] for r in same_key) and same_key[0].success
    assert (await sandbox.fetch(charge_id=charge_id)).refunded_amount == 10


async def test_concurrent_partial_refunds_never_exceed_paid(
    sandbox: SandboxGateway, customer: Customer
) -> None:
    auth = await authorize(sandbox, customer)
    charge_id = auth.charge_id or ""
    await sandbox.capture(charge_id=charge_id, amount=1000, idempotency_key="cap")
    results = await asyncio.gather(
        *(
            sandbox.refund(charge_id=charge_id, amount=300, idempotency_key=f"r{i}")
            for i in range(5)
        )
    )
    assert sum(r.success for r in results) == 3
    assert (await sandbox.fetch(charge_id=charge_id)).refunded_amount == 900


async def test_store_contract(sandbox_store: SandboxChargeStore) -> None:
    charge = {"id": "ch_1", "status": "authorized", "amount": 10}
    stored = await sandbox_store.put_if_absent("k1", charge)
    assert stored["version"] == 1
    again = await sandbox_store.put_if_absent("k1", {"id": "ch_2", "status": "authorized"})
    assert again["id"] == "ch_1"
    assert await sandbox_store.get("ch_2") is None
    assert await sandbox_store.update("ch_1", "captured", {"status": "voided"}) is None
    assert (
        await sandbox_store.update("ch_1", "authorized", {"status": "voided"}, expected_version=7)
        is None
    )
    updated = await sandbox_store.update("ch_1", "authorized", {"status": "voided"})
    assert updated is not None and updated["status"] == "voided" and updated["version"] == 2
    assert (await sandbox_store.get("ch_1")) == updated
    assert await sandbox_store.update("missing", "authorized", {}) is None


async def test_sqlite_store_survives_restart(tmp_path: Path, customer: Customer) -> None:
    path = tmp_path / "data" / "sandbox.db"
    async with SqliteSandboxChargeStore(path) as store:
        gateway = SandboxGateway(store)
        auth = await authorize(gateway, customer, "s9:auth")
        captured = await gateway.capture(
            charge_id=auth.charge_id or "", amount=700, idempotency_key="s9:capture"
        )
        pix = await gateway.create_pix(
            session_id="s9",
            amount=900,
            customer=customer,
            expires_in=60,
            description="EV",
            idempotency_key="s9:pix",
        )

    async with SqliteSandboxChargeStore(path) as store:
        gateway = SandboxGateway(store)
        assert (await authorize(gateway, customer, "s9:auth")) == auth
        replay = await gateway.capture(
            charge_id=auth.charge_id or "", amount=700, idempotency_key="s9:capture"
        )
        assert replay == captured
        state = await gateway.fetch(charge_id=auth.charge_id or "")
        assert state.status == "captured" and state.captured_amount == 700
        assert (await gateway.mark_pix_paid(pix.charge_id or "")).status == "paid"
        journal = await (await store._conn()).execute_fetchall("PRAGMA journal_mode")
        assert journal[0][0] == "wal"

    async with SqliteSandboxChargeStore(path) as store:
        state = await SandboxGateway(store).fetch(charge_id=pix.charge_id or "")
        assert state.status == "paid"


async def test_invalid_amounts(customer: Customer) -> None:
    gateway = SandboxGateway(InMemorySandboxChargeStore())
    assert not (await authorize(gateway, customer, amount=0)).success
    assert not (await authorize(gateway, customer, amount=12.5)).success
    pix = await gateway.create_pix(
        session_id="s",
        amount=100,
        customer=customer,
        expires_in=0,
        description="d",
        idempotency_key="k",
    )
    assert not pix.success and "expires_in" in (pix.error or "")
    auth = await authorize(gateway, customer)
    bad = await gateway.capture(charge_id=auth.charge_id or "", amount=-5, idempotency_key="c")
    assert not bad.success and not bad.transient


def test_gateway_result_rejects_unknown_status() -> None:
    with pytest.raises(ValueError):
        GatewayResult(success=True, status="done", amount=1)  # type: ignore[arg-type]
    result = GatewayResult(success=True, status="paid", amount=1, raw={"a": 1})
    assert GatewayResult.from_dict(result.to_dict()) == result


async def test_wallet_tokens_follow_the_test_token_rule(
    sandbox: SandboxGateway, customer: Customer
) -> None:
    ok = await authorize(sandbox, customer, "g", card_token=None,
                         network_token=google_pay_token(), save_card=True)
    assert ok.status == "authorized" and ok.card_reference is None  # a device token: not kept
    declined = await authorize(sandbox, customer, "a", card_token=None,
                               network_token=json.dumps(apple_pay_token("tok_decline_x")))
    assert declined.status == "declined"
    broken = await authorize(sandbox, customer, "b", card_token=None, network_token='{"x": 1}')
    assert broken.status == "failed" and "wallet payment token" in (broken.error or "")
