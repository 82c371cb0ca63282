"""The refund rules of `billing.payment` (what may still be refunded, REFUNDED vs
PARTIALLY_REFUNDED) on a real store, and the move tables refusing what they do not allow.

These assertions used to test the SQLite adapter's `begin_refund` / `settle_refund`, when the
adapter decided both in SQL. The rules now live in `billing.payment` and the adapter only
offers compare-and-set primitives (`begin_operation(at_version=)`, `settle_operation`), so the
same assertions run here, against the rules plus the adapter; the concurrency tests still use
two connections to one file. A MongoDB adapter runs `RefundRules` the way it runs
`BillingStoreContract`.
"""

from __future__ import annotations

import asyncio

import pytest

from billing.models import Method, OperationStatus, OperationType, PaymentStatus, SessionStatus
from billing.payment import (
    PAYMENT_MOVES,
    SESSION_MOVES,
    IllegalMove,
    begin_refund,
    move_payment,
    move_session,
    settle_refund,
)
from billing.store.ports import BillingStore
from tests.billing.store_contract import StoreFactory, add, opened

S = SessionStatus
P = PaymentStatus
Op = OperationType


class RefundRules:
    """Refund limits and refund outcomes, decided by billing.payment, applied by a store."""

    async def test_begin_refund_keeps_within_the_limit(self, store: BillingStore) -> None:
        await add(store, 1, method=Method.PIX, payment_status=P.PAID, authorized_amount=1000)
        await store.begin_operation("S1", Op.CHARGE, 1000, "S1:CHARGE")  # not a refund
        first, created = await begin_refund(store, "S1", 400, "S1:R1", 1000, charge_id="ch_1")
        assert created and first is not None
        assert (first.type, first.status, first.amount, first.seq) == (
            Op.REFUND,
            OperationStatus.PENDING,
            400,
            2,
        )
        assert (first.idempotency_key, first.charge_id) == ("S1:R1", "ch_1")
        assert await store.get_operation("S1:R1") == first
        second, created = await begin_refund(store, "S1", 600, "S1:R2", 1000)
        assert created and second is not None and second.seq == 3  # exactly up to the limit
        assert await begin_refund(store, "S1", 1, "S1:R3", 1000) == (None, False)
        assert await store.get_operation("S1:R3") is None
        # an existing key wins, whatever amount or limit is asked now
        assert await begin_refund(store, "S1", 999, "S1:R1", 0) == (first, False)
        # a FAILED refund frees its share; PENDING and SUCCEEDED ones hold theirs
        await store.finish_operation("S1:R1", OperationStatus.SUCCEEDED)
        await store.finish_operation("S1:R2", OperationStatus.FAILED, error="declined")
        assert await begin_refund(store, "S1", 601, "S1:R4", 1000) == (None, False)
        third, created = await begin_refund(store, "S1", 600, "S1:R5", 1000)
        assert created and third is not None and third.seq == 4
        assert len(await store.list_operations("S1")) == 4

    async def test_begin_refund_limit_is_per_session(self, store: BillingStore) -> None:
        await add(store, 1)
        await add(store, 2)
        assert (await begin_refund(store, "S1", 500, "S1:R1", 500))[1]
        assert (await begin_refund(store, "S2", 500, "S2:R1", 500))[1]
        assert await begin_refund(store, "S1", 1, "S1:R2", 500) == (None, False)

    async def test_begin_refund_refuses_bad_input(self, store: BillingStore) -> None:
        await add(store, 1)
        for amount in (0, -5, 12.5, True):
            with pytest.raises(ValueError):
                await begin_refund(store, "S1", amount, "S1:R", 1000)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await begin_refund(store, "nope", 100, "nope:R", 1000)
        assert await store.list_operations("S1") == []

    async def test_concurrent_begin_refunds_stop_at_the_limit(
        self, store_factory: StoreFactory
    ) -> None:
        async with opened(store_factory) as first, opened(store_factory) as second:
            await add(first, 1, payment_status=P.CAPTURED, captured_amount=1000)
            results = await asyncio.gather(
                *(
                    begin_refund(first if n % 2 else second, "S1", 100, f"S1:R{n}", 1000)
                    for n in range(20)
                )
            )
            made = [op for op, created in results if created]
            assert len(made) == 10
            assert all(op is not None for op in made)
            assert all(r == (None, False) for r in results if not r[1])
            ops = await second.list_operations("S1")
            assert sorted(op.seq for op in ops) == list(range(1, 11))
            assert sum(op.amount for op in ops) == 1000

    async def test_concurrent_begin_refunds_of_mixed_amounts_fit(
        self, store_factory: StoreFactory
    ) -> None:
        async with opened(store_factory) as first, opened(store_factory) as second:
            await add(first, 1)
            amounts = [300, 700, 250, 50, 400, 120, 999, 1, 80, 600]
            results = await asyncio.gather(
                *(
                    begin_refund(first if n % 2 else second, "S1", amount, f"S1:R{n}", 1000)
                    for n, amount in enumerate(amounts)
                )
            )
            accepted = sum(op.amount for op, created in results if created and op is not None)
            assert accepted <= 1000
            recorded = await first.list_operations("S1")
            assert sum(op.amount for op in recorded) == accepted
            # every refusal was right when it was made, so it is still right at the end
            for (op, created), amount in zip(results, amounts, strict=True):
                if not created:
                    assert op is None and accepted + amount > 1000

    async def test_settle_refund_card_counts_against_the_capture(self, store: BillingStore) -> None:
        await add(
            store,
            1,
            method=Method.CREDIT_CARD,
            payment_status=P.CAPTURED,
            authorized_amount=5000,
            captured_amount=1200,
        )
        await begin_refund(store, "S1", 700, "S1:R1", 1200)
        settled = await settle_refund(store, "S1:R1", raw={"id": "rf_1"})
        assert settled is not None
        assert (settled.payment_status, settled.refunded_amount) == (P.PARTIALLY_REFUNDED, 700)
        assert await store.get_session("S1") == settled
        op = await store.get_operation("S1:R1")
        assert op is not None
        assert (op.status, op.raw) == (OperationStatus.SUCCEEDED, {"id": "rf_1"})
        # settling again changes nothing
        assert await settle_refund(store, "S1:R1") is None
        assert await store.get_session("S1") == settled
        await begin_refund(store, "S1", 500, "S1:R2", 1200)
        done = await settle_refund(store, "S1:R2")
        assert done is not None
        assert (done.payment_status, done.refunded_amount) == (P.REFUNDED, 1200)
        assert done.captured_amount == 1200 and done.authorized_amount == 5000

    async def test_settle_refund_pix_counts_against_what_was_paid(
        self, store: BillingStore
    ) -> None:
        # PIX: 5000 paid upfront, 1200 charged for the energy; paid = 5000, not the 1200
        await add(
            store,
            1,
            method=Method.PIX,
            payment_status=P.PAID,
            authorized_amount=5000,
            captured_amount=1200,
        )
        await begin_refund(store, "S1", 1200, "S1:R1", 5000)
        partial = await settle_refund(store, "S1:R1")
        assert partial is not None
        assert (partial.payment_status, partial.refunded_amount) == (P.PARTIALLY_REFUNDED, 1200)
        await begin_refund(store, "S1", 3800, "S1:R2", 5000)
        full = await settle_refund(store, "S1:R2")
        assert full is not None
        assert (full.payment_status, full.refunded_amount) == (P.REFUNDED, 5000)

    async def test_settle_refund_wallet_is_a_card(self, store: BillingStore) -> None:
        await add(
            store,
            1,
            method=Method.GOOGLE_PAY,
            payment_status=P.CAPTURED,
            authorized_amount=5000,
            captured_amount=1200,
        )
        await begin_refund(store, "S1", 1200, "S1:R1", 1200)
        full = await settle_refund(store, "S1:R1")
        assert full is not None and full.payment_status is P.REFUNDED

    async def test_settle_refund_only_a_pending_refund(self, store: BillingStore) -> None:
        await add(store, 1, payment_status=P.AUTHORIZED, authorized_amount=5000)
        stored = await store.get_session("S1")
        await store.begin_operation("S1", Op.CAPTURE, 1200, "S1:CAPTURE")
        assert await settle_refund(store, "S1:CAPTURE") is None  # not a refund
        assert await store.get_session("S1") == stored
        capture = await store.get_operation("S1:CAPTURE")
        assert capture is not None and capture.status is OperationStatus.PENDING
        await begin_refund(store, "S1", 100, "S1:R1", 5000)
        await store.finish_operation("S1:R1", OperationStatus.FAILED, error="declined")
        stored = await store.get_session("S1")  # recording the refund bumped its version
        assert await settle_refund(store, "S1:R1") is None  # failed
        assert await settle_refund(store, "nope") is None
        assert await store.get_session("S1") == stored

    async def test_concurrent_settles_count_once(self, store_factory: StoreFactory) -> None:
        async with opened(store_factory) as first, opened(store_factory) as second:
            await add(first, 1, payment_status=P.CAPTURED, captured_amount=2000)
            await begin_refund(first, "S1", 500, "S1:R1", 2000)
            results = await asyncio.gather(
                *(
                    settle_refund(first if n % 2 else second, "S1:R1", raw={"n": n})
                    for n in range(20)
                )
            )
            winners = [r for r in results if r is not None]
            assert len(winners) == 1
            stored = await second.get_session("S1")
            assert stored == winners[0]
            assert stored is not None
            assert (stored.refunded_amount, stored.payment_status) == (500, P.PARTIALLY_REFUNDED)

    async def test_reopen_operation(self, store: BillingStore) -> None:
        await add(store, 1)
        await begin_refund(store, "S1", 300, "S1:R1", 500)
        assert await store.reopen_operation("S1:R1") is None  # pending
        failed = await store.finish_operation("S1:R1", OperationStatus.FAILED, error="timeout")
        assert failed is not None
        # while FAILED it does not count, so another refund may take the room...
        assert (await begin_refund(store, "S1", 200, "S1:R2", 500))[1]
        reopened = await store.reopen_operation("S1:R1")
        assert reopened is not None
        assert (reopened.status, reopened.error) == (OperationStatus.PENDING, "timeout")
        assert (reopened.seq, reopened.amount) == (failed.seq, 300)
        assert await store.get_operation("S1:R1") == reopened
        assert await store.reopen_operation("S1:R1") is None  # pending again
        # ...and once reopened it counts again
        assert await begin_refund(store, "S1", 1, "S1:R3", 500) == (None, False)
        await store.finish_operation("S1:R1", OperationStatus.SUCCEEDED)
        assert await store.reopen_operation("S1:R1") is None  # succeeded stays succeeded
        assert await store.reopen_operation("nope") is None

    async def test_reopened_refund_settles(self, store: BillingStore) -> None:
        await add(store, 1, payment_status=P.CAPTURED, captured_amount=300)
        await begin_refund(store, "S1", 300, "S1:R1", 300)
        await store.finish_operation("S1:R1", OperationStatus.FAILED, error="timeout")
        await store.reopen_operation("S1:R1")
        settled = await settle_refund(store, "S1:R1")
        assert settled is not None and settled.payment_status is P.REFUNDED
        op = await store.get_operation("S1:R1")
        assert op is not None and (op.status, op.error) == (OperationStatus.SUCCEEDED, None)


