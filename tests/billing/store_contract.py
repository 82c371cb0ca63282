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
    Job,
    JobKind,
    JobStatus,
    Method,
    OperationStatus,
    OperationType,
    PaymentStatus,
    SavedCard,
    Session,
    SessionStatus,
    TerminalRequest,
    TerminalRequestStatus,
)
from billing.store.ports import BillingStore

T0 = datetime(2026, 3, 1, 10, 0, 0, 123000, tzinfo=UTC)
S = SessionStatus
P = PaymentStatus
Op = OperationType
J = JobStatus
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


def make_job(job_id: str = "S1:REFUND", **overrides: Any) -> Job:
    """A PENDING REFUND job of session S1, due at at(0), never attempted."""
    values: dict[str, Any] = {
        "job_id": job_id,
        "kind": JobKind.REFUND,
        "session_id": "S1",
        "payload": {"operation": job_id},
        "status": J.PENDING,
        "attempts": 0,
        "next_attempt_at": at(0),
        "lease_until": None,
        "created_at": at(0),
        "updated_at": at(0),
    }
    values.update(overrides)
    return Job(**values)


@asynccontextmanager
async def opened(factory: StoreFactory) -> AsyncIterator[BillingStore]:
    store = factory()
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def make_terminal_request(request_id: str = "R1", **overrides: Any) -> TerminalRequest:
    values: dict[str, Any] = {"request_id": request_id, "station_id": "CP1", "connector_id": 1,
                              "session_id": "S1", "status": TerminalRequestStatus.PENDING,
                              "created_at": at(0), "updated_at": at(0)}
    values.update(overrides)
    return TerminalRequest(**values)


