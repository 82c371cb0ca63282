"""Backend-independent contract of the billing store port (`billing.store.BillingStore`).

A backend runs it by subclassing `BillingStoreContract` in its own test module and providing two
fixtures:

- `store_factory`: a callable returning a NEW, not yet opened store on one shared, initially
  empty database (calling it twice gives two connections to the same data);
- `store`: `store_factory()` opened (and closed afterwards).

    class TestMongoBillingStore(BillingStoreContract):
        pass

Timestamps here have millisecond precision, the finest every backend keeps (BSON dates).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from billing.models import (
    Method,
    OperationStatus,
    OperationType,
    PaymentStatus,
    SavedCard,
    Session,
    SessionStatus,
)
from billing.store import BillingStore

T0 = datetime(2026, 3, 1, 10, 0, 0, 123000, tzinfo=UTC)
S = SessionStatus
P = PaymentStatus
Op = OperationType
StoreFactory = Callable[[], BillingStore]


def at(seconds: float) -> datetime:
    """T0 plus `seconds` (millisecond precision)."""
    return T0 + timedelta(milliseconds=round(seconds * 1000))


def assert_utc(moment: datetime | None) -> None:
    assert moment is not None
    assert moment.utcoffset() == timedelta(0), moment


def make_session(n: int = 1, **overrides: Any) -> Session:
    """A card session `S<n>` on station CP1, created at at(n)."""
    values: dict[str, Any] = {
        "session_id": f"S{n}",
        "station_id": "CP1",
        "connector_id": 1,
        "method": Method.CREDIT_CARD,
        "id_tag": f"TAG{n}",
        "requested_amount": 5000,
        "email": "driver@example.com",
        "cpf": "12345678909",
        "currency": "BRL",
        "price_per_kwh": "1.50",
        "fixed_connection_fee": "2.00",
        "status": S.AUTHORIZED,
        "created_at": at(n),
        "updated_at": at(n),
    }
    values.update(overrides)
    return Session(**values)


async def add(store: BillingStore, n: int = 1, **overrides: Any) -> Session:
    session = make_session(n, **overrides)
    await store.create_session(session)
    return session


@asynccontextmanager
async def opened(factory: StoreFactory) -> AsyncIterator[BillingStore]:
    store = factory()
    await store.open()
    try:
        yield store
    finally:
        await store.close()


class BillingStoreContract:
    """Tests every backend of the billing store port must pass."""

    # lifecycle ----------------------------------------------------------------------------------

    async def test_open_is_idempotent(self, store: BillingStore) -> None:
        await store.open()
        assert await store.list_sessions() == []

    async def test_data_survives_close_and_reopen(self, store_factory: StoreFactory) -> None:
        async with opened(store_factory) as store:
            await add(store, 1)
            await store.transition_payment(
                "S1", [P.PENDING], P.AUTHORIZED, authorized_amount=5000, charge_id="ch_1"
            )
            await store.begin_operation("S1", Op.AUTHORIZE, 5000, "S1:AUTHORIZE")
            await store.finish_operation("S1:AUTHORIZE", OperationStatus.SUCCEEDED, raw={"a": 1})
            await store.begin_operation("S1", Op.CAPTURE, 1200, "S1:CAPTURE")
            await store.save_card(SavedCard("RFID1", "card_1", None, None, at(1)))
            await store.set_station_tariff("CP1", "0.89", "1.00")
            assert await store.record_webhook("sandbox", "evt_1", {"type": "charge.paid"})

        async with opened(store_factory) as store:
            session = await store.get_session("S1")
            assert session is not None
            assert session.payment_status is P.AUTHORIZED
            assert (session.authorized_amount, session.charge_id) == (5000, "ch_1")
            assert await store.session_by_charge("ch_1") == session
            ops = await store.list_operations("S1")
            assert [(o.type, o.seq, o.status) for o in ops] == [
                (Op.AUTHORIZE, 1, OperationStatus.SUCCEEDED),
                (Op.CAPTURE, 2, OperationStatus.PENDING),
            ]
            assert ops[0].raw == {"a": 1}
            assert [o.idempotency_key for o in await store.pending_operations()] == ["S1:CAPTURE"]
            # the ledger and the dedup table keep working after the reopen
            op, created = await store.begin_operation("S1", Op.CAPTURE, 999, "S1:CAPTURE")
            assert not created and op.amount == 1200
            third, created = await store.begin_operation("S1", Op.REFUND, 100, "S1:REFUND")
            assert created and third.seq == 3
            card = await store.saved_card("RFID1")
            assert card is not None and card.card_reference == "card_1"
            assert not await store.record_webhook("sandbox", "evt_1", {"type": "charge.paid"})
            assert await store.station_tariff("CP1") == ("0.89", "1.00")

    # sessions -----------------------------------------------------------------------------------

    async def test_create_and_get_round_trip(self, store: BillingStore) -> None:
        brt = timezone(timedelta(hours=-3))
        session = make_session(
            7,
            method=Method.PIX,
            status=S.PENDING_PAYMENT,
            created_at=at(7).astimezone(brt),
            updated_at=at(8),
            save_card=True,
            driver_id_tag="RFID-7",
            transaction_id=42,
            energy_wh=1234,
            cost_cents=385,
            starting_at=at(9),
            ended_at=at(10),
            failure_reason="none",
            payment_status=P.PAID,
            order_id="or_1",
            charge_id="ch_1",
            authorized_amount=5000,
            captured_amount=10,
            refunded_amount=20,
            pix_qr_code="000201...",
            pix_qr_code_url="https://pix.example/qr.png",
            pix_expires_at="2026-03-01T11:00:00Z",
            card_reference="card_7",
            receipt_url="/receipts/S7",
        )
        await store.create_session(session)
        stored = await store.get_session("S7")
        assert stored == session
        assert stored is not None
        assert type(stored.method) is Method and type(stored.status) is SessionStatus
        assert type(stored.payment_status) is PaymentStatus
        assert stored.save_card is True
        for moment in (stored.created_at, stored.updated_at, stored.starting_at, stored.ended_at):
            assert_utc(moment)

    async def test_defaults_round_trip(self, store: BillingStore) -> None:
        session = await add(store, 1, email=None, cpf=None)
        stored = await store.get_session("S1")
        assert stored == session
        assert stored is not None
        assert stored.save_card is False and stored.transaction_id is None
        assert stored.payment_status is P.PENDING and stored.starting_at is None

    async def test_unknown_session_is_none(self, store: BillingStore) -> None:
        assert await store.get_session("nope") is None
        assert await store.session_by_id_tag("nope") is None
        assert await store.session_by_transaction(1) is None
        assert await store.session_by_charge("nope") is None

    async def test_duplicate_session_id_is_refused(self, store: BillingStore) -> None:
        original = await add(store, 1)
        with pytest.raises(ValueError):
            await store.create_session(make_session(1, id_tag="OTHER", station_id="CP9"))
        assert await store.get_session("S1") == original
        assert await store.session_by_id_tag("OTHER") is None

    async def test_duplicate_id_tag_is_refused(self, store: BillingStore) -> None:
        original = await add(store, 1)
        with pytest.raises(ValueError):
            await store.create_session(make_session(2, id_tag="TAG1"))
        assert await store.get_session("S2") is None
        assert await store.session_by_id_tag("TAG1") == original

    async def test_concurrent_creates_with_one_id_tag_make_one(
        self, store_factory: StoreFactory
    ) -> None:
        async with opened(store_factory) as first, opened(store_factory) as second:
            results = await asyncio.gather(
                *(
                    (first if n % 2 else second).create_session(make_session(n, id_tag="SAME"))
                    for n in range(1, 21)
                ),
                return_exceptions=True,
            )
            assert sum(r is None for r in results) == 1
            assert all(isinstance(r, ValueError) for r in results if r is not None)
            assert len(await first.list_sessions()) == 1

    async def test_lookups(self, store: BillingStore) -> None:
        await add(store, 1)
        await add(store, 2)
        await store.update_session("S1", transaction_id=17, charge_id="ch_a")
        await store.update_session("S2", transaction_id=18, charge_id="ch_b")
        by_tag = await store.session_by_id_tag("TAG2")
        assert by_tag is not None and by_tag.session_id == "S2"
        by_tx = await store.session_by_transaction(17)
        assert by_tx is not None and by_tx.session_id == "S1"
        by_charge = await store.session_by_charge("ch_b")
        assert by_charge is not None and by_charge.session_id == "S2"
        assert await store.session_by_transaction(19) is None
        assert await store.session_by_charge("ch_c") is None

    async def test_list_sessions_newest_first_with_filters(self, store: BillingStore) -> None:
        await add(store, 3, station_id="CP1", status=S.CHARGING)
        await add(store, 1, station_id="CP2", status=S.COMPLETED)
        await add(store, 4, station_id="CP2", status=S.CHARGING)
        await add(store, 2, station_id="CP1", status=S.CANCELED)
        await add(store, 5, station_id="CP1", status=S.STOPPING)

        def ids(sessions: list[Session]) -> list[str]:
            return [s.session_id for s in sessions]

        assert ids(await store.list_sessions()) == ["S5", "S4", "S3", "S2", "S1"]
        assert ids(await store.list_sessions(limit=2)) == ["S5", "S4"]
        assert ids(await store.list_sessions(station_id="CP1")) == ["S5", "S3", "S2"]
        assert ids(await store.list_sessions(statuses={S.CHARGING, S.STOPPING})) == [
            "S5",
            "S4",
            "S3",
        ]
        assert ids(await store.list_sessions(statuses=[S.CHARGING], station_id="CP2")) == ["S4"]
        assert ids(await store.list_sessions(statuses=[S.FAILED])) == []
        assert await store.list_sessions(statuses=[]) == []
        assert await store.list_sessions(station_id="CP9") == []

    async def test_list_sessions_follows_status_changes(self, store: BillingStore) -> None:
        await add(store, 1, status=S.CHARGING)
        await store.transition_session("S1", [S.CHARGING], S.COMPLETED)
        assert await store.list_sessions(statuses=[S.CHARGING]) == []
        done = await store.list_sessions(statuses=[S.COMPLETED])
        assert [s.session_id for s in done] == ["S1"]

    async def test_transition_session_from_expected_status(self, store: BillingStore) -> None:
        await add(store, 1, status=S.AUTHORIZED)
        before = datetime.now(UTC) - timedelta(seconds=1)
        moved = await store.transition_session(
            "S1", [S.AUTHORIZED, S.STARTING], S.STARTING, starting_at=at(5)
        )
        assert moved is not None
        assert moved.status is S.STARTING and moved.starting_at == at(5)
        assert moved.updated_at > before
        assert_utc(moved.updated_at)
        assert await store.get_session("S1") == moved

        charging = await store.transition_session("S1", [S.STARTING], S.CHARGING, transaction_id=17)
        assert charging is not None and charging.status is S.CHARGING
        assert (charging.transaction_id, charging.starting_at) == (17, at(5))

    async def test_transition_session_refused_from_other_status(self, store: BillingStore) -> None:
        await add(store, 1, status=S.CHARGING)
        stored = await store.get_session("S1")
        assert (
            await store.transition_session(
                "S1", [S.AUTHORIZED, S.STARTING], S.CANCELED, energy_wh=5
            )
            is None
        )
        assert await store.transition_session("S1", [], S.CANCELED) is None
        assert await store.get_session("S1") == stored
        assert await store.transition_session("nope", [S.CHARGING], S.COMPLETED) is None

    async def test_concurrent_session_transitions_one_wins(
        self, store_factory: StoreFactory
    ) -> None:
        async with opened(store_factory) as first, opened(store_factory) as second:
            await add(first, 1, status=S.CHARGING)
            results = await asyncio.gather(
                *(
                    (first if n % 2 else second).transition_session(
                        "S1", [S.CHARGING], S.COMPLETED if n % 3 else S.CANCELED, energy_wh=n
                    )
                    for n in range(1, 21)
                )
            )
            winners = [r for r in results if r is not None]
            assert len(winners) == 1
            stored = await second.get_session("S1")
            assert stored is not None
            assert (stored.status, stored.energy_wh) == (winners[0].status, winners[0].energy_wh)

    async def test_update_session_sets_fields_only(self, store: BillingStore) -> None:
        await add(store, 1, status=S.CHARGING)
        updated = await store.update_session(
            "S1", energy_wh=1500, cost_cents=425, receipt_url="/r/S1", ended_at=at(9)
        )
        assert updated is not None
        assert updated.status is S.CHARGING and updated.payment_status is P.PENDING
        assert (updated.energy_wh, updated.cost_cents, updated.receipt_url) == (1500, 425, "/r/S1")
        assert updated.ended_at == at(9)
        assert await store.get_session("S1") == updated
        cleared = await store.update_session("S1", receipt_url=None)
        assert cleared is not None and cleared.receipt_url is None
        assert await store.update_session("nope", energy_wh=1) is None

    async def test_unknown_and_protected_change_keys_are_refused(self, store: BillingStore) -> None:
        await add(store, 1, status=S.CHARGING, payment_status=P.AUTHORIZED)
        stored = await store.get_session("S1")
        bad: list[dict[str, Any]] = [
            {"no_such_field": 1},
            {"energy_wh": 1, "bogus": 2},
            {"created_at": at(99)},
        ]
        for changes in bad:
            with pytest.raises(ValueError):
                await store.update_session("S1", **changes)
            with pytest.raises(ValueError):
                await store.transition_session("S1", [S.CHARGING], S.COMPLETED, **changes)
            with pytest.raises(ValueError):
                await store.transition_payment("S1", [P.AUTHORIZED], P.CAPTURED, **changes)
        with pytest.raises(ValueError):
            await store.update_session("S1", status=S.COMPLETED)
        with pytest.raises(ValueError):
            await store.update_session("S1", payment_status=P.CAPTURED)
        with pytest.raises(ValueError):  # the payment status has its own compare-and-set
            await store.transition_session(
                "S1", [S.CHARGING], S.COMPLETED, payment_status=P.CAPTURED
            )
        with pytest.raises(ValueError):
            await store.transition_payment("S1", [P.AUTHORIZED], P.CAPTURED, status=S.COMPLETED)
        with pytest.raises(TypeError):  # the key can never be changed: it is the parameter
            await store.update_session("S1", **{"session_id": "S2"})  # type: ignore[misc]
        assert await store.get_session("S1") == stored

    async def test_create_refuses_ill_typed_fields(self, store: BillingStore) -> None:
        with pytest.raises(ValueError):
            await store.create_session(make_session(1, requested_amount=50.0))
        with pytest.raises(ValueError):
            await store.create_session(make_session(1, status="NOT_A_STATUS"))
        assert await store.get_session("S1") is None

    async def test_money_fields_refuse_floats(self, store: BillingStore) -> None:
        await add(store, 1, payment_status=P.AUTHORIZED)
        stored = await store.get_session("S1")
        with pytest.raises(ValueError):
            await store.update_session("S1", cost_cents=4.25)
        with pytest.raises(ValueError):
            await store.transition_payment("S1", [P.AUTHORIZED], P.CAPTURED, captured_amount=1.5)
        with pytest.raises(ValueError):
            await store.update_session("S1", energy_wh="12")
        assert await store.get_session("S1") == stored

    async def test_transition_payment(self, store: BillingStore) -> None:
        await add(store, 1)
        authorized = await store.transition_payment(
            "S1", [P.PENDING], P.AUTHORIZED, authorized_amount=5000, charge_id="ch_1"
        )
        assert authorized is not None
        assert authorized.payment_status is P.AUTHORIZED
        assert authorized.status is S.AUTHORIZED  # the session status is untouched
        captured = await store.transition_payment(
            "S1", [P.AUTHORIZED], P.CAPTURED, captured_amount=1200
        )
        assert captured is not None
        assert (captured.payment_status, captured.captured_amount) == (P.CAPTURED, 1200)
        assert captured.authorized_amount == 5000
        # a second capture or a void after the capture is refused and changes nothing
        assert await store.transition_payment("S1", [P.AUTHORIZED], P.CAPTURED) is None
        assert await store.transition_payment("S1", [P.AUTHORIZED], P.VOIDED) is None
        assert await store.get_session("S1") == captured
        assert await store.transition_payment("nope", [P.PENDING], P.AUTHORIZED) is None

    async def test_concurrent_capture_and_void_one_wins(self, store_factory: StoreFactory) -> None:
        async with opened(store_factory) as first, opened(store_factory) as second:
            await add(first, 1, payment_status=P.AUTHORIZED, authorized_amount=5000)
            results = await asyncio.gather(
                *(
                    (first if n % 2 else second).transition_payment(
                        "S1",
                        [P.AUTHORIZED],
                        P.CAPTURED if n % 2 else P.VOIDED,
                        captured_amount=n * 100 if n % 2 else 0,
                    )
                    for n in range(1, 21)
                )
            )
            winners = [r for r in results if r is not None]
            assert len(winners) == 1
            stored = await first.get_session("S1")
            assert stored is not None
            assert stored.payment_status is winners[0].payment_status
            assert stored.captured_amount == winners[0].captured_amount

    # operations ledger --------------------------------------------------------------------------

    async def test_begin_operation_records_pending(self, store: BillingStore) -> None:
        await add(store, 1)
        before = datetime.now(UTC) - timedelta(seconds=1)
        op, created = await store.begin_operation(
            "S1", Op.AUTHORIZE, 5000, "S1:AUTHORIZE", charge_id="ch_1"
        )
        assert created
        assert (op.session_id, op.seq, op.type, op.amount) == ("S1", 1, Op.AUTHORIZE, 5000)
        assert op.status is OperationStatus.PENDING
        assert type(op.type) is OperationType and type(op.status) is OperationStatus
        assert (op.idempotency_key, op.charge_id, op.error, op.raw) == (
            "S1:AUTHORIZE",
            "ch_1",
            None,
            None,
        )
        assert before < op.created_at <= datetime.now(UTC) + timedelta(seconds=1)
        assert_utc(op.created_at)
        assert_utc(op.updated_at)
        assert await store.get_operation("S1:AUTHORIZE") == op

    async def test_begin_operation_same_key_returns_first(self, store: BillingStore) -> None:
        await add(store, 1)
        first, created = await store.begin_operation("S1", Op.CAPTURE, 1200, "S1:CAPTURE")
        assert created
        again, created = await store.begin_operation("S1", Op.CAPTURE, 1300, "S1:CAPTURE")
        assert not created
        assert again == first  # same seq, same (first) amount
        other, created = await store.begin_operation("S1", Op.VOID, 0, "S1:CAPTURE")
        assert not created and other == first
        # also once it has finished
        await store.finish_operation("S1:CAPTURE", OperationStatus.SUCCEEDED)
        done, created = await store.begin_operation("S1", Op.CAPTURE, 1200, "S1:CAPTURE")
        assert not created and done.status is OperationStatus.SUCCEEDED
        assert len(await store.list_operations("S1")) == 1

    async def test_seq_increments_per_session(self, store: BillingStore) -> None:
        await add(store, 1)
        await add(store, 2)
        keys = [("S1", "a"), ("S2", "b"), ("S1", "c"), ("S1", "d"), ("S2", "e")]
        seqs = []
        for session_id, key in keys:
            op, created = await store.begin_operation(session_id, Op.REFUND, 10, key)
            assert created
            seqs.append(op.seq)
        assert seqs == [1, 1, 2, 3, 2]
        listed = await store.list_operations("S1")
        assert [(o.seq, o.idempotency_key) for o in listed] == [(1, "a"), (2, "c"), (3, "d")]
        assert await store.list_operations("S3") == []

    async def test_concurrent_begins_with_one_key_create_one(
        self, store_factory: StoreFactory
    ) -> None:
        async with opened(store_factory) as first, opened(store_factory) as second:
            await add(first, 1)
            results = await asyncio.gather(
                *(
                    (first if n % 2 else second).begin_operation(
                        "S1", Op.CAPTURE, 1000 + n, "S1:CAPTURE"
                    )
                    for n in range(20)
                )
            )
            assert sum(created for _, created in results) == 1
            winner = next(op for op, created in results if created)
            assert all(op == winner for op, _ in results)
            assert await first.list_operations("S1") == [winner]

    async def test_concurrent_begins_get_distinct_seqs(self, store_factory: StoreFactory) -> None:
        async with opened(store_factory) as first, opened(store_factory) as second:
            await add(first, 1)
            results = await asyncio.gather(
                *(
                    (first if n % 2 else second).begin_operation("S1", Op.REFUND, n, f"k{n}")
                    for n in range(20)
                )
            )
            assert all(created for _, created in results)
            assert sorted(op.seq for op, _ in results) == list(range(1, 21))

    async def test_begin_operation_refuses_bad_input(self, store: BillingStore) -> None:
        await add(store, 1)
        with pytest.raises(ValueError):
            await store.begin_operation("nope", Op.CAPTURE, 100, "nope:CAPTURE")
        with pytest.raises(ValueError):
            await store.begin_operation("S1", Op.CAPTURE, -1, "S1:CAPTURE")
        with pytest.raises(ValueError):
            await store.begin_operation("S1", Op.CAPTURE, 12.5, "S1:CAPTURE")  # type: ignore[arg-type]
        assert await store.list_operations("S1") == []
        assert await store.get_operation("S1:CAPTURE") is None

    async def test_finish_operation_only_from_pending(self, store: BillingStore) -> None:
        await add(store, 1)
        begun, _ = await store.begin_operation("S1", Op.CAPTURE, 1200, "S1:CAPTURE", "ch_1")
        done = await store.finish_operation(
            "S1:CAPTURE",
            OperationStatus.SUCCEEDED,
            raw={"id": "ch_1", "status": "paid", "items": [1, 2.5, None], "nested": {"x": True}},
        )
        assert done is not None
        assert done.status is OperationStatus.SUCCEEDED
        assert done.charge_id == "ch_1"  # kept from begin
        assert done.raw == {
            "id": "ch_1",
            "status": "paid",
            "items": [1, 2.5, None],
            "nested": {"x": True},
        }
        assert (done.seq, done.amount, done.created_at) == (begun.seq, 1200, begun.created_at)
        assert done.updated_at >= begun.updated_at
        # a finished operation stays as it is
        again = await store.finish_operation(
            "S1:CAPTURE", OperationStatus.FAILED, error="late", charge_id="ch_2", raw={}
        )
        assert again == done
        assert await store.get_operation("S1:CAPTURE") == done
        assert await store.finish_operation("nope", OperationStatus.SUCCEEDED) is None

    async def test_finish_operation_failed_with_error(self, store: BillingStore) -> None:
        await add(store, 1)
        await store.begin_operation("S1", Op.AUTHORIZE, 5000, "S1:AUTHORIZE")
        failed = await store.finish_operation(
            "S1:AUTHORIZE", OperationStatus.FAILED, error="declined", charge_id="ch_9"
        )
        assert failed is not None
        assert (failed.status, failed.error, failed.charge_id) == (
            OperationStatus.FAILED,
            "declined",
            "ch_9",
        )

    async def test_finish_operation_pending_annotates(self, store: BillingStore) -> None:
        """finish_operation(PENDING) records context on a pending operation, nothing more."""
        await add(store, 1)
        await store.begin_operation("S1", Op.AUTHORIZE, 5000, "S1:AUTHORIZE")
        noted = await store.finish_operation(
            "S1:AUTHORIZE", OperationStatus.PENDING, raw={"card_token": "tok_1"}
        )
        assert noted is not None
        assert (noted.status, noted.raw) == (OperationStatus.PENDING, {"card_token": "tok_1"})
        assert [o.idempotency_key for o in await store.pending_operations()] == ["S1:AUTHORIZE"]
        done = await store.finish_operation("S1:AUTHORIZE", OperationStatus.SUCCEEDED, raw={})
        assert done is not None and (done.status, done.raw) == (OperationStatus.SUCCEEDED, {})
        again = await store.finish_operation("S1:AUTHORIZE", OperationStatus.PENDING, raw={"x": 1})
        assert again == done  # a finished operation never goes back to PENDING

    async def test_concurrent_finishes_agree(self, store_factory: StoreFactory) -> None:
        async with opened(store_factory) as first, opened(store_factory) as second:
            await add(first, 1)
            await first.begin_operation("S1", Op.VOID, 0, "S1:VOID")
            results = await asyncio.gather(
                *(
                    (first if n % 2 else second).finish_operation(
                        "S1:VOID",
                        OperationStatus.SUCCEEDED if n % 3 else OperationStatus.FAILED,
                        error=f"e{n}",
                    )
                    for n in range(20)
                )
            )
            assert all(r is not None for r in results)
            assert len({(r.status, r.error) for r in results if r is not None}) == 1

    async def test_pending_operations(self, store: BillingStore) -> None:
        await add(store, 1)
        await add(store, 2)
        assert await store.pending_operations() == []
        await store.begin_operation("S1", Op.AUTHORIZE, 5000, "S1:AUTHORIZE")
        await store.begin_operation("S2", Op.AUTHORIZE, 3000, "S2:AUTHORIZE")
        await asyncio.sleep(0.02)
        middle = datetime.now(UTC)
        await asyncio.sleep(0.02)
        await store.begin_operation("S1", Op.CAPTURE, 1200, "S1:CAPTURE")
        await store.begin_operation("S2", Op.VOID, 0, "S2:VOID")
        await store.finish_operation("S2:AUTHORIZE", OperationStatus.SUCCEEDED)
        await store.finish_operation("S2:VOID", OperationStatus.FAILED, error="x")

        def keys(ops: list[Any]) -> set[str]:
            return {op.idempotency_key for op in ops}

        assert keys(await store.pending_operations()) == {"S1:AUTHORIZE", "S1:CAPTURE"}
        assert keys(await store.pending_operations(middle)) == {"S1:AUTHORIZE"}
        brt = timezone(timedelta(hours=-3))  # any offset means the same instant
        assert keys(await store.pending_operations(middle.astimezone(brt))) == {"S1:AUTHORIZE"}
        assert await store.pending_operations(middle - timedelta(hours=1)) == []
        future = datetime.now(UTC) + timedelta(hours=1)
        assert keys(await store.pending_operations(future)) == {"S1:AUTHORIZE", "S1:CAPTURE"}
        for op in await store.pending_operations():
            assert op.status is OperationStatus.PENDING

    # saved cards --------------------------------------------------------------------------------

    async def test_saved_cards_upsert(self, store: BillingStore) -> None:
        assert await store.saved_card("RFID1") is None
        card = SavedCard("RFID1", "card_1", "a@example.com", "12345678909", at(1))
        await store.save_card(card)
        stored = await store.saved_card("RFID1")
        assert stored == card
        assert stored is not None
        assert_utc(stored.created_at)

        replacement = SavedCard("RFID1", "card_2", None, None, at(5))
        await store.save_card(replacement)
        assert await store.saved_card("RFID1") == replacement
        other = SavedCard("RFID2", "card_3", None, None, at(6))
        await store.save_card(other)
        assert await store.saved_card("RFID2") == other
        assert await store.saved_card("RFID1") == replacement

    # tariffs ----------------------------------------------------------------------------------

    async def test_station_tariff_upsert(self, store: BillingStore) -> None:
        assert await store.station_tariff("CP1") is None
        await store.set_station_tariff("CP1", "0.89", "1.00")
        assert await store.station_tariff("CP1") == ("0.89", "1.00")
        await store.set_station_tariff("CP1", "1.25", "0")
        assert await store.station_tariff("CP1") == ("1.25", "0")
        assert await store.station_tariff("CP2") is None

    async def test_station_tariff_refuses_non_decimals(self, store: BillingStore) -> None:
        bad: list[tuple[Any, Any]] = [("abc", "1.00"), ("1.50", "-1"), ("NaN", "1"), (1.5, "1")]
        for price, fee in bad:
            with pytest.raises(ValueError):
                await store.set_station_tariff("CP1", price, fee)
        assert await store.station_tariff("CP1") is None

    # webhooks -----------------------------------------------------------------------------------

    async def test_record_webhook_dedups_per_gateway(self, store: BillingStore) -> None:
        body = {"type": "charge.paid", "data": {"id": "ch_1"}}
        assert await store.record_webhook("pagarme", "evt_1", body) is True
        assert await store.record_webhook("pagarme", "evt_1", body) is False
        assert await store.record_webhook("pagarme", "evt_1", {"other": 1}) is False
        assert await store.record_webhook("sandbox", "evt_1", body) is True
        assert await store.record_webhook("pagarme", "evt_2", body) is True

    async def test_concurrent_webhook_deliveries_record_once(
        self, store_factory: StoreFactory
    ) -> None:
        async with opened(store_factory) as first, opened(store_factory) as second:
            results = await asyncio.gather(
                *(
                    (first if n % 2 else second).record_webhook("sandbox", "evt_9", {"n": n})
                    for n in range(20)
                )
            )
            assert sum(results) == 1
