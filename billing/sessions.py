"""A driver's session: reserve the money and start the station, the remote start timeout, the
driver's stop, and a PIX payment confirmed by the gateway."""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from billing import payment
from billing.errors import BillingError, require_session
from billing.gateways.base import Customer, GatewayResult
from billing.ledger import Fetch, Ledger, Request
from billing.models import (
    ACTIVE_SESSION_STATUSES,
    Method,
    OperationType,
    SavedCard,
    Session,
    SessionStatus,
    StopRequester,
)
from billing.settings import BillingConfig
from billing.settlement import Settlement
from billing.stops import Stops
from billing.store.ports import BillingStore
from billing.tariffs import Tariff
from csms.background import TaskSet
from csms.commands import (
    CommandError,
    CommandRejected,
    CommandTimeout,
    CommandUnavailable,
    StationCommands,
)
from csms.domain import utcnow
from csms.store import Store

log = logging.getLogger(__name__)

S = SessionStatus
OpT = OperationType
BEFORE_CHARGING = frozenset({S.PENDING_PAYMENT, S.AUTHORIZED, S.STARTING})
# A driver may start on a connector that is free or has a car plugged in: 1.6 Available or
# Preparing, 2.0.1 Available or Occupied (2.0.1 has no Preparing: Occupied is plugged in, and
# also charging; a connector busy with another session is refused below, and a station that is
# charging anyway rejects the RequestStartTransaction, which voids the hold).
USABLE_CONNECTOR_STATUSES = frozenset({"Available", "Preparing", "Occupied"})
_ID_TAG_ALPHABET = string.ascii_uppercase + string.digits


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


def awaiting_pix(session: Session) -> bool:
    return session.method == Method.PIX and session.status == S.PENDING_PAYMENT


def description(session: Session) -> str:
    return f"EV charging at {session.station_id} connector {session.connector_id}"


def customer_of(session: Session, name: str | None = None) -> Customer:
    return Customer(name=name or session.email or "Driver", email=session.email or "",
                    document=session.cpf or "")


def new_session(station_id: str, connector_id: int, method: Method, id_tag: str, amount: int,
                tariff: Tariff, email: str | None, cpf: str | None, **more: object) -> Session:
    now = utcnow()
    return Session(
        session_id=new_session_id(), station_id=station_id, connector_id=connector_id,
        method=method, id_tag=id_tag, requested_amount=amount, email=email, cpf=cpf,
        currency=tariff.currency, price_per_kwh=str(tariff.price_per_kwh),
        fixed_connection_fee=str(tariff.fixed_connection_fee), status=S.PENDING_PAYMENT,
        created_at=now, updated_at=now, **more)  # type: ignore[arg-type]


