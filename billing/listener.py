"""Billing follows the charging core's events (the `ChargingListener` seam of `csms.events`):
the card-token match, a transaction started (a session's, or a saved-card driver's), meter
samples with the budget guard, and a transaction stopped (recorded, then settled)."""

from __future__ import annotations

import logging

from billing import payment
from billing.ledger import Ledger, Request
from billing.models import (
    ACTIVE_SESSION_STATUSES,
    Method,
    OperationType,
    PaymentStatus,
    SavedCard,
    SessionStatus,
    StopRequester,
)
from billing.sessions import Sessions, customer_of, description, new_session
from billing.settings import BillingConfig
from billing.settlement import RUNNING, Settlement, session_tariff
from billing.stops import Stops
from billing.store.ports import BillingStore
from csms.background import TaskSet
from csms.domain import utcnow
from csms.events import (
    Authorization,
    ChargingListener,
    MeterSample,
    TransactionStarted,
    TransactionStopped,
)

log = logging.getLogger(__name__)

S = SessionStatus
P = PaymentStatus


class BillingListener(ChargingListener):
    def __init__(self, settings: BillingConfig, store: BillingStore, ledger: Ledger,
                 sessions: Sessions, settlement: Settlement, stops: Stops, tasks: TaskSet,
                 ) -> None:
        self.settings = settings
        self.store = store
        self.ledger = ledger
        self.sessions = sessions
        self.settlement = settlement
        self.stops = stops
        self.tasks = tasks
        # Billed transactions running here (transaction id -> session id), so the meter
        # samples of the many unbilled ones cost no read. Filled when a session is linked to
        # its transaction and, after a restart, by reconciliation (`follow`).
        self.billed: dict[int, str] = {}

    def follow(self, transaction_id: int, session_id: str) -> None:
        self.billed.setdefault(transaction_id, session_id)

    async def authorize(self, station_id: str, id_tag: str, result: Authorization,
                        ) -> Authorization:
        return result.with_status(await self._authorize(station_id, id_tag, result.status))

    async def _authorize(self, station_id: str, id_tag: str, status: str) -> str:
        """Card-token match: while a paid session runs on a station, only that session's idTag
        (or the RFID of the driver who started it at the station) passes, so another card
        cannot stop it. A STOPPING session has its stop asked already: another card there
        starts the next charge (its own tag still passes, below)."""
        running = await self.store.list_sessions(
            statuses={S.STARTING, S.CHARGING}, station_id=station_id)
        if running:
            allowed = {s.id_tag for s in running} | {s.driver_id_tag for s in running
                                                     if s.driver_id_tag}
            return "Accepted" if id_tag in allowed else "Invalid"
        own = await self.store.session_by_id_tag(id_tag)
        if own is not None:  # a session idTag is good only on its station, while it is active
            ok = own.station_id == station_id and own.status in ACTIVE_SESSION_STATUSES
            return "Accepted" if ok else "Invalid"
        return status

    async def transaction_started(self, event: TransactionStarted, result: Authorization,
                                  ) -> Authorization:
        return result.with_status(await self._started(event, result.status))

    async def _started(self, tx: TransactionStarted, status: str) -> str:
        session, saved = await self.store.session_and_card(tx.id_tag)
        if session is None:
            if saved is None:
                return status
            return await self._start_with_saved_card(tx, saved)
        if session.station_id != tx.station_id:
            return "Invalid"
        if session.transaction_id == tx.transaction_id:
            self.billed[tx.transaction_id] = session.session_id
            return "Accepted"  # a retried StartTransaction
        linked = await payment.move_session(
            self.store, session.session_id, {S.AUTHORIZED, S.STARTING}, S.CHARGING,
            transaction_id=tx.transaction_id, meter_start=tx.meter_start,
            charging_started_at=tx.started_at, seen_started_at=utcnow())
        if linked is None:
            log.warning("session %s (%s) got StartTransaction %s: refused",
                        session.session_id, session.status, tx.transaction_id)
            return "Invalid"  # canceled or timed out: the station must not charge
        self.sessions.disarm_start_timeout(session.session_id)
        self.billed[tx.transaction_id] = session.session_id
        return "Accepted"

    async def _start_with_saved_card(self, tx: TransactionStarted, card: SavedCard) -> str:
        """A driver with a saved card started at the station: hold the default amount now."""
        existing = await self.store.session_by_transaction(tx.transaction_id)
        if existing is not None:  # a retried StartTransaction
            if existing.payment_status == P.AUTHORIZED:
                self.billed[tx.transaction_id] = existing.session_id
            return "Accepted" if existing.payment_status == P.AUTHORIZED else "Blocked"
        tariff = await self.sessions.tariff_for(tx.station_id)
        amount = self.settings.billing.default_hold
        session = new_session(tx.station_id, tx.connector_id, Method.CREDIT_CARD,
                              f"T{tx.transaction_id}"[:20], amount, tariff, card.email,
                              card.cpf, driver_id_tag=tx.id_tag)
        await self.store.create_session(session)
        sid = session.session_id
        done = await self.ledger.run(sid, Request(
            OperationType.AUTHORIZE, amount, customer=customer_of(session),
            card_id=card.card_reference, description=description(session)))
        if not done.result.success:
            await payment.move_session(self.store, sid, {S.PENDING_PAYMENT}, S.FAILED,
                                       transaction_id=tx.transaction_id,
                                       failure_reason=done.result.error or done.result.status,
                                       ended_at=utcnow())
            return "Blocked"
        await payment.move_session(self.store, sid, {S.PENDING_PAYMENT}, S.CHARGING,
                                   transaction_id=tx.transaction_id, meter_start=tx.meter_start,
                                   charging_started_at=tx.started_at, seen_started_at=utcnow())
        self.billed[tx.transaction_id] = sid
        return "Accepted"

    async def meter_sample(self, sample: MeterSample) -> None:
        """Running energy and cost; the budget guard stops the charge at the reserved amount."""
        session_id = self.billed.get(sample.transaction_id)
        if session_id is None:
            return  # not a billed transaction (every billed one is linked when it starts)
        session = await self.store.get_session(session_id)
        if session is None or session.status not in RUNNING:
            return
        energy = sample.energy_wh
        plausibility = self.settlement.plausibility
        window = plausibility.window(session.charging_started_at, sample.at,
                                     session.seen_started_at, utcnow())
        if plausibility.doubt(session_id, "meter_sample", energy, window):
            # Not money owed: neither shown as the running cost nor a reason to stop (else
            # one forged frame ends a driver's charge); settlement judges the final reading.
            return
        cost = session_tariff(session).cost_cents(energy) if energy > 0 else 0
        # only while it still runs: a sample handled late must not overwrite a settled stop
        if await self.store.update_session(session.session_id, if_status=RUNNING,
                                           energy_wh=energy, cost_cents=cost) is None:
            return
        budget = session.authorized_amount
        if session.method == Method.VIP or budget <= 0 or cost < budget:
            return
        if session.status == S.CHARGING:
            if await self.stops.request(session_id, StopRequester.BUDGET_GUARD) is None:
                return  # stopped meanwhile: that stop is being sent
            log.info("session %s: cost %s reached the reserved %s, stopping", session_id, cost,
                     budget)
        elif cost <= session.cost_cents:
            return  # STOPPING and nothing more drawn since the last sample
        else:
            log.warning("session %s: still drawing while stopping (cost %s, reserved %s), "
                        "sending the stop again", session_id, cost, budget)
        self.stops.send_later(session_id)  # not awaited: we are in this station's loop

    async def station_connected(self, station_id: str) -> None:
        self.stops.station_connected(station_id)

    async def transaction_stopped(self, event: TransactionStopped) -> None:
        """Record the stop on the session (settlement reads nothing else), then settle it."""
        self.billed.pop(event.transaction_id, None)
        session = await self.store.session_by_transaction(event.transaction_id)
        if session is not None:
            self.stops.forget(session.session_id)
            await self.settlement.record_stop(session, event)
            self.tasks.spawn(self.settlement.settle(session.session_id),
                             f"settle-{session.session_id[:8]}")