class BillingStoreContract:
    """Tests every backend of the billing store port must pass."""

    # terminals (unattended payment) -------------------------------------------------------------

    async def test_terminal_binding_upserts_reads_and_unbinds(self, store: BillingStore) -> None:
        assert await store.station_terminal("CP1") is None
        first = await store.bind_terminal("CP1", "T-1", "")
        assert (first.terminal_id, first.management_system_id) == ("T-1", "")
        await store.bind_terminal("CP1", "T-2", "MS-9")
        await store.bind_terminal("CP2", "T-3", "")
        bound = await store.station_terminal("CP1")
        assert bound is not None
        assert (bound.station_id, bound.terminal_id, bound.management_system_id) == \
            ("CP1", "T-2", "MS-9")
        assert_utc(bound.updated_at)
        assert await store.unbind_terminal("CP1") is True
        assert await store.unbind_terminal("CP1") is False
        assert await store.station_terminal("CP1") is None
        assert (await store.station_terminal("CP2")) is not None

    async def test_terminal_binding_survives_reopen(self, store_factory: StoreFactory) -> None:
        async with opened(store_factory) as store:
            await store.bind_terminal("CP1", "T-1", "MS-1")
        async with opened(store_factory) as store:
            bound = await store.station_terminal("CP1")
            assert bound is not None and bound.terminal_id == "T-1"

    async def test_terminal_requests(self, store: BillingStore) -> None:
        await store.create_terminal_request(make_terminal_request("R1"))
        await store.create_terminal_request(make_terminal_request("R2", created_at=at(1)))
        with pytest.raises(ValueError):
            await store.create_terminal_request(make_terminal_request("R1"))
        got = await store.get_terminal_request("R1")
        assert got == make_terminal_request("R1")
        assert await store.get_terminal_request("nope") is None
        assert [r.request_id for r in await store.pending_terminal_requests()] == ["R1", "R2"]
        # the reference is learned once the terminal was asked
        updated = await store.update_terminal_request("R1", reference="TK1")
        assert updated is not None and updated.reference == "TK1"
        assert updated.status is TerminalRequestStatus.PENDING
        found = await store.terminal_request_by_reference("TK1")
        assert found is not None and found.request_id == "R1"
        assert await store.terminal_request_by_reference("TK2") is None
        # compare-and-set on the status: only one outcome wins
        done = await store.update_terminal_request(
            "R1", if_status=TerminalRequestStatus.PENDING,
            status=TerminalRequestStatus.TOKEN_MISMATCH, error="another card")
        assert done is not None
        assert (done.status, done.error, done.reference) == \
            (TerminalRequestStatus.TOKEN_MISMATCH, "another card", "TK1")
        assert await store.update_terminal_request(
            "R1", if_status=TerminalRequestStatus.PENDING,
            status=TerminalRequestStatus.STOPPED) is None
        assert [r.request_id for r in await store.pending_terminal_requests()] == ["R2"]
        assert await store.update_terminal_request("nope", status=TerminalRequestStatus.FAILED) \
            is None

    async def test_card_fingerprint_is_kept_on_the_session(self, store: BillingStore) -> None:
        await add(store, 1, method=Method.TERMINAL)
        moved = await store.transition_payment("S1", [P.PENDING], P.AUTHORIZED,
                                               authorized_amount=5000, charge_id="TL1",
                                               card_fingerprint="991234567890123456")
        assert moved is not None and moved.card_fingerprint == "991234567890123456"
        session = await store.get_session("S1")
        assert session is not None and session.method is Method.TERMINAL
        assert session.card_fingerprint == "991234567890123456"

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

    async def test_sessions_by_transactions_in_one_call(self, store: BillingStore) -> None:
        await add(store, 1)
        await add(store, 2)
        await add(store, 3)
        await store.update_session("S1", transaction_id=17)
        await store.update_session("S2", transaction_id=18)
        await store.update_session("S3", transaction_id=17)  # newer session of the same id
        found = await store.sessions_by_transactions([17, 18, 19, 18])
        assert {tx: s.session_id for tx, s in found.items()} == {17: "S3", 18: "S2"}
        assert found[18] == await store.get_session("S2")
        assert await store.sessions_by_transactions([]) == {}
        many = await store.sessions_by_transactions(range(1, 1200))  # past SQLite's limits
        assert sorted(many) == [17, 18]

    async def test_receive_times_and_review_deadline_round_trip(self, store: BillingStore,
                                                               ) -> None:
        await add(store, 1)
        moved = await store.update_session("S1", seen_started_at=at(1), seen_stopped_at=at(61),
                                           review_due_at=at(3600))
        assert moved is not None
        got = await store.get_session("S1")
        assert got is not None
        assert (got.seen_started_at, got.seen_stopped_at, got.review_due_at) == (
            at(1), at(61), at(3600))
        assert_utc(got.review_due_at)

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
        assert ids(await store.list_sessions(station_ids={"CP2", "CP9"})) == ["S4", "S1"]
        assert ids(await store.list_sessions(statuses=[S.CHARGING, S.STOPPING],
                                             station_ids=["CP1", "CP2"], limit=2)) == \
            ["S5", "S4"]
        assert ids(await store.list_sessions(station_id="CP1", station_ids=["CP2"])) == []
        assert await store.list_sessions(station_ids=[]) == []

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

    async def test_update_session_only_in_given_statuses(self, store: BillingStore) -> None:
        await add(store, 1, status=S.COMPLETED, energy_wh=10000)
        before = await store.get_session("S1")
        assert await store.update_session("S1", if_status={S.CHARGING, S.STOPPING},
                                          energy_wh=2000) is None
        assert await store.get_session("S1") == before  # nothing written, version unchanged
        done = await store.update_session("S1", if_status={S.COMPLETED}, energy_wh=9000)
        assert done is not None and (done.status, done.energy_wh) == (S.COMPLETED, 9000)
        assert await store.update_session("S1", if_status=(), energy_wh=1) is None

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

    async def test_begin_operation_keeps_the_request_fingerprint(self, store: BillingStore,
                                                                 ) -> None:
        """An operator refund's fingerprint stays with its operation; a second begin with the
        same key returns the first one's, whatever it passes."""
        await add(store, 1)
        first, created = await store.begin_operation("S1", Op.REFUND, 100, "S1:REFUND:k",
                                                     fingerprint="sha256:one")
        assert created and first is not None and first.fingerprint == "sha256:one"
        again, created = await store.begin_operation("S1", Op.REFUND, 900, "S1:REFUND:k",
                                                     fingerprint="sha256:two")
        assert not created and again == first
        await store.finish_operation("S1:REFUND:k", OperationStatus.FAILED, error="x")
        reopened = await store.reopen_operation("S1:REFUND:k")
        assert reopened is not None and reopened.fingerprint == "sha256:one"
        plain, _ = await store.begin_operation("S1", Op.CAPTURE, 100, "S1:CAPTURE")
        assert plain is not None and plain.fingerprint is None

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
        # an error alone (a job that gave up on an unknown outcome) keeps the context
        noted = await store.finish_operation("S1:AUTHORIZE", OperationStatus.PENDING,
                                             error="outcome unknown")
        assert noted is not None and (noted.status, noted.error, noted.raw) == (
            OperationStatus.PENDING, "outcome unknown", {"card_token": "tok_1"})
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

    async def test_every_session_write_bumps_the_version(self, store: BillingStore) -> None:
        await add(store, 1, status=S.CHARGING, payment_status=P.AUTHORIZED)
        versions = [(await store.get_session("S1")).version]  # type: ignore[union-attr]
        writes = [
            store.update_session("S1", energy_wh=5),
            store.transition_session("S1", [S.CHARGING], S.STOPPING),
            store.transition_payment("S1", [P.AUTHORIZED], P.CAPTURED, captured_amount=9),
        ]
        for write in writes:
            written = await write
            assert written is not None
            versions.append(written.version)
        assert versions == sorted(set(versions)) and len(versions) == 4
        # a refused compare-and-set writes nothing
        assert await store.transition_session("S1", [S.CHARGING], S.COMPLETED) is None
        assert (await store.get_session("S1")).version == versions[-1]  # type: ignore[union-attr]

    async def test_begin_operation_at_version(self, store: BillingStore) -> None:
        session = await add(store, 1)
        stale = session.version
        op, created = await store.begin_operation("S1", Op.REFUND, 100, "S1:R1", at_version=stale)
        assert created and op is not None
        bumped = await store.get_session("S1")
        assert bumped is not None and bumped.version == stale + 1
        # the session moved on since `stale` was read: nothing is recorded
        assert await store.begin_operation(
            "S1", Op.REFUND, 100, "S1:R2", at_version=stale) == (None, False)
        assert await store.get_operation("S1:R2") is None
        # an existing key still wins, whatever the version
        assert await store.begin_operation(
            "S1", Op.REFUND, 5, "S1:R1", at_version=stale) == (op, False)
        with pytest.raises(ValueError):
            await store.begin_operation("nope", Op.REFUND, 1, "nope:R", at_version=0)

    async def test_settle_operation_is_one_compare_and_set(self, store: BillingStore) -> None:
        await add(store, 1, payment_status=P.CAPTURED, captured_amount=900)
        await store.begin_operation("S1", Op.REFUND, 300, "S1:R1")
        session = await store.get_session("S1")
        assert session is not None
        changes = {"refunded_amount": 300, "payment_status": P.PARTIALLY_REFUNDED}
        stale = session.version - 1
        assert await store.settle_operation("S1:R1", session_version=stale,
                                            changes=changes) is None
        op = await store.get_operation("S1:R1")
        assert op is not None and op.status is OperationStatus.PENDING
        settled = await store.settle_operation("S1:R1", session_version=session.version,
                                               changes=changes, raw={"id": "rf"})
        assert settled is not None
        assert (settled.refunded_amount, settled.payment_status) == (300, P.PARTIALLY_REFUNDED)
        assert settled.version == session.version + 1
        op = await store.get_operation("S1:R1")
        assert op is not None and (op.status, op.raw) == (OperationStatus.SUCCEEDED, {"id": "rf"})
        # once settled, never again
        assert await store.settle_operation("S1:R1", session_version=settled.version,
                                            changes=changes) is None

    async def test_settle_operation_records_a_pix_charge_on_its_session(
            self, store: BillingStore) -> None:
        """A created PIX charge: the CHARGE succeeds and its identifiers and QR code reach the
        session in one write; the payment is left as it was."""
        await add(store, 1, method=Method.PIX)
        await store.begin_operation("S1", Op.CHARGE, 5000, "S1:CHARGE")
        await store.finish_operation("S1:CHARGE", OperationStatus.PENDING,
                                     raw={"expires_in": 900})
        session = await store.get_session("S1")
        assert session is not None
        ids = {"order_id": "or_1", "charge_id": "ch_1", "pix_qr_code": "000201",
               "pix_qr_code_url": "https://qr/1", "pix_expires_at": "2026-11-22T10:15:00Z"}
        settled = await store.settle_operation("S1:CHARGE", session_version=session.version,
                                               changes=ids, raw={"id": "or_1"})
        assert settled is not None and settled.payment_status is P.PENDING
        assert {name: getattr(settled, name) for name in ids} == ids
        assert await store.session_by_charge("ch_1") == settled
        op = await store.get_operation("S1:CHARGE")
        assert op is not None and (op.status, op.raw) == (OperationStatus.SUCCEEDED,
                                                          {"id": "or_1"})

    async def test_reopen_operation_at_version(self, store: BillingStore) -> None:
        await add(store, 1)
        await store.begin_operation("S1", Op.REFUND, 300, "S1:R1")
        await store.finish_operation("S1:R1", OperationStatus.FAILED, error="timeout")
        session = await store.get_session("S1")
        assert session is not None
        stale = session.version - 1
        assert await store.reopen_operation("S1:R1", at_version=stale) is None
        failed = await store.get_operation("S1:R1")
        assert failed is not None and failed.status is OperationStatus.FAILED
        reopened = await store.reopen_operation("S1:R1", at_version=session.version)
        assert reopened is not None and reopened.status is OperationStatus.PENDING
        bumped = await store.get_session("S1")
        assert bumped is not None and bumped.version == session.version + 1

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

    async def test_succeeded_total_sums_the_ledger_since(self, store: BillingStore) -> None:
        await add(store, 1)
        await add(store, 2)
        await store.begin_operation("S1", Op.AUTHORIZE, 5000, "S1:AUTHORIZE")
        await store.finish_operation("S1:AUTHORIZE", OperationStatus.SUCCEEDED)
        since = datetime.now(UTC)
        await asyncio.sleep(0.01)
        assert await store.succeeded_total({Op.AUTHORIZE}, since) == 0  # finished before
        await store.begin_operation("S1", Op.CAPTURE, 1200, "S1:CAPTURE")
        await store.finish_operation("S1:CAPTURE", OperationStatus.SUCCEEDED)
        await store.begin_operation("S2", Op.AUTHORIZE, 3000, "S2:AUTHORIZE")
        await store.finish_operation("S2:AUTHORIZE", OperationStatus.SUCCEEDED)
        await store.begin_operation("S2", Op.CAPTURE, 700, "S2:CAPTURE")  # still PENDING
        await store.begin_operation("S2", Op.REFUND, 100, "S2:REFUND:1")
        await store.finish_operation("S2:REFUND:1", OperationStatus.FAILED, error="no")
        assert await store.succeeded_total({Op.CAPTURE}, since) == 1200
        assert await store.succeeded_total({Op.AUTHORIZE, Op.CHARGE}, since) == 3000
        assert await store.succeeded_total({Op.REFUND}, since) == 0
        assert await store.succeeded_total(set(), since) == 0
        assert await store.succeeded_total({Op.CAPTURE}, datetime.now(UTC) + timedelta(1)) == 0

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

    async def test_session_and_card_by_id_tag(self, store: BillingStore) -> None:
        card = SavedCard("RFID1", "card_1", None, None, at(1))
        await store.save_card(card)
        assert await store.session_and_card("RFID1") == (None, card)
        assert await store.session_and_card("NOBODY") == (None, None)
        session = await add(store, 1, id_tag="RFID1")  # a session holding the idTag wins
        found, no_card = await store.session_and_card("RFID1")
        assert found is not None and found.session_id == session.session_id
        assert no_card is None

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

    async def test_forget_webhook_lets_a_redelivery_through(self, store: BillingStore) -> None:
        assert await store.record_webhook("pagarme", "evt_f", {"a": 1}) is True
        await store.forget_webhook("pagarme", "evt_f")
        assert await store.record_webhook("pagarme", "evt_f", {"a": 1}) is True
        assert await store.record_webhook("pagarme", "evt_f", {"a": 1}) is False
        await store.forget_webhook("pagarme", "never-seen")  # no error

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

    # jobs (outbox) ------------------------------------------------------------------------------

    async def test_add_job_twice_returns_the_first(self, store: BillingStore) -> None:
        job = make_job(payload={"operation": "S1:REFUND", "nested": [1, {"x": None}]})
        stored, created = await store.add_job(job)
        assert created and stored == job
        assert type(stored.kind) is JobKind and type(stored.status) is JobStatus
        assert_utc(stored.next_attempt_at)
        assert await store.get_job("S1:REFUND") == job
        again, created = await store.add_job(
            make_job(payload={"operation": "other"}, kind=JobKind.RECEIPT, attempts=3)
        )
        assert not created and again == job
        assert await store.get_job("nope") is None

    async def test_concurrent_add_job_makes_one(self, store_factory: StoreFactory) -> None:
        async with opened(store_factory) as first, opened(store_factory) as second:
            results = await asyncio.gather(
                *(
                    (first if n % 2 else second).add_job(make_job(payload={"n": n}))
                    for n in range(20)
                )
            )
            assert sum(created for _, created in results) == 1
            winner = next(job for job, created in results if created)
            assert all(job == winner for job, _ in results)
            assert await first.list_jobs() == [winner]

    async def test_list_jobs_newest_first_with_filters(self, store: BillingStore) -> None:
        await store.add_job(make_job("a", created_at=at(3), session_id="S1"))
        await store.add_job(make_job("b", created_at=at(1), session_id="S2", status=J.DONE))
        await store.add_job(make_job("c", created_at=at(4), session_id="S2", status=J.FAILED))
        await store.add_job(make_job("d", created_at=at(2), session_id="S1", status=J.RUNNING))

        def ids(jobs: list[Job]) -> list[str]:
            return [j.job_id for j in jobs]

        assert ids(await store.list_jobs()) == ["c", "a", "d", "b"]
        assert ids(await store.list_jobs(limit=2)) == ["c", "a"]
        assert ids(await store.list_jobs(session_id="S2")) == ["c", "b"]
        assert ids(await store.list_jobs(statuses={J.PENDING, J.RUNNING})) == ["a", "d"]
        assert ids(await store.list_jobs(statuses=[J.FAILED], session_id="S1")) == []
        assert await store.list_jobs(statuses=[]) == []

    async def test_claim_job_only_when_due(self, store: BillingStore) -> None:
        await store.add_job(make_job(next_attempt_at=at(10)))
        assert await store.claim_job("S1:REFUND", at(9.999), at(40)) is None
        claimed = await store.claim_job("S1:REFUND", at(10), at(40))
        assert claimed is not None
        assert (claimed.status, claimed.lease_until, claimed.attempts) == (J.RUNNING, at(40), 1)
        assert await store.get_job("S1:REFUND") == claimed
        # running elsewhere: a duplicate delivery does nothing
        assert await store.claim_job("S1:REFUND", at(11), at(50)) is None
        assert await store.claim_job("S1:REFUND", at(39.999), at(50)) is None
        # its worker died: once the lease has expired anyone may take it over
        taken = await store.claim_job("S1:REFUND", at(40), at(70))
        assert taken is not None and (taken.status, taken.lease_until) == (J.RUNNING, at(70))
        assert taken.attempts == 2  # the run that died counts
        assert await store.claim_job("nope", at(100), at(200)) is None

    async def test_claim_job_ignores_a_delivery_lease(self, store: BillingStore) -> None:
        """A PENDING job leased by the sweeper is claimed by the worker its message reaches."""
        await store.add_job(make_job(next_attempt_at=at(1)))
        assert await store.lease_job("S1:REFUND", None, at(30))
        claimed = await store.claim_job("S1:REFUND", at(2), at(60))
        assert claimed is not None and (claimed.status, claimed.lease_until) == (J.RUNNING, at(60))

    async def test_claim_job_refuses_finished_jobs(self, store: BillingStore) -> None:
        await store.add_job(make_job("done", status=J.DONE))
        await store.add_job(make_job("failed", status=J.FAILED))
        assert await store.claim_job("done", at(100), at(200)) is None
        assert await store.claim_job("failed", at(100), at(200)) is None

    async def test_concurrent_claims_one_wins(self, store_factory: StoreFactory) -> None:
        async with opened(store_factory) as first, opened(store_factory) as second:
            await first.add_job(make_job())
            results = await asyncio.gather(
                *(
                    (first if n % 2 else second).claim_job("S1:REFUND", at(1), at(30 + n))
                    for n in range(20)
                )
            )
            winners = [r for r in results if r is not None]
            assert len(winners) == 1
            assert await second.get_job("S1:REFUND") == winners[0]

    async def test_job_lifecycle(self, store: BillingStore) -> None:
        await store.add_job(make_job())
        assert await store.reschedule_job("S1:REFUND", next_attempt_at=at(5), error="x") is None
        assert await store.complete_job("S1:REFUND") is None  # not running
        assert await store.fail_job("S1:REFUND", "x") is None
        await store.claim_job("S1:REFUND", at(0), at(30))
        later = await store.reschedule_job("S1:REFUND", next_attempt_at=at(60), error="timeout")
        assert later is not None
        assert (later.status, later.attempts, later.last_error) == (J.PENDING, 1, "timeout")
        assert (later.next_attempt_at, later.lease_until) == (at(60), None)
        assert await store.get_job("S1:REFUND") == later
        assert await store.claim_job("S1:REFUND", at(59), at(90)) is None  # not due yet
        await store.claim_job("S1:REFUND", at(60), at(90))
        done = await store.complete_job("S1:REFUND")
        assert done is not None
        assert (done.status, done.attempts, done.lease_until) == (J.DONE, 2, None)
        assert await store.complete_job("S1:REFUND") is None
        assert await store.retry_job("S1:REFUND", at(100)) is None  # only a failed job
        assert await store.get_job("S1:REFUND") == done
        for call in (
            store.reschedule_job("nope", next_attempt_at=at(1), error="x"),
            store.complete_job("nope"),
            store.fail_job("nope", "x"),
            store.retry_job("nope", at(1)),
        ):
            assert await call is None

    async def test_fail_and_retry_job(self, store: BillingStore) -> None:
        await store.add_job(make_job(attempts=4))
        await store.claim_job("S1:REFUND", at(0), at(30))
        failed = await store.fail_job("S1:REFUND", "card expired")
        assert failed is not None
        assert (failed.status, failed.attempts, failed.last_error) == (
            J.FAILED,
            5,
            "card expired",
        )
        assert failed.lease_until is None
        assert await store.fail_job("S1:REFUND", "again") is None
        assert await store.claim_job("S1:REFUND", at(1000), at(2000)) is None
        retried = await store.retry_job("S1:REFUND", at(500))
        assert retried is not None
        assert (retried.status, retried.attempts) == (J.PENDING, 0)
        assert (retried.next_attempt_at, retried.lease_until) == (at(500), None)
        assert retried.last_error == "card expired"  # kept until the next outcome
        assert await store.retry_job("S1:REFUND", at(600)) is None  # pending now
        assert await store.claim_job("S1:REFUND", at(500), at(530)) is not None

    async def test_defer_job_keeps_a_failed_job_failed(self, store: BillingStore) -> None:
        await store.add_job(make_job(attempts=2))
        assert await store.defer_job("S1:REFUND", next_attempt_at=at(60), error="x") is None
        await store.claim_job("S1:REFUND", at(0), at(30))
        await store.fail_job("S1:REFUND", "gateway down")
        deferred = await store.defer_job("S1:REFUND", next_attempt_at=at(120), error="still")
        assert deferred is not None
        assert (deferred.status, deferred.attempts, deferred.last_error) == (J.FAILED, 4, "still")
        assert deferred.next_attempt_at == at(120)
        assert await store.due_jobs(at(1000)) == []  # the outbox sweeper leaves it alone
        assert await store.get_job("S1:REFUND") == deferred
        retried = await store.retry_job("S1:REFUND", at(200))  # an operator may still retry
        assert retried is not None and retried.status is J.PENDING

    async def test_due_jobs_selection_and_order(self, store: BillingStore) -> None:
        jobs = [
            make_job("due", next_attempt_at=at(2)),
            make_job("not-yet", next_attempt_at=at(100)),
            make_job("leased", next_attempt_at=at(1), lease_until=at(60)),
            make_job("lease-expired", next_attempt_at=at(3), lease_until=at(20)),
            make_job("lease-ends-now", next_attempt_at=at(4), lease_until=at(50)),
            make_job("dead-worker", status=J.RUNNING, next_attempt_at=at(1.5), lease_until=at(10)),
            make_job("running", status=J.RUNNING, next_attempt_at=at(0), lease_until=at(51)),
            make_job("done", status=J.DONE, next_attempt_at=at(0)),
            make_job("failed", status=J.FAILED, next_attempt_at=at(0)),
            make_job("exactly-now", next_attempt_at=at(50)),
        ]
        for job in jobs:
            await store.add_job(job)
        due = await store.due_jobs(at(50))
        assert [j.job_id for j in due] == [
            "dead-worker",
            "due",
            "lease-expired",
            "lease-ends-now",
            "exactly-now",
        ]
        assert due[0] == jobs[5]
        assert [j.job_id for j in await store.due_jobs(at(50), limit=2)] == ["dead-worker", "due"]
        assert await store.due_jobs(at(0.5)) == []
        assert await store.due_jobs(at(50), limit=0) == []

    async def test_lease_job_is_a_compare_and_set(self, store: BillingStore) -> None:
        await store.add_job(make_job())
        assert await store.lease_job("S1:REFUND", None, at(30))
        leased = await store.get_job("S1:REFUND")
        assert leased is not None
        assert (leased.status, leased.lease_until, leased.attempts) == (J.PENDING, at(30), 0)
        assert not await store.lease_job("S1:REFUND", None, at(40))  # someone got there first
        assert not await store.lease_job("S1:REFUND", at(29), at(40))
        assert await store.lease_job("S1:REFUND", leased.lease_until, at(40))
        renewed = await store.get_job("S1:REFUND")
        assert renewed is not None and renewed.lease_until == at(40)
        assert not await store.lease_job("nope", None, at(40))

    async def test_lease_job_sends_a_dead_run_back_to_pending(self, store: BillingStore) -> None:
        await store.add_job(make_job())
        running = await store.claim_job("S1:REFUND", at(0), at(30))
        assert running is not None
        assert await store.lease_job("S1:REFUND", running.lease_until, at(90))
        back = await store.get_job("S1:REFUND")
        assert back is not None
        # the run that died counted as an attempt
        assert (back.status, back.lease_until, back.attempts) == (J.PENDING, at(90), 1)
        # the old worker's outcome is then refused
        assert await store.complete_job("S1:REFUND") is None

    async def test_lease_job_refuses_finished_jobs(self, store: BillingStore) -> None:
        await store.add_job(make_job("done", status=J.DONE))
        await store.add_job(make_job("failed", status=J.FAILED))
        assert not await store.lease_job("done", None, at(30))
        assert not await store.lease_job("failed", None, at(30))
        assert await store.due_jobs(at(1000)) == []

    async def test_concurrent_sweepers_lease_once(self, store_factory: StoreFactory) -> None:
        async with opened(store_factory) as first, opened(store_factory) as second:
            await first.add_job(make_job(status=J.RUNNING, lease_until=at(10)))
            (expired,) = await first.due_jobs(at(20))
            results = await asyncio.gather(
                *(
                    (first if n % 2 else second).lease_job(
                        "S1:REFUND", expired.lease_until, at(100 + n)
                    )
                    for n in range(20)
                )
            )
            assert sum(results) == 1
            winner = results.index(True)
            stored = await second.get_job("S1:REFUND")
            assert stored is not None
            assert (stored.status, stored.lease_until) == (J.PENDING, at(100 + winner))
            assert await first.due_jobs(at(20)) == []

    # receipts -----------------------------------------------------------------------------------

    async def test_create_receipt(self, store: BillingStore) -> None:
        await add(store, 1)
        before = await store.get_session("S1")
        receipt = await store.create_receipt("S1", "tok-1", "<p>1</p>", "one", at(20))
        assert (receipt.session_id, receipt.number, receipt.token) == ("S1", 1, "tok-1")
        assert (receipt.html, receipt.text) == ("<p>1</p>", "one")
        assert (receipt.created_at, receipt.emailed_at) == (at(20), None)
        assert_utc(receipt.created_at)
        session = await store.get_session("S1")
        assert session is not None and before is not None
        assert session.receipt_url == "/receipts/tok-1"
        assert session.updated_at >= before.updated_at
        assert await store.get_receipt("S1") == receipt
        assert await store.receipt_by_token("tok-1") == receipt
        # one receipt per session: a second call returns the first unchanged
        again = await store.create_receipt("S1", "tok-2", "<p>x</p>", "x", at(30))
        assert again == receipt
        assert await store.receipt_by_token("tok-2") is None
        assert (await store.get_session("S1")) == session
        await add(store, 2)
        second = await store.create_receipt("S2", "tok-3", "<p>2</p>", "two", at(40))
        assert second.number == 2
        assert await store.get_receipt("S3") is None
        assert await store.receipt_by_token("nope") is None

    async def test_create_receipt_render_gets_the_number(self, store: BillingStore) -> None:
        await add(store, 1)
        await add(store, 2)
        seen: list[int] = []

        def render(number: int) -> tuple[str, str]:
            seen.append(number)
            return f"<h1>Receipt #{number}</h1>", f"Receipt #{number}"

        await store.create_receipt("S1", "tok-1", "", "", at(1), render)
        receipt = await store.create_receipt("S2", "tok-2", "draft", "draft", at(2), render)
        assert seen == [1, 2]
        assert (receipt.number, receipt.html, receipt.text) == (
            2,
            "<h1>Receipt #2</h1>",
            "Receipt #2",
        )
        assert await store.receipt_by_token("tok-2") == receipt
        assert await store.create_receipt("S2", "tok-9", "", "", at(3), render) == receipt

    async def test_create_receipt_failed_render_uses_no_number(self, store: BillingStore) -> None:
        await add(store, 1)
        await add(store, 2)

        def broken(number: int) -> tuple[str, str]:
            raise RuntimeError("template error")

        with pytest.raises(RuntimeError):
            await store.create_receipt("S1", "tok-1", "", "", at(1), broken)
        assert await store.get_receipt("S1") is None
        session = await store.get_session("S1")
        assert session is not None and session.receipt_url is None
        receipt = await store.create_receipt("S2", "tok-2", "h", "t", at(2))
        assert receipt.number == 1  # no gap

    async def test_create_receipt_refuses_bad_input(self, store: BillingStore) -> None:
        with pytest.raises(ValueError):
            await store.create_receipt("nope", "tok-1", "h", "t", at(1))
        await add(store, 1)
        await add(store, 2)
        await store.create_receipt("S1", "tok-1", "h", "t", at(1))
        with pytest.raises(ValueError):  # tokens are unique
            await store.create_receipt("S2", "tok-1", "h", "t", at(2))
        assert await store.get_receipt("S2") is None
        assert (await store.create_receipt("S2", "tok-2", "h", "t", at(3))).number == 2

    async def test_concurrent_receipts_are_numbered_without_gaps(
        self, store_factory: StoreFactory
    ) -> None:
        async with opened(store_factory) as first, opened(store_factory) as second:
            for n in range(1, 21):
                await add(first, n)
            results = await asyncio.gather(
                *(
                    (first if n % 2 else second).create_receipt(
                        f"S{n}", f"tok-{n}", "h", "t", at(n)
                    )
                    for n in range(1, 21)
                )
            )
            assert sorted(r.number for r in results) == list(range(1, 21))
            assert [r.session_id for r in results] == [f"S{n}" for n in range(1, 21)]
            for receipt in results:
                assert await second.get_receipt(receipt.session_id) == receipt

    async def test_concurrent_receipts_for_one_session_make_one(
        self, store_factory: StoreFactory
    ) -> None:
        async with opened(store_factory) as first, opened(store_factory) as second:
            await add(first, 1)
            results = await asyncio.gather(
                *(
                    (first if n % 2 else second).create_receipt(
                        "S1", f"tok-{n}", f"h{n}", "t", at(n)
                    )
                    for n in range(20)
                )
            )
            assert len({(r.number, r.token, r.html) for r in results}) == 1
            assert results[0].number == 1
            session = await second.get_session("S1")
            assert session is not None
            assert session.receipt_url == f"/receipts/{results[0].token}"
            await add(first, 2)
            assert (await first.create_receipt("S2", "tok-x", "h", "t", at(50))).number == 2

    async def test_mark_receipt_emailed(self, store: BillingStore) -> None:
        await add(store, 1)
        receipt = await store.create_receipt("S1", "tok-1", "h", "t", at(1))
        await store.mark_receipt_emailed("S1", at(5))
        emailed = await store.get_receipt("S1")
        assert emailed is not None
        assert emailed.emailed_at == at(5)
        assert_utc(emailed.emailed_at)
        assert (emailed.number, emailed.token, emailed.html) == (1, "tok-1", "h")
        assert await store.receipt_by_token("tok-1") == emailed
        assert await store.create_receipt("S1", "tok-2", "x", "x", at(9)) == emailed
        assert emailed != receipt
        await store.mark_receipt_emailed("nope", at(5))  # no receipt: nothing happens
