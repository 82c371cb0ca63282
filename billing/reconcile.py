"""The sweeps that finish whatever a crash, a lost webhook or a timeout left half-done, using
the keys stored in the ledger: pending operations, stopped-but-unsettled transactions, start
timeouts, interrupted starts (PIX ones whose QR code never reached the driver included), PIX
charges the gateway created that the session never learned, and PIX charges still awaiting
payment."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta

from billing import payment
from billing.errors import BillingError
from billing.jobs.outbox import MoneyJobs
from billing.ledger import Ledger, Request, key_for, retry_of
from billing.listener import BillingListener
from billing.models import (
    JobKind,
    JobStatus,
    Method,
    Operation,
    OperationStatus,
    OperationType,
    PaymentStatus,
    Session,
    SessionStatus,
)
from billing.sessions import Sessions, customer_of, description
from billing.settings import BillingConfig
from billing.settlement import Settlement, unconfirmed_pix
from billing.stops import Stops
from billing.store.ports import BillingStore
from billing.terminal import TerminalPayments
from csms.domain import parse_timestamp, utcnow
from csms.events import TransactionStopped
from csms.store import Store

log = logging.getLogger(__name__)

S = SessionStatus
P = PaymentStatus
OpT = OperationType


class Reconciler:
    def __init__(self, settings: BillingConfig, store: BillingStore, charging: Store,
                 ledger: Ledger, jobs: MoneyJobs, sessions: Sessions, settlement: Settlement,
                 listener: BillingListener, stops: Stops,
                 terminal: TerminalPayments | None = None) -> None:
        self.settings = settings
        self.store = store
        self.charging = charging
        self.ledger = ledger
        self.jobs = jobs
        self.sessions = sessions
        self.settlement = settlement
        self.listener = listener
        self.stops = stops
        self.terminal = terminal

    async def reconcile(self) -> None:
        """Finish whatever a crash or a timeout left half-done, using the stored keys."""
        for op in await self.store.pending_operations():
            try:
                await self._retry_operation(op)
            except Exception:
                log.exception("reconcile: operation %s failed", op.idempotency_key)
        await self._settle_stopped()
        await self.stops.sweep()  # stops still owed by their stations
        timeout = timedelta(seconds=self.settings.ocpp.remote_start_timeout)
        for session in await self.store.list_sessions(statuses={S.STARTING}, limit=1000):
            if session.session_id in self.sessions.start_timers:
                continue
            started = session.starting_at or session.updated_at
            remaining = (started + timeout - utcnow()).total_seconds()
            self.sessions.arm_start_timeout(session.session_id, remaining)
        await self._interrupted_starts(utcnow() - timeout)
        for session in await self.store.list_sessions(
                statuses={S.CANCELED, S.FAILED}, limit=1000):
            if session.method == Method.PIX and session.payment_status == P.PENDING and \
                    session.charge_id is None:
                await self._untracked_charge(session)
            elif session.payment_status in (P.AUTHORIZED, P.PAID, P.PARTIALLY_REFUNDED) or \
                    unconfirmed_pix(session):
                await self._release(session)
        await self._unpaid_pix()
        await self._expired_reviews()
        if self.terminal is not None:  # card reads whose hint never came
            await self.terminal.reconcile()

    async def _settle_stopped(self) -> None:
        """A stop the core stored while billing was not listening (a crash between the two) is
        learned from the core's store, recorded, and settled; running ones are followed."""
        for session in await self.store.list_sessions(statuses={S.CHARGING, S.STOPPING},
                                                      limit=1000):
            if session.transaction_id is None:
                continue
            if not session.stop_recorded:
                tx = await self.charging.get_transaction(session.transaction_id)
                if tx is None or tx.active:
                    self.listener.follow(session.transaction_id, session.session_id)
                    continue
                assert tx.stopped_at is not None
                await self.settlement.record_stop(session, TransactionStopped(
                    station_id=tx.station_id, connector_id=tx.connector_id,
                    transaction_id=tx.transaction_id, id_tag=tx.id_tag,
                    meter_start=tx.meter_start,
                    meter_stop=tx.meter_stop if tx.meter_stop is not None else tx.meter_start,
                    energy_wh=tx.energy_wh, started_at=tx.started_at,
                    stopped_at=tx.stopped_at, reason=tx.stop_reason, changed=False))
            await self.settlement.settle(session.session_id)

    async def _release(self, session: Session) -> None:
        """Release an ended session's money again, unless its VOID is in the hands of a job
        (still retrying it) or a job gave up on it and its backoff is not over. A VOID whose
        outcome stays unknown after a job gave up is sent again by this sweep at growing
        intervals, kept on that FAILED job (`defer_job`: attempts, next attempt, last error,
        as the jobs page shows them); once it succeeds the job is run once more and ends DONE."""
        key = key_for(session.session_id, OpT.VOID)
        job = await self.store.get_job(key)
        now = utcnow()
        if job is not None and (job.status != JobStatus.FAILED or job.next_attempt_at > now):
            return
        await self.settlement.release(session)
        if job is None:
            return
        op = await self.store.get_operation(key)
        if op is not None and op.status == OperationStatus.PENDING:
            delay = self.release_backoff(job.attempts)  # counted from the attempt's end
            deferred = await self.store.defer_job(key, next_attempt_at=utcnow() + delay,
                                                  error=op.error or "outcome unknown")
            if deferred is not None:
                log.warning("session %s: VOID still unanswered after %d attempts; next try "
                            "in %.0f s", session.session_id, deferred.attempts,
                            delay.total_seconds())
        elif op is not None and op.status == OperationStatus.SUCCEEDED:
            # the job runs once more, finds it done and ends DONE (off the jobs page)
            await self.store.retry_job(key, now)

    def release_backoff(self, attempts: int) -> timedelta:
        """The wait before the sweep sends a given-up VOID again: the sweep's interval,
        doubling with every attempt past the job's own, up to `billing.release_retry_max`."""
        billing = self.settings.billing
        extra = max(attempts - self.settings.tasks.max_attempts, 0)
        delay = billing.reconcile_interval * 2 ** min(extra, 30)
        return timedelta(seconds=min(delay, billing.release_retry_max))

    async def _expired_reviews(self) -> None:
        """Sessions in REVIEW past their deadline are settled before the hold lapses."""
        for session in await self.store.list_sessions(statuses={S.REVIEW}, limit=1000):
            if self.settlement.review_due(session) <= utcnow():
                try:
                    await self.settlement.review_expired(session.session_id)
                except Exception:
                    log.exception("session %s: settling an expired review failed",
                                  session.session_id)

    async def _interrupted_starts(self, stale: datetime) -> None:
        """A start cut short (a crash or a shutdown between reserving the money and
        RemoteStartTransaction, or a PIX paid while the process stopped) leaves a session
        AUTHORIZED, or a card session PENDING_PAYMENT, with money held and the connector
        blocked; a PIX start cut short before the charge's identifiers reached the session
        leaves it PENDING_PAYMENT with a QR code the driver never got, so cannot pay. Past the
        remote start timeout, and with no start in flight here, end it and give the money back
        (an ended PIX session without a charge id is finished by `_untracked_charge`)."""
        candidates = await self.store.list_sessions(
            statuses={S.AUTHORIZED, S.PENDING_PAYMENT}, limit=1000)
        for session in candidates:
            lock = self.sessions.connector_locks[(session.station_id, session.connector_id)]
            if session.updated_at > stale or lock.locked():
                continue
            if session.status == S.AUTHORIZED:
                ended = await payment.move_session(
                    self.store, session.session_id, {S.AUTHORIZED}, S.CANCELED,
                    ended_at=utcnow(),
                    failure_reason="interrupted before the station was asked to start")
            elif session.method == Method.TERMINAL:
                continue  # waits for its cardholder: the terminal sweep reads it (terminal.py)
            elif session.method != Method.PIX:
                ended = await payment.move_session(
                    self.store, session.session_id, {S.PENDING_PAYMENT}, S.FAILED,
                    ended_at=utcnow(),
                    failure_reason="interrupted while the payment was being authorized")
            elif session.charge_id is None:  # PIX with a charge id awaits payment: _unpaid_pix
                ended = await payment.move_session(
                    self.store, session.session_id, {S.PENDING_PAYMENT}, S.FAILED,
                    ended_at=utcnow(),
                    failure_reason="interrupted before the PIX QR code reached the driver")
            else:
                continue
            if ended is not None:
                log.warning("session %s: %s", ended.session_id, ended.failure_reason)
                await self.settlement.release(ended)

    async def _unpaid_pix(self) -> None:
        """A `charge.paid` webhook may be lost, or arrive before the gateway shows the charge
        as paid (and, deduplicated, never count again): ask the gateway about every PIX charge
        still awaiting payment, and cancel the sessions whose QR code expired unpaid."""
        for session in await self.store.list_sessions(statuses={S.PENDING_PAYMENT},
                                                      limit=1000):
            if session.method != Method.PIX or not session.charge_id:
                continue
            try:
                updated = await self.sessions.charge_changed(session.charge_id)
            except BillingError:
                continue  # gateway unavailable: next sweep
            if updated is None or updated.status != S.PENDING_PAYMENT:
                continue
            try:
                expired = session.pix_expires_at is not None and \
                    parse_timestamp(session.pix_expires_at) <= utcnow()
            except ValueError:
                expired = False
            if expired:
                canceled = await payment.move_session(
                    self.store, session.session_id, {S.PENDING_PAYMENT}, S.CANCELED,
                    failure_reason="PIX not paid before the QR code expired", ended_at=utcnow())
                if canceled is not None:
                    await self.settlement.release(canceled)

    async def _untracked_charge(self, session: Session) -> None:
        """An ended PIX session without a charge id whose CHARGE may exist at the gateway (its
        answer lost, or lost with the process): send it again with its key and request (the
        gateway answers with the same charge) or, when it was recorded but never reached the
        session (an older build), adopt its id; then cancel it, or refund it if it was paid.
        Without a CHARGE nothing was sent; a refused one leaves the payment FAILED."""
        sid = session.session_id
        op = await self.store.get_operation(key_for(sid, OpT.CHARGE))
        if op is None:
            return
        request = Request(OpT.CHARGE, op.amount)  # a finished one is not sent again
        if op.status == OperationStatus.PENDING:
            request = retry_of(op)
            if request.customer is None or not request.expires_in:  # kept by an older build
                request = replace(request, customer=request.customer or customer_of(session),
                                  description=request.description or description(session),
                                  expires_in=self.settings.billing.pix_expires_in)
        done = await self.ledger.run(sid, request, key=op.idempotency_key, attempts=1,
                                     hand_off=False)
        if done.result.success:
            log.warning("session %s: PIX charge never known to the session; canceling it", sid)
            await self.settlement.release(await self.sessions.get(sid))

    async def _retry_operation(self, op: Operation) -> None:
        session = await self.sessions.get(op.session_id)
        key = op.idempotency_key
        if op.type == OpT.REFUND:
            await self.jobs.submit(JobKind.REFUND, key, op.session_id, {"operation": key})
        elif op.type in (OpT.CAPTURE, OpT.VOID):
            await self.jobs.submit(JobKind.OPERATION, key, op.session_id, {"operation": key})
        elif op.type == OpT.AUTHORIZE and session.method == Method.TERMINAL:
            if self.terminal is not None:
                await self.terminal.reconcile_authorization(session, op)
        elif op.type == OpT.AUTHORIZE:
            await self._retry_authorize(session, op)
        elif op.type == OpT.CHARGE and session.charge_id:
            await self.sessions.charge_changed(session.charge_id)
        # a CHARGE without a charge id: finished once its session has ended (_untracked_charge)

    async def _retry_authorize(self, session: Session, op: Operation) -> None:
        """An authorization whose outcome was unknown: ask again with its key; a hold placed
        for a session that has ended meanwhile is released at once."""
        request = retry_of(op)
        if not (request.card_token or request.network_token or request.card_id):
            # Its request is not kept on it yet: it is being sent right now, by this node or
            # another (the ledger keeps the request just before the call), or its process died
            # before the call, when nothing reached the gateway (the interrupted-start sweep
            # ends that session). A retry without a payment source would only be refused and
            # fail a hold that is being granted. Once older than the remote start timeout no
            # start can still be sending it: it never reached the gateway, so it ends FAILED
            # without a call (nothing is left PENDING for ever).
            stale = utcnow() - timedelta(seconds=self.settings.ocpp.remote_start_timeout)
            if op.created_at <= stale:
                await self.ledger.abandon(op, "interrupted before the gateway was asked")
            return
        if request.customer is None:  # kept by an older build: as it rebuilt it
            request = replace(request, customer=customer_of(session),
                              description=request.description or description(session))
        done = await self.ledger.run(session.session_id, request, key=op.idempotency_key,
                                     attempts=1, hand_off=False)
        if done.result.success and session.status in (S.FAILED, S.CANCELED):
            await self.settlement.release(await self.sessions.get(session.session_id))