class TestRefundRulesOnSqlite(RefundRules):
    pass


async def test_a_move_outside_the_tables_never_reaches_the_store(store: BillingStore) -> None:
    await add(store, 1, status=S.COMPLETED, payment_status=P.CAPTURED, captured_amount=900)
    stored = await store.get_session("S1")
    with pytest.raises(IllegalMove):
        await move_session(store, "S1", {S.COMPLETED}, S.CHARGING)
    with pytest.raises(IllegalMove):
        await move_payment(store, "S1", {P.CAPTURED}, P.AUTHORIZED)
    with pytest.raises(IllegalMove):  # one bad source spoils the move
        await move_payment(store, "S1", {P.AUTHORIZED, P.VOIDED}, P.CAPTURED)
    assert await store.get_session("S1") == stored


async def test_allowed_moves_are_compare_and_set(store: BillingStore) -> None:
    await add(store, 1, status=S.CHARGING, payment_status=P.AUTHORIZED, authorized_amount=500)
    moved = await move_session(store, "S1", {S.CHARGING}, S.STOPPING)
    assert moved is not None and moved.status is S.STOPPING
    assert await move_session(store, "S1", {S.CHARGING}, S.STOPPING) is None  # moved already
    captured = await move_payment(store, "S1", {P.AUTHORIZED}, P.CAPTURED, captured_amount=400)
    assert captured is not None and captured.captured_amount == 400


def test_terminal_statuses_have_no_way_out() -> None:
    for status in (S.COMPLETED, S.CANCELED, S.FAILED):
        assert SESSION_MOVES[status] == frozenset()
    for status in (P.VOIDED, P.REFUNDED, P.FAILED, P.WAIVED):
        assert PAYMENT_MOVES[status] == frozenset()
