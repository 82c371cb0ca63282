"""Money follows the charging session: reserve, start, meter, stop, settle — never twice.

Every gateway call is recorded in the operations ledger *before* it is made, with an
idempotency key derived from the session and the operation (`<sessionId>:<TYPE>`), and re-sent
with that same key and amount on any retry (in-process, by the reconciliation sweep after a
crash, or by a job delivered twice). Status moves are compare-and-set in the store.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from billing.gateways.base import Customer, GatewayResult, PaymentGateway
from billing.jobs.outbox import MoneyJobs
from billing.models import (
    ACTIVE_SESSION_STATUSES,
    Job,
    JobKind,
    JobStatus,
    Method,
    Operation,
    OperationStatus,
    OperationType,
    PaymentStatus,
    SavedCard,
    Session,
    SessionStatus,
)
from billing.settings import BillingConfig
from billing.store.ports import BillingStore
from billing.tariffs import Tariff
from csms.background import TaskSet
from csms.commands import CommandError, CommandRejected, CommandTimeout, StationCommands
from csms.domain import parse_timestamp, utcnow
from csms.events import MeterSample, TransactionStarted, TransactionStopped
from csms.store import Store

log = logging.getLogger(__name__)

S = SessionStatus
P = PaymentStatus
OpT = OperationType
USABLE_CONNECTOR_STATUSES = frozenset({"Available", "Preparing"})
_ID_TAG_ALPHABET = string.ascii_uppercase + string.digits


class BillingError(Exception):
    """A refusal the driver API renders as `{"success": false, "error": ...}`."""

    def __init__(self, status: int, code: str, message: str, session_id: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.session_id = session_id


@dataclass(frozen=True, slots=True)
class StartRequest:
    station_id: str
    connector_id: int
    method: Method
    amount: int
    email: str | None
    cpf: str | None
    name: str | None
    card_token: str | None
    network_token: str | None
    save_card: bool
    shown_price: Decimal
    shown_fixed_cost: Decimal
    driver_id_tag: str | None = None


def new_session_id() -> str:
    return secrets.token_urlsafe(24)  # 192 random bits


def new_id_tag() -> str:
    """An idTag bound to one session: 20 characters (the OCPP 1.6 maximum), ~98 random bits."""
    return "S" + "".join(secrets.choice(_ID_TAG_ALPHABET) for _ in range(19))


def key_for(session_id: str, op: OperationType) -> str:
    return f"{session_id}:{op.value}"


class BillingService:
    def __init__(self, settings: BillingConfig, store: BillingStore, charging: Store,
                 gateway: PaymentGateway, stations: StationCommands, jobs: MoneyJobs,
                 tasks: TaskSet) -> None:
        self.settings = settings
        self.store = store
        self.charging = charging
        self.gateway = gateway
        self.stations = stations
        self.jobs = jobs
        self.tasks = tasks
        # Billed transactions running here (transaction id -> session id), so the meter
        # samples of the many unbilled ones cost no read. Filled when a session is linked to
        # its transaction and, after a restart, by `reconcile`.
        self._billed: dict[int, str] = {}
        self.default_tariff = Tariff.from_settings(settings.billing.tariff,
                                                   settings.billing.currency)
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._connector_locks: defaultdict[tuple[str, int], asyncio.Lock] = \
            defaultdict(asyncio.Lock)
        self._start_timers: dict[str, asyncio.TimerHandle] = {}

    # tariffs -----------------------------------------------------------------------------------
    async def tariff_for(self, station_id: str) -> Tariff:
        override = await self.store.station_tariff(station_id)
        if override is None:
            return self.default_tariff
        return Tariff(Decimal(override[0]), Decimal(override[1]), self.settings.billing.currency)

    @staticmethod
    def session_tariff(session: Session) -> Tariff:
        return Tariff(Decimal(session.price_per_kwh), Decimal(session.fixed_connection_fee),
                      session.currency)

    # start -------------------------------------------------------------------------------------
    async def start(self, req: StartRequest) -> Session:
        """Reserve the money and ask the station to start. One start at a time per connector:
        the hub lives in this process, so a lock here is what makes the busy check and the
        new session one step (a second request gets 409 at once rather than waiting)."""
        lock = self._connector_locks[(req.station_id, req.connector_id)]
        if lock.locked():
            raise BillingError(409, "connector_busy",
                               f"a session is being started on connector {req.connector_id}")
        async with lock:
            return await self._start(req)

    async def _start(self, req: StartRequest) -> Session:
        station = await self.charging.get_station(req.station_id)
        if station is None:
            raise BillingError(404, "station_not_found", f"unknown station {req.station_id}")
        if not self.stations.is_connected(req.station_id):
            raise BillingError(409, "station_offline", f"station {req.station_id} is offline")
        connector = next((c for c in station.connectors
                          if c.connector_id == req.connector_id), None)
        if connector is None:
            raise BillingError(404, "connector_not_found",
                               f"station {req.station_id} has no connector {req.connector_id}")
        if connector.status not in USABLE_CONNECTOR_STATUSES:
            raise BillingError(409, "connector_unavailable",
                               f"connector {req.connector_id} is {connector.status}")
        busy = await self.store.list_sessions(statuses=ACTIVE_SESSION_STATUSES,
                                              station_id=req.station_id)
        if any(s.connector_id == req.connector_id for s in busy):
            raise BillingError(409, "connector_busy",
                               f"connector {req.connector_id} already has a session")
        tariff = await self.tariff_for(req.station_id)
        if not tariff.matches_shown(req.shown_price, req.shown_fixed_cost):
            raise BillingError(409, "price_mismatch",
                               f"the station's price is {tariff.price_per_kwh}/kWh plus "
                               f"{tariff.fixed_connection_fee} fee; the app showed "
                               f"{req.shown_price} plus {req.shown_fixed_cost}")

        now = utcnow()
        session = Session(
            session_id=new_session_id(), station_id=req.station_id,
            connector_id=req.connector_id, method=req.method, id_tag=new_id_tag(),
            requested_amount=req.amount, email=req.email, cpf=req.cpf,
            currency=tariff.currency, price_per_kwh=str(tariff.price_per_kwh),
            fixed_connection_fee=str(tariff.fixed_connection_fee),
            status=S.PENDING_PAYMENT, created_at=now, updated_at=now,
            save_card=req.save_card, driver_id_tag=req.driver_id_tag)
        await self.store.create_session(session)
        sid = session.session_id

        if req.method == Method.VIP:
            await self.store.transition_payment(sid, {P.PENDING}, P.WAIVED)
            await self.store.transition_session(sid, {S.PENDING_PAYMENT}, S.AUTHORIZED)
        elif req.method == Method.PIX:
            result = await self._gateway_call(
                sid, OpT.CHARGE, req.amount, lambda key: self.gateway.create_pix(
                    session_id=sid, amount=req.amount, customer=self._customer(req),
                    expires_in=self.settings.billing.pix_expires_in,
                    description=self._description(session), idempotency_key=key))
            if not result.success:
                await self._fail_start(sid, result)
            await self.store.update_session(
                sid, order_id=result.order_id, charge_id=result.charge_id,
                pix_qr_code=result.pix_qr_code, pix_qr_code_url=result.pix_qr_code_url,
                pix_expires_at=result.pix_expires_at)
            return await self._get(sid)
        else:
            result = await self._gateway_call(
                sid, OpT.AUTHORIZE, req.amount, lambda key: self.gateway.authorize(
                    session_id=sid, amount=req.amount, customer=self._customer(req),
                    card_token=None if req.method.uses_network_token else req.card_token,
                    network_token=req.network_token if req.method.uses_network_token else None,
                    save_card=req.save_card, description=self._description(session),
                    idempotency_key=key),
                pending_context={"card_token": req.card_token,
                                 "network_token": req.network_token})
            if not result.success:
                await self._fail_start(sid, result)
            await self.store.transition_payment(
                sid, {P.PENDING}, P.AUTHORIZED, authorized_amount=result.amount,
                order_id=result.order_id, charge_id=result.charge_id,
                card_reference=result.card_reference)
            await self.store.transition_session(sid, {S.PENDING_PAYMENT}, S.AUTHORIZED)
            if req.save_card and req.driver_id_tag and result.card_reference:
                await self._save_card(req, result.card_reference)
        return await self.remote_start(sid)

    async def _fail_start(self, session_id: str, result: GatewayResult) -> None:
        reason = result.error or result.status
        if result.transient:
            # The outcome is unknown: the operation stays PENDING and the reconciliation sweep
            # finishes it (and releases any hold it turns out to have placed).
            await self.store.transition_session(session_id, {S.PENDING_PAYMENT}, S.FAILED,
                                                failure_reason=reason, ended_at=utcnow())
            raise BillingError(502, "gateway_unavailable",
                               f"the payment gateway did not answer: {reason}", session_id)
        await self.store.transition_payment(session_id, {P.PENDING}, P.FAILED)
        await self.store.transition_session(session_id, {S.PENDING_PAYMENT}, S.FAILED,
                                            failure_reason=reason, ended_at=utcnow())
        if result.status == "declined":
            raise BillingError(402, "payment_declined", f"payment declined: {reason}",
                               session_id)
        raise BillingError(402, "payment_failed", f"payment failed: {reason}", session_id)

    async def remote_start(self, session_id: str) -> Session:
        """Ask the station to start; arm the StartTransaction timeout."""
        session = await self.store.transition_session(session_id, {S.AUTHORIZED}, S.STARTING,
                                                      starting_at=utcnow())
        if session is None:
            return await self._get(session_id)  # already started (or ended) meanwhile
        try:
            accepted = await self.stations.remote_start(session.station_id,
                                                        session.connector_id, session.id_tag)
            reason = None if accepted else "station rejected RemoteStartTransaction"
            code, status = "remote_start_rejected", 409
        except CommandTimeout:
            accepted, reason, code, status = False, "station did not answer RemoteStart", \
                "station_timeout", 504
        except CommandRejected as exc:
            accepted, reason, code, status = False, f"station error {exc.code}", \
                "remote_start_rejected", 409
        except CommandError as exc:
            accepted, reason, code, status = False, str(exc), "station_offline", 409
        if not accepted:
            failed = await self.store.transition_session(
                session_id, {S.STARTING}, S.FAILED, failure_reason=reason, ended_at=utcnow())
            if failed is not None:
                await self.release(failed)
            raise BillingError(status, code, reason or "remote start failed", session_id)
        self._arm_start_timeout(session_id, self.settings.ocpp.remote_start_timeout)
        return await self._get(session_id)

    def _arm_start_timeout(self, session_id: str, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self._start_timers[session_id] = loop.call_later(
            max(delay, 0), lambda: self.tasks.spawn(self.expire_start(session_id),
                                                    f"start-timeout-{session_id[:8]}"))

    async def expire_start(self, session_id: str) -> None:
        """No StartTransaction within `ocpp.remote_start_timeout`: release the money."""
        self._start_timers.pop(session_id, None)
        canceled = await self.store.transition_session(
            session_id, {S.STARTING}, S.CANCELED,
            failure_reason="no StartTransaction within the remote start timeout",
            ended_at=utcnow())
        if canceled is not None:
            log.info("session %s: station never started, releasing the money", session_id)
            await self.release(canceled)

    # stop by the driver ------------------------------------------------------------------------
    async def stop(self, session_id: str) -> Session:
        session = await self._get(session_id)
        if session.status in (S.PENDING_PAYMENT, S.AUTHORIZED, S.STARTING):
            canceled = await self.store.transition_session(
                session_id, {S.PENDING_PAYMENT, S.AUTHORIZED, S.STARTING}, S.CANCELED,
                failure_reason="stopped by the driver before charging", ended_at=utcnow())
            if canceled is not None:
                timer = self._start_timers.pop(session_id, None)
                if timer is not None:
                    timer.cancel()
                await self.release(canceled)
            return await self._get(session_id)
        if session.status == S.CHARGING:
            stopping = await self.store.transition_session(session_id, {S.CHARGING}, S.STOPPING)
            if stopping is not None:
                await self._remote_stop(stopping)
        return await self._get(session_id)  # STOPPING, or already ended: nothing to do

    async def _remote_stop(self, session: Session) -> None:
        if session.transaction_id is None:
            return
        try:
            if not await self.stations.remote_stop(session.station_id,
                                                   session.transaction_id):
                log.warning("session %s: station rejected RemoteStopTransaction",
                            session.session_id)
        except CommandError as exc:
            # The station will send StopTransaction when it can; billing waits for it.
            log.warning("session %s: RemoteStopTransaction failed: %s", session.session_id, exc)

    # OCPP events -------------------------------------------------------------------------------
    async def authorize(self, station_id: str, id_tag: str, status: str) -> str:
        """Card-token match: while a paid session runs on a station, only that session's idTag
        (or the RFID of the driver who started it at the station) passes, so another card
        cannot stop it."""
        running = await self.store.list_sessions(
            statuses={S.STARTING, S.CHARGING, S.STOPPING}, station_id=station_id)
        if running:
            allowed = {s.id_tag for s in running} | {s.driver_id_tag for s in running
                                                     if s.driver_id_tag}
            return "Accepted" if id_tag in allowed else "Invalid"
        own = await self.store.session_by_id_tag(id_tag)
        if own is not None:  # a session idTag is good only on its station, while it is active
            ok = own.station_id == station_id and own.status in ACTIVE_SESSION_STATUSES
            return "Accepted" if ok else "Invalid"
        return status

    async def transaction_started(self, tx: TransactionStarted, status: str) -> str:
        session = await self.store.session_by_id_tag(tx.id_tag)
        if session is None:
            saved = await self.store.saved_card(tx.id_tag)
            if saved is None:
                return status
            return await self._start_with_saved_card(tx, saved.card_reference, saved.email,
                                                     saved.cpf)
        if session.station_id != tx.station_id:
            return "Invalid"
        if session.transaction_id == tx.transaction_id:
            self._billed[tx.transaction_id] = session.session_id
            return "Accepted"  # a retried StartTransaction
        linked = await self.store.transition_session(
            session.session_id, {S.AUTHORIZED, S.STARTING}, S.CHARGING,
            transaction_id=tx.transaction_id)
        if linked is None:
            log.warning("session %s (%s) got StartTransaction %s: refused",
                        session.session_id, session.status, tx.transaction_id)
            return "Invalid"  # canceled or timed out: the station must not charge
        timer = self._start_timers.pop(session.session_id, None)
        if timer is not None:
            timer.cancel()
        self._billed[tx.transaction_id] = session.session_id
        return "Accepted"

    async def _start_with_saved_card(self, tx: TransactionStarted, card_reference: str,
                                     email: str | None, cpf: str | None) -> str:
        """A driver with a saved card started at the station: hold the default amount now."""
        tariff = await self.tariff_for(tx.station_id)
        now = utcnow()
        amount = self.settings.billing.default_hold
        session = Session(
            session_id=new_session_id(), station_id=tx.station_id,
            connector_id=tx.connector_id, method=Method.CREDIT_CARD,
            id_tag=f"T{tx.transaction_id}"[:20], requested_amount=amount, email=email, cpf=cpf,
            currency=tariff.currency, price_per_kwh=str(tariff.price_per_kwh),
            fixed_connection_fee=str(tariff.fixed_connection_fee), status=S.PENDING_PAYMENT,
            created_at=now, updated_at=now, driver_id_tag=tx.id_tag)
        existing = await self.store.session_by_transaction(tx.transaction_id)
        if existing is not None:  # a retried StartTransaction
            if existing.payment_status == P.AUTHORIZED:
                self._billed[tx.transaction_id] = existing.session_id
            return "Accepted" if existing.payment_status == P.AUTHORIZED else "Blocked"
        await self.store.create_session(session)
        sid = session.session_id
        result = await self._gateway_call(
            sid, OpT.AUTHORIZE, amount, lambda key: self.gateway.authorize(
                session_id=sid, amount=amount,
                customer=Customer(name=email or "Driver", email=email or "", document=cpf or ""),
                card_id=card_reference, description=self._description(session),
                idempotency_key=key))
        if not result.success:
            if not result.transient:
                await self.store.transition_payment(sid, {P.PENDING}, P.FAILED)
            await self.store.transition_session(sid, {S.PENDING_PAYMENT}, S.FAILED,
                                                transaction_id=tx.transaction_id,
                                                failure_reason=result.error or result.status,
                                                ended_at=utcnow())
            return "Blocked"
        await self.store.transition_payment(sid, {P.PENDING}, P.AUTHORIZED,
                                            authorized_amount=result.amount,
                                            order_id=result.order_id,
                                            charge_id=result.charge_id)
        await self.store.transition_session(sid, {S.PENDING_PAYMENT}, S.CHARGING,
                                            transaction_id=tx.transaction_id)
        self._billed[tx.transaction_id] = sid
        return "Accepted"

    async def meter_sample(self, sample: MeterSample) -> None:
        """Running energy and cost; the budget guard stops the charge at the reserved amount."""
        session_id = self._billed.get(sample.transaction_id)
        if session_id is None:
            return  # not a billed transaction (every billed one is linked when it starts)
        session = await self.store.get_session(session_id)
        if session is None or session.status not in (S.CHARGING, S.STOPPING):
            return
        energy = sample.energy_wh
        cost = self.session_tariff(session).cost_cents(energy) if energy > 0 else 0
        await self.store.update_session(session.session_id, energy_wh=energy, cost_cents=cost)
        budget = session.authorized_amount
        if session.method != Method.VIP and session.status == S.CHARGING and budget > 0 \
                and cost >= budget:
            stopping = await self.store.transition_session(session.session_id, {S.CHARGING},
                                                           S.STOPPING)
            if stopping is not None:
                log.info("session %s: cost %s reached the reserved %s, stopping",
                         session.session_id, cost, budget)
                # Not awaited here: we are inside this station's message loop.
                self.tasks.spawn(self._remote_stop(stopping),
                               f"budget-stop-{session.session_id[:8]}")

    async def transaction_stopped(self, tx: TransactionStopped) -> None:
        self._billed.pop(tx.transaction_id, None)
        session = await self.store.session_by_transaction(tx.transaction_id)
        if session is not None:
            self.tasks.spawn(self.settle(session.session_id), f"settle-{session.session_id[:8]}")

    # settlement --------------------------------------------------------------------------------
    async def settle(self, session_id: str) -> Session:
        """Bill a stopped transaction exactly once, however often this runs."""
        async with self._locks[session_id]:
            session = await self._get(session_id)
            if session.transaction_id is None or session.status not in (S.CHARGING, S.STOPPING):
                return session
            tx = await self.charging.get_transaction(session.transaction_id)
            if tx is None or tx.active:
                return session
            energy = tx.energy_wh
            cost = self.session_tariff(session).cost_cents(energy) if energy > 0 else 0
            await self.store.update_session(session_id, energy_wh=energy, cost_cents=cost)
            if energy == 0:
                ended = await self.store.transition_session(
                    session_id, {S.CHARGING, S.STOPPING}, S.CANCELED, ended_at=tx.stopped_at,
                    failure_reason="no energy delivered")
                if ended is not None:
                    await self.release(ended)
                return await self._get(session_id)
            if session.method != Method.VIP and cost == 0:
                await self.release(session)  # free charging: nothing to capture, give it back
            elif session.method.is_card:
                await self._capture(session, min(cost, session.authorized_amount))
            elif session.method == Method.PIX:
                charged = min(cost, session.authorized_amount)
                await self.store.update_session(session_id, captured_amount=charged)
                unused = session.authorized_amount - charged
                if unused > 0:
                    await self._begin_refund(session, unused)
            await self.store.transition_session(session_id, {S.CHARGING, S.STOPPING},
                                                S.COMPLETED, ended_at=tx.stopped_at)
            await self.jobs.after_settlement(session_id)
            return await self._get(session_id)

    async def _capture(self, session: Session, amount: int) -> None:
        if session.payment_status != P.AUTHORIZED or session.charge_id is None:
            return
        charge_id = session.charge_id
        result = await self._gateway_call(
            session.session_id, OpT.CAPTURE, amount,
            lambda key: self.gateway.capture(charge_id=charge_id, amount=amount,
                                             idempotency_key=key), charge_id=charge_id)
        if result.success:
            await self.jobs.apply_success(session.session_id, OpT.CAPTURE, amount)
        elif not result.transient:
            log.error("session %s: capture refused: %s", session.session_id, result.error)

    async def release(self, session: Session) -> None:
        """Give back everything reserved for a session that delivered nothing."""
        session = await self._get(session.session_id)
        sid = session.session_id
        if session.payment_status == P.AUTHORIZED and session.charge_id:
            charge_id = session.charge_id
            result = await self._gateway_call(
                sid, OpT.VOID, session.authorized_amount,
                lambda key: self.gateway.void(charge_id=charge_id,
                                              amount=session.authorized_amount,
                                              idempotency_key=key), charge_id=charge_id)
            if result.success:
                await self.jobs.apply_success(sid, OpT.VOID, session.authorized_amount)
        elif session.payment_status in (P.PAID, P.PARTIALLY_REFUNDED) and \
                session.method == Method.PIX:
            unrefunded = session.authorized_amount - session.refunded_amount
            if unrefunded > 0:
                await self._begin_refund(session, unrefunded)
        elif session.payment_status == P.PENDING and session.method == Method.PIX \
                and session.charge_id:
            charge_id = session.charge_id
            result = await self._gateway_call(
                sid, OpT.VOID, session.requested_amount,
                lambda key: self.gateway.void(charge_id=charge_id, amount=None,
                                              idempotency_key=key), charge_id=charge_id)
            if result.success:
                await self.jobs.apply_success(sid, OpT.VOID, session.requested_amount)

    # refunds (run as jobs) ---------------------------------------------------------------------
    async def _begin_refund(self, session: Session, amount: int) -> None:
        """Refund the unused or undelivered part of a PIX payment (key `<sid>:REFUND`)."""
        if await self._refund_job(session, amount, key_for(session.session_id, OpT.REFUND)) \
                is None:
            log.error("session %s: refund of %s refused: it exceeds what is left to refund",
                      session.session_id, amount)

    async def _refund_job(self, session: Session, amount: int, key: str,
                          reason: str | None = None) -> Operation | None:
        """Record the refund (within what is refundable) with its key, then hand it to the
        job queue. Returns None when it would refund more than was paid."""
        op, _ = await self.store.begin_refund(session.session_id, amount, key,
                                              limit=refundable(session),
                                              charge_id=session.charge_id)
        if op is None:
            return None
        payload: dict[str, Any] = {"operation": key}
        if reason:
            payload["reason"] = reason
        await self.jobs.submit(JobKind.REFUND, key, session.session_id, payload)
        return op

    async def operator_refund(self, session_id: str, amount: int, reason: str | None,
                              request_key: str | None = None) -> Operation:
        """An operator refunds (part of) a settled session; never more than was charged minus
        what was already refunded. `request_key` makes a repeated request idempotent."""
        session = await self._get(session_id)
        if session.status not in (S.COMPLETED, S.CANCELED, S.FAILED):
            # While a session runs, its own settlement decides what is kept and given back.
            raise BillingError(409, "session_not_settled",
                               f"session is {session.status.value}; refund once it has ended")
        if session.payment_status not in (P.CAPTURED, P.PAID, P.PARTIALLY_REFUNDED):
            raise BillingError(409, "not_refundable",
                               f"payment is {session.payment_status.value}, nothing to refund")
        key = f"{session_id}:REFUND:{request_key or secrets.token_hex(8)}"
        op = await self._refund_job(session, amount, key, reason or "operator refund")
        if op is None:
            raise BillingError(422, "refund_exceeds_charged",
                               f"at most {refundable(session) - session.refunded_amount} "
                               "cents can still be refunded")
        log.info("session %s: operator refund of %s (%s)", session_id, amount, reason or "-")
        return op

    async def retry_job(self, job_id: str) -> Job:
        """An operator retries a FAILED job (and its FAILED operation) with the same key."""
        existing = await self.store.get_job(job_id)
        if existing is None:
            raise BillingError(404, "job_not_found", "unknown job")
        if existing.status != JobStatus.FAILED:
            raise BillingError(409, "job_not_failed", f"job is {existing.status.value}")
        await self._check_refund_room(job_id)
        key = existing.payload.get("operation")
        if key:  # reopen the operation first: the job must never run against a FAILED one
            await self.store.reopen_operation(key)
        job = await self.store.retry_job(job_id, utcnow())
        if job is None:
            raise BillingError(409, "job_not_failed", "the job changed meanwhile")
        await self.jobs.sweep()
        return job

    async def _check_refund_room(self, job_id: str) -> None:
        """A FAILED refund no longer counts against what may be refunded; before it is
        retried, make sure other refunds have not used that room meanwhile."""
        op = await self.store.get_operation(job_id)
        if op is None or op.type != OpT.REFUND or op.status != OperationStatus.FAILED:
            return
        session = await self._get(op.session_id)
        others = sum(o.amount for o in await self.store.list_operations(op.session_id)
                     if o.type == OpT.REFUND and o.status != OperationStatus.FAILED)
        if others + op.amount > refundable(session):
            raise BillingError(409, "refund_exceeds_charged",
                               "other refunds have used the room this one needs")

    # webhooks ----------------------------------------------------------------------------------
    async def charge_changed(self, charge_id: str) -> Session | None:
        """A webhook said a charge changed: fetch the truth from the gateway and act on it."""
        session = await self.store.session_by_charge(charge_id)
        if session is None:
            return None
        fetched = await self.gateway.fetch(charge_id=charge_id)
        if fetched.transient:
            raise BillingError(503, "gateway_unavailable", "could not fetch the charge")
        if session.method == Method.PIX and fetched.status == "paid":
            paid = await self.store.transition_payment(
                session.session_id, {P.PENDING}, P.PAID, authorized_amount=fetched.amount)
            if paid is None:
                return await self._get(session.session_id)
            await self.store.finish_operation(key_for(session.session_id, OpT.CHARGE),
                                              OperationStatus.SUCCEEDED, raw=fetched.raw)
            ready = await self.store.transition_session(session.session_id,
                                                        {S.PENDING_PAYMENT}, S.AUTHORIZED)
            if ready is None:
                # Paid after the session was canceled: give it all back.
                await self.release(await self._get(session.session_id))
            else:
                self.tasks.spawn(self._start_after_payment(session.session_id),
                                 f"pix-start-{session.session_id[:8]}")
        return await self._get(session.session_id)

    async def _start_after_payment(self, session_id: str) -> None:
        try:
            await self.remote_start(session_id)
        except BillingError as exc:
            log.warning("session %s: could not start after PIX payment: %s", session_id,
                        exc.message)

    # reconciliation ----------------------------------------------------------------------------
    async def reconcile(self) -> None:
        """Finish whatever a crash or a timeout left half-done, using the stored keys."""
        for op in await self.store.pending_operations():
            try:
                await self._retry_operation(op)
            except Exception:
                log.exception("reconcile: operation %s failed", op.idempotency_key)
        for session in await self.store.list_sessions(statuses={S.CHARGING, S.STOPPING},
                                                      limit=1000):
            if session.transaction_id is not None:
                tx = await self.charging.get_transaction(session.transaction_id)
                if tx is not None and not tx.active:
                    await self.settle(session.session_id)
                else:
                    self._billed.setdefault(session.transaction_id, session.session_id)
        timeout = timedelta(seconds=self.settings.ocpp.remote_start_timeout)
        for session in await self.store.list_sessions(statuses={S.STARTING}, limit=1000):
            if session.session_id in self._start_timers:
                continue
            started = session.starting_at or session.updated_at
            remaining = (started + timeout - utcnow()).total_seconds()
            self._arm_start_timeout(session.session_id, remaining)
        await self._reconcile_interrupted_starts(utcnow() - timeout)
        for session in await self.store.list_sessions(
                statuses={S.CANCELED, S.FAILED}, limit=1000):
            if session.payment_status in (P.AUTHORIZED, P.PAID, P.PARTIALLY_REFUNDED):
                await self.release(session)
        await self._reconcile_unpaid_pix()

    async def _reconcile_interrupted_starts(self, stale: datetime) -> None:
        """A start cut short (a crash or a shutdown between reserving the money and
        RemoteStartTransaction, or a PIX paid while the process stopped) leaves a session
        AUTHORIZED, or a card session PENDING_PAYMENT, with money held and the connector
        blocked. Past the remote start timeout, and with no start in flight here, give the
        money back."""
        candidates = await self.store.list_sessions(
            statuses={S.AUTHORIZED, S.PENDING_PAYMENT}, limit=1000)
        for session in candidates:
            if session.updated_at > stale or \
                    self._connector_locks[(session.station_id, session.connector_id)].locked():
                continue
            if session.status == S.AUTHORIZED:
                ended = await self.store.transition_session(
                    session.session_id, {S.AUTHORIZED}, S.CANCELED, ended_at=utcnow(),
                    failure_reason="interrupted before the station was asked to start")
            elif session.method != Method.PIX:  # PIX awaiting payment has its own sweep
                ended = await self.store.transition_session(
                    session.session_id, {S.PENDING_PAYMENT}, S.FAILED, ended_at=utcnow(),
                    failure_reason="interrupted while the payment was being authorized")
            else:
                continue
            if ended is not None:
                log.warning("session %s: %s", ended.session_id, ended.failure_reason)
                await self.release(ended)

    async def _reconcile_unpaid_pix(self) -> None:
        """A `charge.paid` webhook may be lost, or arrive before the gateway shows the charge
        as paid (and, deduplicated, never count again): ask the gateway about every PIX charge
        still awaiting payment, and cancel the sessions whose QR code expired unpaid."""
        for session in await self.store.list_sessions(statuses={S.PENDING_PAYMENT},
                                                      limit=1000):
            if session.method != Method.PIX or not session.charge_id:
                continue
            try:
                updated = await self.charge_changed(session.charge_id)
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
                canceled = await self.store.transition_session(
                    session.session_id, {S.PENDING_PAYMENT}, S.CANCELED,
                    failure_reason="PIX not paid before the QR code expired", ended_at=utcnow())
                if canceled is not None:
                    await self.release(canceled)

    async def _retry_operation(self, op: Operation) -> None:
        session = await self._get(op.session_id)
        key = op.idempotency_key
        if op.type == OpT.REFUND:
            await self.jobs.submit(JobKind.REFUND, key, op.session_id, {"operation": key})
            return
        if op.type in (OpT.CAPTURE, OpT.VOID):
            await self.jobs.submit(JobKind.OPERATION, key, op.session_id, {"operation": key})
            return
        if op.type == OpT.AUTHORIZE:
            context = op.raw or {}
            result = await self.gateway.authorize(
                session_id=session.session_id, amount=op.amount,
                customer=Customer(name=session.email or "Driver", email=session.email or "",
                                  document=session.cpf or ""),
                card_token=context.get("card_token"), network_token=context.get("network_token"),
                description=self._description(session), idempotency_key=key)
            if result.transient:
                return
            await self._finish(op, result)
            if result.success:
                await self.store.transition_payment(
                    session.session_id, {P.PENDING}, P.AUTHORIZED,
                    authorized_amount=result.amount, order_id=result.order_id,
                    charge_id=result.charge_id)
                if session.status in (S.FAILED, S.CANCELED):
                    await self.release(await self._get(session.session_id))
            else:
                await self.store.transition_payment(session.session_id, {P.PENDING}, P.FAILED)
            return
        if op.type == OpT.CHARGE and session.charge_id:
            await self.charge_changed(session.charge_id)

    async def _finish(self, op: Operation, result: GatewayResult) -> bool:
        """Record a retried operation's outcome; True when it succeeded."""
        if result.transient:
            return False
        status = OperationStatus.SUCCEEDED if result.success else OperationStatus.FAILED
        await self.store.finish_operation(op.idempotency_key, status, error=result.error,
                                          charge_id=result.charge_id, raw=result.raw)
        return result.success

    # helpers -----------------------------------------------------------------------------------
    async def _gateway_call(self, session_id: str, type: OperationType, amount: int,
                            send: Callable[[str], Awaitable[GatewayResult]],
                            charge_id: str | None = None,
                            pending_context: dict[str, Any] | None = None) -> GatewayResult:
        """Record the operation, then call the gateway with its key, retrying transient
        failures a few times with the same key. A still-unknown outcome leaves the
        operation PENDING for the reconciliation sweep."""
        key = key_for(session_id, type)
        op, created = await self.store.begin_operation(session_id, type, amount, key, charge_id)
        if not created and op.status != OperationStatus.PENDING:
            return GatewayResult(success=op.status == OperationStatus.SUCCEEDED,
                                 status="failed" if op.status == OperationStatus.FAILED
                                 else _status_of(type), amount=op.amount,
                                 charge_id=op.charge_id, error=op.error, raw=op.raw or {})
        if pending_context:
            await self.store.finish_operation(key, OperationStatus.PENDING, raw=pending_context)
        attempts = self.settings.billing.gateway_attempts
        result: GatewayResult | None = None
        for attempt in range(attempts):
            result = await send(key)
            if not result.transient:
                break
            if attempt + 1 < attempts:
                await asyncio.sleep(0.2 * 2**attempt)
        assert result is not None
        if not result.transient:
            await self.store.finish_operation(
                key, OperationStatus.SUCCEEDED if result.success else OperationStatus.FAILED,
                error=result.error, charge_id=result.charge_id or charge_id,
                raw=_scrub(result.raw))
        if not result.success and type in (OpT.CAPTURE, OpT.VOID):
            # Unknown outcome: the job retries it. Refused: the job ends FAILED with the
            # gateway's error, where operators see it and can retry it.
            log.warning("session %s: %s %s (%s); handed to a job", session_id, type.value,
                        "outcome unknown" if result.transient else "refused", result.error)
            await self.jobs.submit(JobKind.OPERATION, key, session_id, {"operation": key})
        elif result.transient:
            log.warning("session %s: %s outcome unknown (%s); left for reconciliation",
                        session_id, type.value, result.error)
        return result

    async def _save_card(self, req: StartRequest, card_reference: str) -> None:
        assert req.driver_id_tag is not None
        await self.store.save_card(SavedCard(req.driver_id_tag, card_reference, req.email,
                                             req.cpf, utcnow()))

    async def _get(self, session_id: str) -> Session:
        session = await self.store.get_session(session_id)
        if session is None:
            raise BillingError(404, "session_not_found", "unknown session")
        return session

    @staticmethod
    def _customer(req: StartRequest) -> Customer:
        return Customer(name=req.name or req.email or "Driver", email=req.email or "",
                        document=req.cpf or "")

    @staticmethod
    def _description(session: Session) -> str:
        return f"EV charging at {session.station_id} connector {session.connector_id}"

    async def get(self, session_id: str) -> Session:
        return await self._get(session_id)

    async def operations(self, session_id: str) -> list[Operation]:
        return await self.store.list_operations(session_id)


def refundable(session: Session) -> int:
    """What a refund may return in total: what the driver paid (PIX, upfront) or what was
    captured from the card."""
    if session.method == Method.PIX:
        return session.authorized_amount
    return session.captured_amount


def _status_of(type: OperationType) -> Any:
    return {OpT.AUTHORIZE: "authorized", OpT.CHARGE: "pending", OpT.CAPTURE: "captured",
            OpT.VOID: "voided", OpT.REFUND: "refunded"}[type]


def _scrub(raw: dict[str, Any]) -> dict[str, Any]:
    """Keep the gateway's answer, minus anything card-like."""
    return {k: v for k, v in raw.items() if k not in ("card_token", "network_token", "card")}
