"""THE payment state machine: every session or payment status change in billing goes through here.

`SESSION_MOVES` and `PAYMENT_MOVES` are the rules. A move names the statuses it expects the
session to be in and the target; a move the tables do not allow is a programming error
(`IllegalMove`) and reaches no store. Allowed moves are applied by the store as compare-and-set
(the status must still be one of the expected ones), never as a read followed by a write.

The refund rules live here too: what a session may still refund (`refund_room`) and whether a
settled refund leaves the payment REFUNDED or PARTIALLY_REFUNDED (`after_refund`). Both are
decided in Python on a session read at some `version` and written only if the session is still
at that version (the store's `begin_operation(..., at_version=)` and `settle_operation`), so
concurrent refunds re-decide instead of overrunning what was paid.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from typing import Any

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

log = logging.getLogger(__name__)

S = SessionStatus
P = PaymentStatus

SESSION_MOVES: dict[SessionStatus, frozenset[SessionStatus]] = {
    # PENDING_PAYMENT -> CHARGING: a saved-card start, whose transaction is already running
    # when its hold is placed
    S.PENDING_PAYMENT: frozenset({S.AUTHORIZED, S.CHARGING, S.CANCELED, S.FAILED}),
    S.AUTHORIZED: frozenset({S.STARTING, S.CHARGING, S.CANCELED, S.FAILED}),
    S.STARTING: frozenset({S.CHARGING, S.CANCELED, S.FAILED}),
    # -> REVIEW: settlement found the energy implausible; an operator's decision completes it
    S.CHARGING: frozenset({S.STOPPING, S.REVIEW, S.COMPLETED, S.CANCELED}),
    S.STOPPING: frozenset({S.REVIEW, S.COMPLETED, S.CANCELED}),
    S.REVIEW: frozenset({S.COMPLETED}),
    S.COMPLETED: frozenset(),
    S.CANCELED: frozenset(),
    S.FAILED: frozenset(),
}

PAYMENT_MOVES: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    # PENDING -> REFUNDED: a PIX charge paid unseen (its webhook lost) whose cancel returned
    # the money (on Pagar.me, DELETE on a paid charge is a refund)
    P.PENDING: frozenset({P.AUTHORIZED, P.PAID, P.VOIDED, P.REFUNDED, P.FAILED, P.WAIVED}),
    P.AUTHORIZED: frozenset({P.CAPTURED, P.VOIDED}),
    P.PAID: frozenset({P.REFUNDED, P.PARTIALLY_REFUNDED}),
    P.CAPTURED: frozenset({P.REFUNDED, P.PARTIALLY_REFUNDED}),
    P.PARTIALLY_REFUNDED: frozenset({P.REFUNDED, P.PARTIALLY_REFUNDED}),
    P.VOIDED: frozenset(),
    P.REFUNDED: frozenset(),
    P.FAILED: frozenset(),
    P.WAIVED: frozenset(),
}


class IllegalMove(AssertionError):
    """A move the tables do not allow: a bug in the caller, never a runtime condition."""


def can_move(table: dict[Any, frozenset[Any]], current: Any, target: Any) -> bool:
    return target in table.get(current, frozenset())


def sources(table: dict[Any, frozenset[Any]], target: Any) -> frozenset[Any]:
    """Every status from which `target` may be reached."""
    return frozenset(status for status, targets in table.items() if target in targets)


def _check(table: dict[Any, frozenset[Any]], expected: Collection[Any], target: Any) -> None:
    illegal = sorted(str(s) for s in expected if not can_move(table, s, target))
    if illegal or not expected:
        raise IllegalMove(f"no move {illegal or '(nothing)'} -> {target}")


async def move_session(store: BillingStore, session_id: str, expected: Collection[SessionStatus],
                       target: SessionStatus, **changes: Any) -> Session | None:
    """Session status `expected` -> `target` (with `changes`), as one compare-and-set.

    None when the session is no longer in one of `expected` (someone else moved it first)."""
    _check(SESSION_MOVES, expected, target)
    return await store.transition_session(session_id, expected, target, **changes)


async def move_payment(store: BillingStore, session_id: str, expected: Collection[PaymentStatus],
                       target: PaymentStatus, **changes: Any) -> Session | None:
    """Payment status `expected` -> `target` (with `changes`), as one compare-and-set."""
    _check(PAYMENT_MOVES, expected, target)
    return await store.transition_payment(session_id, expected, target, **changes)


async def after_success(store: BillingStore, session_id: str, type: OperationType,
                        amount: int) -> Session | None:
    """Move the payment after a CAPTURE or VOID succeeded at the gateway. Idempotent: a second
    call (a retried job, a crash between recording the outcome and this move) finds the payment
    moved already and changes nothing."""
    if type == OperationType.CAPTURE:
        return await move_payment(store, session_id, {P.AUTHORIZED}, P.CAPTURED,
                                  captured_amount=amount)
    if type == OperationType.VOID:  # a card hold, or an unpaid PIX charge
        return await move_payment(store, session_id, {P.AUTHORIZED, P.PENDING}, P.VOIDED)
    return None


async def returned_unseen(store: BillingStore, session_id: str, paid: int,
                          refunded: int) -> Session | None:
    """The gateway shows a PIX charge we never saw paid (its webhook lost) paid and returned
    (a cancel of a paid charge refunds it): PENDING -> REFUNDED with what it paid and returned,
    so the ledger never reads "voided, nothing refunded" for money that came and went back."""
    return await move_payment(store, session_id, {P.PENDING}, P.REFUNDED,
                              authorized_amount=paid, refunded_amount=refunded)


async def charge_created(store: BillingStore, key: str, raw: dict[str, Any] | None = None,
                         **ids: Any) -> Session | None:
    """The gateway created a PIX charge: PENDING CHARGE -> SUCCEEDED and, in the same
    compare-and-set, its identifiers and QR code (`ids`) on the session, so a crash leaves both
    or neither. The payment stays PENDING until the charge is seen paid. None when the
    operation is not a PENDING CHARGE (recorded already): nothing changes then."""
    return await _settle(store, key, OperationType.CHARGE, lambda session, op: ids, raw)


async def _settle(store: BillingStore, key: str, kind: OperationType,
                  changes: Callable[[Session, Operation], dict[str, Any]],
                  raw: dict[str, Any] | None) -> Session | None:
    """PENDING operation `key` of `kind` -> SUCCEEDED together with `changes(session, op)` on
    its session, at the version they were decided on (decided again when the session moved
    meanwhile). None when the operation is not a PENDING one of `kind`: nothing changes."""
    while True:
        op = await store.get_operation(key)
        if op is None or op.type != kind or op.status != OperationStatus.PENDING:
            return None
        session = await store.get_session(op.session_id)
        if session is None:
            return None
        settled = await store.settle_operation(key, session_version=session.version,
                                               changes=changes(session, op), raw=raw)
        if settled is not None:
            return settled


# refunds -----------------------------------------------------------------------------------------

def refundable(session: Session) -> int:
    """What refunds may return in total: what the driver paid (PIX, upfront) or what was
    captured from the card."""
    if session.method == Method.PIX:
        return session.authorized_amount
    return session.captured_amount


def reserved_for_refunds(operations: Sequence[Operation]) -> int:
    """Refunds that hold their share: PENDING and SUCCEEDED ones (a FAILED one frees it)."""
    return sum(op.amount for op in operations
               if op.type == OperationType.REFUND and op.status != OperationStatus.FAILED)


def refund_room(limit: int, operations: Sequence[Operation]) -> int:
    """What may still be refunded under `limit` (normally `refundable(session)`)."""
    return limit - reserved_for_refunds(operations)


def after_refund(session: Session, amount: int) -> dict[str, Any]:
    """The session's changes once a refund of `amount` came back from the gateway: the total
    refunded, and REFUNDED when it reaches what was paid, else PARTIALLY_REFUNDED. What was
    paid is the PIX amount paid upfront (also when part of it was charged for energy) or the
    captured amount for every other method."""
    refunded = session.refunded_amount + amount
    paid = max(session.captured_amount, session.authorized_amount) \
        if session.method == Method.PIX else session.captured_amount
    target = P.REFUNDED if refunded >= paid else P.PARTIALLY_REFUNDED
    changes: dict[str, Any] = {"refunded_amount": refunded}
    if can_move(PAYMENT_MOVES, session.payment_status, target):
        changes["payment_status"] = target
    else:  # the money came back whatever we thought of the payment: count it, keep the status
        log.error("session %s: refund settled while the payment is %s", session.session_id,
                  session.payment_status.value)
    return changes


def check_cents(name: str, value: Any, *, positive: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < (1 if positive else 0):
        kind = "a positive" if positive else "a non-negative"
        raise ValueError(f"{name} must be {kind} integer of cents: {value!r}")


async def begin_refund(store: BillingStore, session_id: str, amount: int, key: str, limit: int,
                       charge_id: str | None = None, fingerprint: str | None = None,
                       ) -> tuple[Operation | None, bool]:
    """Record a PENDING REFUND only if the session's refunds that hold their share, plus
    `amount`, stay within `limit`; returns (operation, created). An existing key wins, whatever
    is asked now: (that operation, False; the caller compares its `fingerprint`). Too much:
    (None, False) and nothing is recorded.

    The decision is made on the session read at some version; the store inserts only if the
    session is still at that version (and bumps it), so two concurrent refunds never both
    take the last of the room: the loser decides again. Raises ValueError for an amount that
    is not a positive int, a limit that is not an int, or an unknown session."""
    check_cents("amount", amount, positive=True)
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValueError(f"limit must be an integer of cents: {limit!r}")
    while True:
        existing = await store.get_operation(key)
        if existing is not None:
            return existing, False
        session = await store.get_session(session_id)
        if session is None:
            raise ValueError(f"unknown session {session_id!r}")
        if amount > refund_room(limit, await store.list_operations(session_id)):
            return None, False
        op, created = await store.begin_operation(session_id, OperationType.REFUND, amount, key,
                                                  charge_id, at_version=session.version,
                                                  fingerprint=fingerprint)
        if op is not None:
            return op, created
        # the session changed since it was read (another refund, most likely): decide again


async def settle_refund(store: BillingStore, key: str, raw: dict[str, Any] | None = None,
                        ) -> Session | None:
    """The gateway returned a refund's money: PENDING REFUND -> SUCCEEDED and, in the same
    compare-and-set, the session's refunded total and payment status (`after_refund`).
    Returns the session, or None when the operation is not a PENDING REFUND (already settled,
    failed, unknown): nothing changes then, so a refund is never counted twice."""
    return await _settle(store, key, OperationType.REFUND,
                         lambda session, op: after_refund(session, op.amount), raw)


async def reopen(store: BillingStore, key: str) -> bool:
    """An operator retries a FAILED operation: FAILED -> PENDING. A FAILED refund holds no
    room, so others may have used it meanwhile: it is reopened only if its amount still fits,
    decided on the session at some version and reopened only at that version (else decided
    again). False when it no longer fits; True otherwise (also when nothing was FAILED)."""
    while True:
        op = await store.get_operation(key)
        if op is None or op.status != OperationStatus.FAILED:
            return True
        session = await store.get_session(op.session_id)
        if session is None:
            return False
        if op.type == OperationType.REFUND and op.amount > refund_room(
                refundable(session), await store.list_operations(op.session_id)):
            return False
        if await store.reopen_operation(key, at_version=session.version) is not None:
            return True
