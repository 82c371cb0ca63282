"""Settle a stopped transaction exactly once, from what billing recorded of it; release what a
session that delivered nothing had reserved."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from billing import payment
from billing.errors import BillingError, require_session
from billing.jobs.handlers import receipt_due
from billing.jobs.outbox import MoneyJobs
from billing.ledger import Fetch, Ledger, Request
from billing.models import Method, OperationType, PaymentStatus, Session, SessionStatus
from billing.plausibility import Plausibility
from billing.refunds import Refunds
from billing.store.ports import BillingStore
from billing.tariffs import Tariff
from csms.domain import isoformat, utcnow
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
                 jobs: MoneyJobs, plausibility: Plausibility,
                 review_deadline: timedelta = timedelta(hours=48)) -> None:
        self.store = store
        self.review_deadline = review_deadline
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
            stopped_at=stop.stopped_at, stop_reason=stop.reason, seen_stopped_at=utcnow())

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
                session_id, "settlement", energy, self.window(session))
            if doubt is not None:  # nothing is captured or refunded: an operator decides
                due = utcnow() + self.review_deadline
                if await payment.move_session(self.store, session_id, RUNNING, S.REVIEW,
                                              energy_wh=energy, cost_cents=cost,
                                              failure_reason=doubt, review_due_at=due):
                    log.warning("session %s waits in REVIEW for an operator until %s; then "
                                "it is settled by itself", session_id, isoformat(due))
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

    def window(self, session: Session) -> timedelta | None:
        """The time the session's energy is judged by (`Plausibility.window`)."""
        return self.plausibility.window(session.charging_started_at, session.stopped_at,
                                        session.seen_started_at, session.seen_stopped_at)

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
            if await self._decide(session, amount) is not None:
                log.info("session %s: reviewed, %s cents charged", session_id, amount)
            return await self._get(session_id)

    def review_due(self, session: Session) -> datetime:
        """When a session in REVIEW is settled without an operator (a session parked by an
        older build has no deadline of its own: counted from its last change)."""
        return session.review_due_at or session.updated_at + self.review_deadline

    async def review_expired(self, session_id: str, now: datetime | None = None,
                             ) -> Session | None:
        """No operator decided before the deadline: charge what is plausible, that is the
        cost of the most energy a connector delivers in the session's window (the tighter of
        the station's clock and ours), never more than the metered cost or what was
        reserved; release or refund the rest, record why on the session and warn the
        operators. None when it is not (or no longer) a REVIEW session past its deadline."""
        async with self._locks[session_id]:
            session = await self._get(session_id)
            if session.status != S.REVIEW or self.review_due(session) > (now or utcnow()):
                return None
            window = self.window(session)
            plausible_wh = 0 if window is None else int(self.plausibility.max_wh(window))
            plausible = session_tariff(session).cost_cents(plausible_wh) if plausible_wh else 0
            metered = session_tariff(session).cost_cents(session.delivered_wh) \
                if session.delivered_wh else 0
            amount = min(plausible, metered, session.authorized_amount)
            reason = (f"review deadline passed with no operator decision: charged {amount} "
                      f"cents, the cost of at most {plausible_wh} Wh (the most "
                      f"{self.plausibility.max_power_kw} kW delivers in "
                      f"{0 if window is None else window.total_seconds():.0f} s); metered "
                      f"{session.delivered_wh} Wh. Was: {session.failure_reason}")
            done = await self._decide(session, amount, failure_reason=reason)
            if done is not None:
                log.warning("session %s: %s", session_id, reason)
            return done

    async def _decide(self, session: Session, amount: int, **changes: Any) -> Session | None:
        """Charge `amount` of a REVIEW session (0: release it all), then COMPLETED."""
        if amount == 0:
            await self.release(session)
        else:
            await self._charge(session, amount)
        done = await payment.move_session(self.store, session.session_id, {S.REVIEW},
                                          S.COMPLETED, ended_at=session.stopped_at,
                                          cost_cents=amount, **changes)
        if done is not None:
            await receipt_due(self.store, self.jobs, session.session_id)
        return done

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
        """Give back everything reserved for a session that delivered nothing.

        A PIX charge not known here to be paid may have been paid with its `charge.paid`
        webhook lost: the gateway is asked first (through the ledger, which records it PAID),
        and what was paid is refunded; only a charge still unpaid is canceled. Without an
        answer nothing is sent: the reconciliation sweep reads CANCELED and FAILED PIX sessions
        whose payment is still PENDING and releases them again."""
        session = await self._get(session.session_id)
        sid = session.session_id
        if unconfirmed_pix(session):
            assert session.charge_id is not None
            seen = await self.ledger.run(sid, Fetch(session.charge_id, pix=True))
            if seen.result.transient:
                log.warning("session %s: PIX charge state unknown (%s); the sweep asks again",
                            sid, seen.result.error)
                return
            session = await self._get(sid)
        if session.payment_status == P.AUTHORIZED and session.charge_id:
            await self.ledger.run(sid, Request(OpT.VOID, session.authorized_amount,
                                               charge_id=session.charge_id))
        elif session.payment_status in (P.PAID, P.PARTIALLY_REFUNDED) and \
                session.method == Method.PIX:
            unrefunded = session.authorized_amount - session.refunded_amount
            if unrefunded > 0:
                await self.refunds.refund_unused(session, unrefunded)
        elif unconfirmed_pix(session):
            await self.ledger.run(sid, Request(OpT.VOID, session.requested_amount,
                                               charge_id=session.charge_id, void_all=True))

    async def _get(self, session_id: str) -> Session:
        return await require_session(self.store, session_id)


def unconfirmed_pix(session: Session) -> bool:
    """A PIX charge exists at the gateway and nothing here says it was paid or canceled."""
    return session.method == Method.PIX and session.payment_status == P.PENDING and \
        session.charge_id is not None