class Sessions:
    def __init__(self, settings: BillingConfig, store: BillingStore, charging: Store,
                 ledger: Ledger, settlement: Settlement, stations: StationCommands,
                 stops: Stops, tasks: TaskSet) -> None:
        self.settings = settings
        self.store = store
        self.charging = charging
        self.ledger = ledger
        self.settlement = settlement
        self.stations = stations
        self.stops = stops
        self.tasks = tasks
        self.default_tariff = Tariff.from_settings(settings.billing.tariff,
                                                   settings.billing.currency)
        self.connector_locks: defaultdict[tuple[str, int], asyncio.Lock] = \
            defaultdict(asyncio.Lock)
        self.start_timers: dict[str, asyncio.TimerHandle] = {}

    async def tariff_for(self, station_id: str) -> Tariff:
        override = await self.store.station_tariff(station_id)
        if override is None:
            return self.default_tariff
        return Tariff(Decimal(override[0]), Decimal(override[1]), self.settings.billing.currency)

    # start -------------------------------------------------------------------------------------
    async def start(self, req: StartRequest) -> Session:
        """Reserve the money and ask the station to start. One start at a time per connector:
        in this process a lock makes a second request get 409 at once rather than wait; across
        the nodes of a cluster the new session is written first and the connector checked
        again after it (`claim_connector`), before any money moves."""
        lock = self.connector_locks[(req.station_id, req.connector_id)]
        if lock.locked():
            raise BillingError(409, "connector_busy",
                               f"a session is being started on connector {req.connector_id}")
        async with lock:
            return await self._start(req)

    async def _start(self, req: StartRequest) -> Session:
        tariff = await self._check_start(req)
        session = new_session(req.station_id, req.connector_id, req.method, new_id_tag(),
                              req.amount, tariff, req.email, req.cpf, save_card=req.save_card,
                              driver_id_tag=req.driver_id_tag)
        await self.store.create_session(session)
        await self.claim_connector(session)
        sid = session.session_id
        customer = customer_of(session, req.name)
        if req.method == Method.VIP:
            await payment.move_payment(self.store, sid, {payment.P.PENDING}, payment.P.WAIVED)
            await payment.move_session(self.store, sid, {S.PENDING_PAYMENT}, S.AUTHORIZED)
        elif req.method == Method.PIX:
            done = await self.ledger.run(sid, Request(
                OpT.CHARGE, req.amount, customer=customer,
                expires_in=self.settings.billing.pix_expires_in,
                description=description(session)))
            if not done.result.success:
                await self._fail_start(sid, done.result)
            return await self.get(sid)  # the ledger recorded the charge and its QR code on it
        else:
            wallet = req.method.uses_network_token
            done = await self.ledger.run(
                sid, Request(OpT.AUTHORIZE, req.amount, customer=customer,
                             card_token=None if wallet else req.card_token,
                             network_token=req.network_token if wallet else None,
                             save_card=req.save_card, description=description(session)))
            if not done.result.success:
                await self._fail_start(sid, done.result)
            await payment.move_session(self.store, sid, {S.PENDING_PAYMENT}, S.AUTHORIZED)
            if req.save_card and req.driver_id_tag and done.result.card_reference:
                await self.store.save_card(SavedCard(req.driver_id_tag,
                                                     done.result.card_reference, req.email,
                                                     req.cpf, utcnow()))
        return await self.remote_start(sid)

    async def _check_start(self, req: StartRequest) -> Tariff:
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
        # A STOPPING session on a connector that reports itself usable no longer charges there:
        # the station ended or lost that transaction (a reboot), and the next start supersedes
        # it, which settles it at its last reading. Refusing would lock the connector for ever.
        busy = await self.store.list_sessions(statuses=ACTIVE_SESSION_STATUSES - {S.STOPPING},
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
        return tariff

    async def check_connector(self, station_id: str, connector_id: int) -> Tariff:
        """A start's checks where nobody was shown a price (a terminal start): the station's
        own tariff, which it returns."""
        tariff = await self.tariff_for(station_id)
        return await self._check_start(StartRequest(
            station_id, connector_id, Method.TERMINAL, 0, None, None, None, None, None, False,
            tariff.price_per_kwh, tariff.fixed_connection_fee))

    async def claim_connector(self, session: Session) -> None:
        """Write first, then look: every start writes its session before it reads the
        connector's sessions again, so of two starts that raced past `_check_start` (on two
        nodes) the later reader always sees the other. One that sees another gives way, before
        any money moves; two that see each other both give way (a 409 the driver may retry),
        so two never both go ahead. The store's own ordering is the lock: no lease to expire,
        nothing held when a node dies. A PIX session waiting to be paid holds nothing, as in
        `_check_start`; any other PENDING_PAYMENT one is a start in flight."""
        others = [s for s in await self.store.list_sessions(
                      statuses=(ACTIVE_SESSION_STATUSES - {S.STOPPING}) | {S.PENDING_PAYMENT},
                      station_id=session.station_id)
                  if s.connector_id == session.connector_id and
                  s.session_id != session.session_id and not awaiting_pix(s)]
        if not others:
            return
        sid = session.session_id
        reason = "another session was started on the connector at the same time"
        await payment.move_session(self.store, sid, {S.PENDING_PAYMENT}, S.FAILED,
                                   failure_reason=reason, ended_at=utcnow())
        await payment.move_payment(self.store, sid, {payment.P.PENDING}, payment.P.FAILED)
        raise BillingError(409, "connector_busy",
                           f"a session is being started on connector {session.connector_id}",
                           sid)

    async def _fail_start(self, session_id: str, result: GatewayResult) -> None:
        """The ledger has moved the payment (FAILED when refused; an unknown outcome stays
        PENDING for the reconciliation sweep, which releases any hold it placed)."""
        reason = result.error or result.status
        await payment.move_session(self.store, session_id, {S.PENDING_PAYMENT}, S.FAILED,
                                   failure_reason=reason, ended_at=utcnow())
        if result.transient:
            raise BillingError(502, "gateway_unavailable",
                               f"the payment gateway did not answer: {reason}", session_id)
        if result.status == "declined":
            raise BillingError(402, "payment_declined", f"payment declined: {reason}",
                               session_id)
        raise BillingError(402, "payment_failed", f"payment failed: {reason}", session_id)

    async def remote_start(self, session_id: str) -> Session:
        """Ask the station to start; arm the StartTransaction timeout."""
        session = await payment.move_session(self.store, session_id, {S.AUTHORIZED},
                                             S.STARTING, starting_at=utcnow())
        if session is None:
            return await self.get(session_id)  # already started (or ended) meanwhile
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
        except CommandUnavailable as exc:  # not delivered: the money goes back, retry later
            accepted, reason, code, status = False, str(exc), "cluster_unavailable", 503
        except CommandError as exc:
            accepted, reason, code, status = False, str(exc), "station_offline", 409
        if not accepted:
            failed = await payment.move_session(self.store, session_id, {S.STARTING}, S.FAILED,
                                                failure_reason=reason, ended_at=utcnow())
            if failed is not None:
                await self.settlement.release(failed)
            raise BillingError(status, code, reason or "remote start failed", session_id)
        self.arm_start_timeout(session_id, self.settings.ocpp.remote_start_timeout)
        return await self.get(session_id)

    def arm_start_timeout(self, session_id: str, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self.start_timers[session_id] = loop.call_later(
            max(delay, 0), lambda: self.tasks.spawn(self.expire_start(session_id),
                                                    f"start-timeout-{session_id[:8]}"))

    def disarm_start_timeout(self, session_id: str) -> None:
        timer = self.start_timers.pop(session_id, None)
        if timer is not None:
            timer.cancel()

    async def expire_start(self, session_id: str) -> None:
        """No StartTransaction within `ocpp.remote_start_timeout`: release the money."""
        self.start_timers.pop(session_id, None)
        canceled = await payment.move_session(
            self.store, session_id, {S.STARTING}, S.CANCELED,
            failure_reason="no StartTransaction within the remote start timeout",
            ended_at=utcnow())
        if canceled is not None:
            log.info("session %s: station never started, releasing the money", session_id)
            await self.settlement.release(canceled)

    # stop by the driver (or an operator) ------------------------------------------------------
    async def stop(self, session_id: str, by: StopRequester = StopRequester.DRIVER) -> Session:
        """Before charging: cancel and release; while charging: record the stop request and
        ask the station; already stopping: ask the station again, at once.

        Each branch is a compare-and-set; one that loses (StartTransaction moved STARTING ->
        CHARGING between the read and the write, say) goes round again on the fresh status,
        so the stop is never dropped. Statuses only move forward: this ends."""
        while True:
            session = await self.get(session_id)
            if session.status in BEFORE_CHARGING:
                who = by.value.lower().replace("_", " ")
                canceled = await payment.move_session(
                    self.store, session_id, BEFORE_CHARGING, S.CANCELED,
                    failure_reason=f"stopped by the {who} before charging", ended_at=utcnow())
                if canceled is None:
                    continue
                self.disarm_start_timeout(session_id)
                await self.settlement.release(canceled)
            elif session.status == S.CHARGING:
                if await self.stops.request(session_id, by) is None:
                    continue
                await self.stops.send(session_id)
            elif session.status == S.STOPPING:
                await self.stops.send(session_id)
            return await self.get(session_id)  # also when it has ended: nothing to do

    # the gateway says a charge changed (webhook or sweep) ---------------------------------------
    async def charge_changed(self, charge_id: str) -> Session | None:
        """A webhook said a charge changed: fetch the truth from the gateway and act on it."""
        session = await self.store.session_by_charge(charge_id)
        if session is None:
            return None
        sid = session.session_id
        done = await self.ledger.run(sid, Fetch(charge_id, pix=session.method == Method.PIX))
        if done.result.transient:
            raise BillingError(503, "gateway_unavailable", "could not fetch the charge")
        if done.moved is not None:  # this call saw it paid
            ready = await payment.move_session(self.store, sid, {S.PENDING_PAYMENT},
                                               S.AUTHORIZED)
            if ready is None:
                # Paid after the session was canceled: give it all back.
                await self.settlement.release(await self.get(sid))
            else:
                self.tasks.spawn(self._start_after_payment(sid), f"pix-start-{sid[:8]}")
        return await self.get(sid)

    async def _start_after_payment(self, session_id: str) -> None:
        try:
            await self.remote_start(session_id)
        except BillingError as exc:
            log.warning("session %s: could not start after PIX payment: %s", session_id,
                        exc.message)

    async def get(self, session_id: str) -> Session:
        return await require_session(self.store, session_id)
