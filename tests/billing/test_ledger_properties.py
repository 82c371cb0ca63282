"""Property tests: the operations ledger and the payment state machine settle money exactly once.

A card session holds A cents (payment AUTHORIZED) and is CHARGING. Hypothesis generates batches
of events; the events of one batch run concurrently, on two store connections to one SQLite file
(two "processes"), and any event may crash at a checkpoint (the rest of its work is lost):

- a StopTransaction with energy E (redelivered as often as hypothesis likes), whose settlement
  captures min(cost(E), A) under the key "<sid>:CAPTURE";
- a stop before any energy flowed, whose settlement voids the hold under "<sid>:VOID";
- a RemoteStop request (CHARGING -> STOPPING);
- a reconciliation sweep (what a restarted process runs): retries pending operations and
  settles ended sessions that are still AUTHORIZED;
- after a batch, optionally a restart: both connections are closed and reopened.

`deliver_stop` / `settle_payment` / `reconcile` below are a minimal settlement written against the
store port only. The exclusion between capture and void does NOT come from the idempotency keys
(they differ per operation type); it comes from the session's compare-and-set: the first stop
that ends the session (COMPLETED with its energy, or CANCELED) decides, and every settlement,
retry and redelivery derives the operation from the STORED session, never from the event.

The fake gateway applies each idempotency key at most once (as Pagar.me does) and records every
effect it applies, so the properties are about what reaches the gateway.
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from billing.models import (
    Method,
    Operation,
    OperationStatus,
    OperationType,
    PaymentStatus,
    Session,
    SessionStatus,
)
from billing.store.ports import BillingStore
from billing.store.sqlite import SqliteBillingStore
from billing.tariffs import Tariff

S = SessionStatus
P = PaymentStatus
OpT = OperationType
SID = "sess-1"
TARIFF = Tariff(Decimal("1.50"), Decimal("2.00"))
CRASH_POINTS = ("after_decide", "after_begin", "after_gateway", "after_finish")


class Crash(Exception):
    """The process died at a checkpoint: whatever came after it never happened."""


def checkpoint(crash_at: str | None, point: str) -> None:
    if crash_at == point:
        raise Crash(point)


@dataclass
class Effect:
    key: str
    type: OperationType
    amount: int


@dataclass
class FakeGateway:
    """Applies each idempotency key at most once; a repeated key returns the first answer."""

    effects: list[Effect] = field(default_factory=list)
    answers: dict[str, dict[str, object]] = field(default_factory=dict)

    async def apply(self, key: str, type: OperationType, amount: int) -> dict[str, object]:
        await asyncio.sleep(0)  # a network round trip: let other deliveries interleave
        if key not in self.answers:
            self.effects.append(Effect(key, type, amount))
            self.answers[key] = {"key": key, "type": type.value, "amount": amount, "ok": True}
        return self.answers[key]


# the settlement under test (store port only) ---------------------------------------------------


async def deliver_stop(
    store: BillingStore, gateway: FakeGateway, energy_wh: int, crash_at: str | None
) -> None:
    """A StopTransaction delivery: energy_wh > 0 is billed, 0 means nothing was delivered."""
    if energy_wh > 0:
        await store.transition_session(
            SID,
            {S.CHARGING, S.STOPPING},
            S.COMPLETED,
            energy_wh=energy_wh,
            cost_cents=TARIFF.cost_cents(energy_wh),
        )
    else:
        await store.transition_session(
            SID, {S.AUTHORIZED, S.STARTING, S.CHARGING, S.STOPPING}, S.CANCELED
        )
    # Whether or not this delivery won, settle what the store says was decided.
    checkpoint(crash_at, "after_decide")
    await settle_payment(store, gateway, crash_at)


async def settle_payment(store: BillingStore, gateway: FakeGateway, crash_at: str | None) -> None:
    session = await store.get_session(SID)
    assert session is not None
    if session.payment_status is not P.AUTHORIZED:
        return  # already captured or voided
    if session.status is S.COMPLETED:
        kind, amount = OpT.CAPTURE, min(session.cost_cents, session.authorized_amount)
    elif session.status is S.CANCELED:
        kind, amount = OpT.VOID, session.authorized_amount
    else:
        return  # not stopped yet
    op, _ = await store.begin_operation(SID, kind, amount, f"{SID}:{kind.value}", "ch_1")
    checkpoint(crash_at, "after_begin")
    await complete(store, gateway, op, crash_at)


async def complete(
    store: BillingStore, gateway: FakeGateway, op: Operation, crash_at: str | None
) -> None:
    """Send a recorded operation (with ITS key and amount) and apply its outcome."""
    if op.status is OperationStatus.PENDING:
        answer = await gateway.apply(op.idempotency_key, op.type, op.amount)
        checkpoint(crash_at, "after_gateway")
        finished = await store.finish_operation(
            op.idempotency_key, OperationStatus.SUCCEEDED, raw=answer
        )
        assert finished is not None
        op = finished
        checkpoint(crash_at, "after_finish")
    if op.status is not OperationStatus.SUCCEEDED:
        return
    if op.type is OpT.CAPTURE:
        await store.transition_payment(SID, {P.AUTHORIZED}, P.CAPTURED, captured_amount=op.amount)
    elif op.type is OpT.VOID:
        await store.transition_payment(SID, {P.AUTHORIZED}, P.VOIDED)


async def reconcile(store: BillingStore, gateway: FakeGateway, crash_at: str | None) -> None:
    """The sweep a restarted process runs: retry unknown outcomes, settle ended sessions."""
    for op in await store.pending_operations():
        await complete(store, gateway, op, crash_at)
    ended = await store.list_sessions(statuses={S.COMPLETED, S.CANCELED})
    if any(s.payment_status is P.AUTHORIZED for s in ended):
        await settle_payment(store, gateway, crash_at)
    for op in await store.list_operations(SID):  # finished but payment not moved yet
        if op.status is OperationStatus.SUCCEEDED:
            await complete(store, gateway, op, crash_at)


# the scenario ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    kind: str  # "stop" | "redeliver" | "remote_stop" | "reconcile"
    energy_wh: int = 0  # stop: 0 = stopped before charging; redeliver: index of an earlier stop
    crash_at: str | None = None
    conn: int = 0  # which of the two store connections ("processes") handles it


@dataclass(frozen=True)
class Batch:
    events: tuple[Event, ...]
    restart_after: bool = False


crashes = st.one_of(st.none(), st.none(), st.sampled_from(CRASH_POINTS))
conns = st.integers(0, 1)
events = st.one_of(
    st.builds(Event, st.just("stop"), st.integers(1, 50_000), crashes, conns),
    st.builds(Event, st.just("stop"), st.just(0), crashes, conns),
    st.builds(Event, st.just("redeliver"), st.integers(0, 10), crashes, conns),
    st.builds(Event, st.just("remote_stop"), st.just(0), st.none(), conns),
    st.builds(Event, st.just("reconcile"), st.just(0), crashes, conns),
)
batches = st.lists(
    st.builds(Batch, st.lists(events, min_size=1, max_size=4).map(tuple), st.booleans()),
    min_size=1,
    max_size=6,
)


def new_session(authorized: int) -> Session:
    now = datetime.now(UTC)
    return Session(
        session_id=SID,
        station_id="CP1",
        connector_id=1,
        method=Method.CREDIT_CARD,
        id_tag="TAG1",
        requested_amount=authorized,
        email=None,
        cpf=None,
        currency="BRL",
        price_per_kwh="1.50",
        fixed_connection_fee="2.00",
        status=S.CHARGING,
        created_at=now,
        updated_at=now,
        transaction_id=1,
        payment_status=P.AUTHORIZED,
        charge_id="ch_1",
        authorized_amount=authorized,
    )


async def check_safety(store: BillingStore, gateway: FakeGateway, authorized: int) -> None:
    """What must hold at every moment, crashes or not."""
    captures = [e for e in gateway.effects if e.type is OpT.CAPTURE]
    voids = [e for e in gateway.effects if e.type is OpT.VOID]
    assert len(captures) <= 1, gateway.effects
    assert len(voids) <= 1, gateway.effects
    assert not (captures and voids), gateway.effects
    assert all(0 <= e.amount <= authorized for e in captures)

    ops = {op.idempotency_key: op for op in await store.list_operations(SID)}
    assert len(ops) <= 1, ops  # one decision, one operation
    for effect in gateway.effects:  # nothing reaches the gateway without a ledger entry first
        op = ops[effect.key]
        assert (op.type, op.amount) == (effect.type, effect.amount)
    for op in ops.values():
        if op.status is OperationStatus.SUCCEEDED:
            assert any(e.key == op.idempotency_key for e in gateway.effects)

    session = await store.get_session(SID)
    assert session is not None
    assert session.authorized_amount == authorized
    succeeded = [op for op in ops.values() if op.status is OperationStatus.SUCCEEDED]
    if session.payment_status is P.CAPTURED:
        assert [(op.type, op.amount) for op in succeeded] == [
            (OpT.CAPTURE, session.captured_amount)
        ]
        assert session.status is S.COMPLETED
    elif session.payment_status is P.VOIDED:
        assert [op.type for op in succeeded] == [OpT.VOID]
        assert session.status is S.CANCELED and session.captured_amount == 0
    else:
        assert session.payment_status is P.AUTHORIZED
        assert session.captured_amount == 0


async def run_scenario(path: str, authorized: int, plan: list[Batch]) -> None:
    gateway = FakeGateway()
    stores: list[BillingStore] = [SqliteBillingStore(path), SqliteBillingStore(path)]
    for store in stores:
        await store.open()
    await stores[0].create_session(new_session(authorized))
    stops: list[int] = []  # energy of every stop delivered so far, for redeliveries
    try:
        for batch in plan:
            work = []
            for event in batch.events:
                store = stores[event.conn]
                if event.kind == "redeliver" and stops:
                    event = Event("stop", stops[event.energy_wh % len(stops)], event.crash_at)
                if event.kind == "stop":
                    stops.append(event.energy_wh)
                    work.append(deliver_stop(store, gateway, event.energy_wh, event.crash_at))
                elif event.kind == "remote_stop":
                    work.append(store.transition_session(SID, {S.CHARGING}, S.STOPPING))
                elif event.kind == "reconcile":
                    work.append(reconcile(store, gateway, event.crash_at))
            for outcome in await asyncio.gather(*work, return_exceptions=True):
                if isinstance(outcome, BaseException) and not isinstance(outcome, Crash):
                    raise outcome
            await check_safety(stores[0], gateway, authorized)
            if batch.restart_after:
                for store in stores:
                    await store.close()
                stores = [SqliteBillingStore(path), SqliteBillingStore(path)]
                for store in stores:
                    await store.open()

        # a final restart and an uninterrupted sweep: everything settles
        for store in stores:
            await store.close()
        stores = [SqliteBillingStore(path)]
        await stores[0].open()
        await reconcile(stores[0], gateway, None)
        await check_safety(stores[0], gateway, authorized)
        await check_settled(stores[0], gateway, authorized, stops)
    finally:
        for store in stores:
            await store.close()


async def check_settled(
    store: BillingStore, gateway: FakeGateway, authorized: int, stops: list[int]
) -> None:
    """Once any stop happened, the hold ends in exactly one of captured / voided."""
    session = await store.get_session(SID)
    assert session is not None
    ops = await store.list_operations(SID)
    assert await store.pending_operations() == []
    if not stops:
        assert gateway.effects == [] and ops == []
        assert session.payment_status is P.AUTHORIZED
        return
    assert len(gateway.effects) == 1, gateway.effects
    effect = gateway.effects[0]
    assert [(op.type, op.amount, op.status) for op in ops] == [
        (effect.type, effect.amount, OperationStatus.SUCCEEDED)
    ]
    if session.status is S.COMPLETED:
        # the energy billed is the one of a delivered stop (the first that ended the session)
        assert session.energy_wh in stops
        expected = min(TARIFF.cost_cents(session.energy_wh), authorized)
        assert (effect.type, effect.amount) == (OpT.CAPTURE, expected)
        assert (session.payment_status, session.captured_amount) == (P.CAPTURED, expected)
    else:
        assert session.status is S.CANCELED
        assert 0 in stops  # only a stop before charging cancels
        assert (effect.type, effect.amount) == (OpT.VOID, authorized)
        assert session.payment_status is P.VOIDED and session.captured_amount == 0


@settings(max_examples=75, deadline=None)
@given(authorized=st.integers(1, 20_000), plan=batches)
@example(  # capture and void race; the void's process crashes after the gateway answered
    authorized=5000,
    plan=[Batch((Event("stop", 1234, None, 0), Event("stop", 0, "after_gateway", 1)))],
)
@example(  # a capture lost after the gateway applied it, redelivered with other energy
    authorized=300,
    plan=[
        Batch((Event("stop", 40_000, "after_gateway", 0),), restart_after=True),
        Batch((Event("stop", 10, None, 1), Event("redeliver", 0, "after_finish", 0))),
    ],
)
@example(  # decided, then every process dies before the ledger is written
    authorized=100,
    plan=[Batch((Event("stop", 5, "after_decide", 0), Event("stop", 5, "after_decide", 1)))],
)
def test_money_settles_exactly_once(authorized: int, plan: list[Batch]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run_scenario(str(Path(tmp) / "csms.db"), authorized, plan))


@settings(max_examples=50, deadline=None)
@given(
    authorized=st.integers(1, 20_000),
    energies=st.lists(st.integers(0, 50_000), min_size=1, max_size=12),
)
def test_concurrent_redeliveries_settle_once(authorized: int, energies: list[int]) -> None:
    """Many stops (any mix of energy and none) delivered at once over two connections."""
    plan = [Batch(tuple(Event("stop", e, None, n % 2) for n, e in enumerate(energies)))]
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run_scenario(str(Path(tmp) / "csms.db"), authorized, plan))
