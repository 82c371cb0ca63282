"""Settle a stopped transaction exactly once, from what billing recorded of it; release what a
session that delivered nothing had reserved."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from decimal import Decimal

from billing import payment
from billing.errors import BillingError, require_session
from billing.jobs.handlers import receipt_due
from billing.jobs.outbox import MoneyJobs
from billing.ledger import Ledger, Request
from billing.models import Method, OperationType, PaymentStatus, Session, SessionStatus
from billing.plausibility import Plausibility
from billing.refunds import Refunds
from billing.store.ports import BillingStore
from billing.tariffs import Tariff
from csms.events import TransactionStopped

log = logging.getLogger(__name__)

S = SessionStatus
P = PaymentStatus
OpT = OperationType
RUNNING = frozenset({S.CHARGING, S.STOPPING})


def session_tariff(session: Session) -> Tariff:
    """The tariff the session was started with (a snapshot: later changes do not apply)."""
    return Tariff(Decimal(session.price_per_kwh), Decimal(session.fixed_connection_fee),
                  session.currency)


class Settlement:
    def __init__(self, store: BillingStore, ledger: Ledger, refunds: Refunds,
                 jobs: MoneyJobs, plausibility: Plausibility) -> None:
        self.store = store
        self.plausibility = plausibility
        self.ledger = ledger
        self.refunds = refunds
        self.jobs = jobs
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def record_stop(self, session: Session, stop: TransactionStopped) -> None:
        """Keep what settlement and the receipt need of the stopped transaction on the session,
        once (the core sends the stored stop again when a station repeats it)."""
        if session.stop_recorded or session.status not in RUNNING:
            return
        await self.store.update_session(
            session.session_id, if_status=RUNNING, meter_start=stop.meter_start,
            meter_stop=stop.meter_stop, charging_started_at=stop.started_at,
            stopped_at=stop.stopped_at, stop_reason=stop.reason)

    async def settle(self, session_id: str) -> Session:
        """Bill a stopped transaction exactly once, however often this runs."""
        async with self._locks[session_id]:
            session = await self._get(session_id)
            if session.transaction_id is None or session.status not in RUNNING or \
                    not session.stop_recorded:
                return session
            energy = session.delivered_wh
            cost = session_tariff(session).cost_cents(energy) if energy > 0 else 0
            doubt = None if session.method == Method.VIP else self.plausibility.doubt(
                session_id, "settlement", energy, session.charging_started_at,
                session.stopped_at)
            if doubt is not None:  # nothing is captured or refunded: an operator decides
                await payment.move_session(self.store, session_id, RUNNING, S.REVIEW,
                                           energy_wh=energy, cost_cents=cost,
                                           failure_reason=doubt)
                return await self._get(session_id)
            await self.store.update_session(session_id, if_status=RUNNING, energy_wh=energy,
                                            cost_cents=cost)
            if energy == 0:
                ended = await payment.move_session(
                    self.store, session_id, RUNNING, S.CANCELED, ended_at=session.stopped_at,
                    failure_reason="no energy delivered")
                if ended is not None:
                    await self.release(ended)
                return await self._get(session_id)
            if session.method == Method.VIP:
                pass  # waived: nothing to take
            elif cost == 0:
                await self.release(session)  # free charging: nothing to capture, give it back
            else:
                await self._charge(session, min(cost, session.authorized_amount))
            await payment.move_session(self.store, session_id, RUNNING, S.COMPLETED,
                                       ended_at=session.stopped_at)
            await receipt_due(self.store, self.jobs, session_id)
            return await self._get(session_id)

    async def review(self, session_id: str, capture: int | None) -> Session:
        """An operator's decision on a session in REVIEW: charge `capture` cents (at most what
        was authorized or paid; the rest of the hold is released, the rest of a PIX payment
        refunded), or release everything (None or 0). Then COMPLETED."""
        async with self._locks[session_id]:
            session = await self._get(session_id)
            if session.status != S.REVIEW:
                raise BillingError(409, "not_in_review",
                                   f"the session is {session.status.value}, not in REVIEW")
            amount = min(capture or 0, session.authorized_amount)
            if amount == 0:
                await self.release(session)
            else:
                await self._charge(session, amount)
            done = await payment.move_session(self.store, session_id, {S.REVIEW}, S.COMPLETED,
                                              ended_at=session.stopped_at, cost_cents=amount)
            if done is not None:
                log.info("session %s: reviewed, %s cents charged", session_id, amount)
                await receipt_due(self.store, self.jobs, session_id)
            return await self._get(session_id)

    async def _charge(self, session: Session, amount: int) -> None:
        """Take `amount` (> 0): a partial capture of the card hold, or keep that much of a PIX
        payment and refund the rest."""
        if session.method.is_card:
            await self._capture(session, amount)
        elif session.method == Method.PIX:
            await self.store.update_session(session.session_id, captured_amount=amount)
            unused = session.authorized_amount - amount
            if unused > 0:
                await self.refunds.refund_unused(session, unused)

    async def _capture(self, session: Session, amount: int) -> None:
        if session.payment_status != P.AUTHORIZED or session.charge_id is None:
            return
        await self.ledger.run(session.session_id,
                              Request(OpT.CAPTURE, amount, charge_id=session.charge_id))

    async def release(self, session: Session) -> None:
        """Give back everything reserved for a session that delivered nothing."""
        session = await self._get(session.session_id)
        sid = session.session_id
        if session.payment_status == P.AUTHORIZED and session.charge_id:
            await self.ledger.run(sid, Request(OpT.VOID, session.authorized_amount,
                                               charge_id=session.charge_id))
        elif session.payment_status in (P.PAID, P.PARTIALLY_REFUNDED) and \
                session.method == Method.PIX:
            unrefunded = session.authorized_amount - session.refunded_amount
            if unrefunded > 0:
                await self.refunds.refund_unused(session, unrefunded)
        elif session.payment_status == P.PENDING and session.method == Method.PIX \
                and session.charge_id:
            await self.ledger.run(sid, Request(OpT.VOID, session.requested_amount,
                                               charge_id=session.charge_id, void_all=True))

    async def _get(self, session_id: str) -> Session:
        return await require_session(self.store, session_id)
