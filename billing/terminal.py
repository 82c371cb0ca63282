"""Unattended payment terminals (CCV IM30 in the station): authorise at the charger, stop by
presenting the same card, capture at the stop.

The flow, each step moving money only through the ledger and statuses only through
`billing.payment`:

- `start`: a TERMINAL session PENDING_PAYMENT and a terminal AUTHORIZE of `amount` on the
  station's bound terminal, answered "pending" while the cardholder is at the terminal.
- `authorization_changed` (a webhook hint or the sweep, then a fetch): approved -> payment
  AUTHORIZED with the card's one-way token, session AUTHORIZED, RemoteStartTransaction (the
  session's rules from here on: a rejected or unanswered remote start releases the hold, the
  stop captures min(cost, authorised) and releases the rest); declined or abandoned -> session
  and payment FAILED, nothing held.
- `request_stop`: a `TerminalRequest` for the session running on the connector and a card read
  at the terminal; `card_read` (hint or sweep, then a fetch) compares the card's token with the
  session's: the same card stops the session (as its driver: the stop is recorded and re-sent
  until the station stops); another card stops nothing (TOKEN_MISMATCH).

Hints: every webhookUrl we give CCV names our own id of the request (`&session=<session id>`
for an authorisation, `&request=<terminal request id>` for a card read; CCV allows extra data
in a per-request webhookUrl, general/webhooks). So a hint that overtakes our own request's
answer (CCV's reference is not stored yet) is still ours: it waits up to
`billing.ccv.hint_wait` for that answer, then is followed by a fetch as always. CCV's webhooks
page documents no retry (only that it expects a 2xx), so we do not count on one: a hint whose
answer does not come in time is refused 503 (a retry, if CCV makes one, is handled) and the
reconciliation sweep reads the operation anyway.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar
from urllib.parse import urlencode

from billing import payment
from billing.errors import BillingError
from billing.gateways.base import CardTokenResult, Terminal
from billing.ledger import CardFetch, CardRead, Fetch, Ledger, Request, key_for, retry_of
from billing.models import (
    Method,
    Operation,
    OperationStatus,
    OperationType,
    PaymentStatus,
    Session,
    SessionStatus,
    StopRequester,
    TerminalRequest,
    TerminalRequestStatus,
)
from billing.sessions import Sessions, description, new_id_tag, new_session
from billing.settings import BillingConfig
from billing.settlement import Settlement
from billing.store.ports import BillingStore
from csms.background import TaskSet
from csms.domain import utcnow

log = logging.getLogger(__name__)

S = SessionStatus
P = PaymentStatus
R = TerminalRequestStatus
OpT = OperationType
RUNNING = frozenset({S.CHARGING, S.STOPPING})
T = TypeVar("T")


def new_request_id() -> str:
    return secrets.token_urlsafe(18)  # 144 random bits


def hint_url(base: str, **ours: str) -> str:
    """The webhookUrl of one request: `base` (ours, with its `?key=`) plus our own id of the
    request, so its hints can be matched before CCV's reference of it is stored."""
    if not base:
        return ""
    return base + ("&" if "?" in base else "?") + urlencode(ours)


def same_token(given: str, expected: str) -> bool:
    """Constant-time equality of two card tokens. `secrets.compare_digest` raises TypeError
    on a str with a non-ASCII character (a hostile or broken answer), so bytes are compared."""
    return secrets.compare_digest(given.encode("utf-8", "surrogateescape"),
                                  expected.encode("utf-8", "surrogateescape"))


class TerminalPayments:
    def __init__(self, settings: BillingConfig, store: BillingStore, ledger: Ledger,
                 sessions: Sessions, settlement: Settlement, tasks: TaskSet,
                 webhook_url: str) -> None:
        self.settings = settings
        self.store = store
        self.ledger = ledger
        self.sessions = sessions
        self.settlement = settlement
        self.tasks = tasks
        self.webhook_url = webhook_url  # <public_url>/webhooks/ccv?key=<secret>; see hint_url

    async def terminal_of(self, station_id: str) -> Terminal:
        if self.ledger.terminal is None:
            raise BillingError(409, "terminal_payments_off",
                               "terminal payments are not configured ([billing.ccv])")
        binding = await self.store.station_terminal(station_id)
        if binding is None:
            raise BillingError(409, "terminal_not_bound",
                               f"station {station_id} has no payment terminal")
        return Terminal(binding.terminal_id, binding.management_system_id
                        or self.settings.billing.ccv.management_system_id)

    # start ------------------------------------------------------------------------------------
    async def start(self, station_id: str, connector_id: int, amount: int) -> Session:
        """Hold `amount` on the card the station's terminal reads; the station is started once
        the gateway says the card was approved. One start at a time per connector."""
        terminal = await self.terminal_of(station_id)
        lock = self.sessions.connector_locks[(station_id, connector_id)]
        if lock.locked():
            raise BillingError(409, "connector_busy",
                               f"a session is being started on connector {connector_id}")
        async with lock:
            tariff = await self.sessions.check_connector(station_id, connector_id)
            session = new_session(station_id, connector_id, Method.TERMINAL, new_id_tag(),
                                  amount, tariff, None, None)
            await self.store.create_session(session)
            await self.sessions.claim_connector(session)  # a start on another node: 409
            sid = session.session_id
            done = await self.ledger.run(sid, Request(
                OpT.AUTHORIZE, amount, description=description(session),
                terminal_id=terminal.terminal_id,
                management_system_id=terminal.management_system_id,
                webhook_url=hint_url(self.webhook_url, session=sid)))
        if not done.result.success:
            await self._failed(sid, done.result.error or done.result.status)
            if done.result.transient:
                raise BillingError(502, "gateway_unavailable",
                                   f"the terminal gateway did not answer: {done.result.error}",
                                   sid)
            raise BillingError(402, "payment_failed",
                               f"the terminal gateway refused: {done.result.error}", sid)
        if done.result.status == "authorized":  # approved at once: no hint to wait for
            await self._authorized(sid)
        return await self.sessions.get(sid)

    async def authorization_changed(self, session: Session) -> Session:
        """A hint about the session's terminal authorization: read it, and act on it."""
        sid = session.session_id
        if session.charge_id is None:
            return session
        done = await self.ledger.run(sid, Fetch(session.charge_id, pix=False,
                                                authorization=True))
        if done.result.transient:
            raise BillingError(503, "gateway_unavailable", "could not fetch the authorization")
        current = await self.sessions.get(sid)
        if current.payment_status == P.AUTHORIZED:
            await self._authorized(sid)
        elif current.payment_status == P.FAILED:
            await self._failed(sid, done.result.error or "the card was declined")
        return await self.sessions.get(sid)

    async def _authorized(self, session_id: str) -> None:
        ready = await payment.move_session(self.store, session_id, {S.PENDING_PAYMENT},
                                           S.AUTHORIZED)
        if ready is not None:
            self.tasks.spawn(self._remote_start(session_id), f"terminal-start-{session_id[:8]}")
            return
        ended = await self.sessions.get(session_id)
        if ended.status in (S.FAILED, S.CANCELED):  # approved after it was given up: release
            await self.settlement.release(ended)

    async def _remote_start(self, session_id: str) -> None:
        try:
            await self.sessions.remote_start(session_id)
        except BillingError as exc:  # the hold was released by remote_start
            log.warning("terminal session %s: could not start: %s", session_id, exc.message)

    async def _failed(self, session_id: str, reason: str) -> None:
        await payment.move_session(self.store, session_id, {S.PENDING_PAYMENT}, S.FAILED,
                                   failure_reason=reason, ended_at=utcnow())

    # stop at the terminal ---------------------------------------------------------------------
    async def request_stop(self, station_id: str, connector_id: int) -> TerminalRequest:
        """Ask the terminal for a card; the session on the connector stops only for its own."""
        terminal = await self.terminal_of(station_id)
        running = [s for s in await self.store.list_sessions(statuses=RUNNING,
                                                             station_id=station_id)
                   if s.connector_id == connector_id]
        if not running:
            raise BillingError(409, "no_session",
                               f"nothing is charging on connector {connector_id}")
        session = running[0]
        now = utcnow()
        request = TerminalRequest(new_request_id(), station_id, connector_id,
                                  session.session_id, R.PENDING, now, now)
        await self.store.create_terminal_request(request)
        card = await self.ledger.run(session.session_id, CardRead(
            terminal, hint_url(self.webhook_url, request=request.request_id),
            f"{session.session_id}:CARD:{request.request_id}"))
        if card.reference:
            request = await self.store.update_terminal_request(
                request.request_id, reference=card.reference) or request
        return await self._card_outcome(request, card)

    async def card_read(self, request: TerminalRequest) -> TerminalRequest:
        """A hint about a card read: fetch it, and act on it."""
        if request.status != R.PENDING or request.reference is None:
            return request
        card = await self.ledger.run(request.session_id, CardFetch(request.reference))
        if card.transient:
            raise BillingError(503, "gateway_unavailable", "could not fetch the card read")
        return await self._card_outcome(request, card)

    async def _card_outcome(self, request: TerminalRequest,
                            card: CardTokenResult) -> TerminalRequest:
        rid = request.request_id
        if card.status == "pending" or (card.transient and card.reference):
            return request  # the hint (or the sweep) tells the rest
        if not card.success or not card.token:
            return await self._settle_request(rid, R.FAILED, card.error or "no card was read")
        session = await self.sessions.get(request.session_id)
        expected = session.card_fingerprint or ""
        if not (expected and same_token(card.token, expected)):
            log.info("terminal request %s: another card, session %s keeps charging", rid,
                     session.session_id)
            return await self._settle_request(rid, R.TOKEN_MISMATCH,
                                              "the card is not the one that started the session")
        if session.status not in RUNNING:
            return await self._settle_request(rid, R.FAILED,
                                              f"the session is {session.status.value}")
        moved = await self.store.update_terminal_request(rid, if_status=R.PENDING,
                                                         status=R.STOPPED, error=None)
        if moved is None:  # settled by another read of the same card first: it stops
            return await self._current(rid)
        await self.sessions.stop(session.session_id, StopRequester.DRIVER)
        return moved

    async def _settle_request(self, request_id: str, status: TerminalRequestStatus,
                              error: str | None) -> TerminalRequest:
        moved = await self.store.update_terminal_request(request_id, if_status=R.PENDING,
                                                         status=status, error=error)
        return moved if moved is not None else await self._current(request_id)

    async def _current(self, request_id: str) -> TerminalRequest:
        current = await self.store.get_terminal_request(request_id)
        assert current is not None
        return current

    async def get_request(self, request_id: str) -> TerminalRequest:
        request = await self.store.get_terminal_request(request_id)
        if request is None:
            raise BillingError(404, "request_not_found", "unknown terminal request")
        return request

    # hints and the sweep ----------------------------------------------------------------------
    async def hint(self, reference: str, *, session_id: str | None = None,
                   request_id: str | None = None) -> bool:
        """The gateway says `reference` changed: an authorization or a card read of ours,
        named by our own id when its webhookUrl carried one. True when it settled something
        final (so a repeat of the hint can be ignored)."""
        if session_id is not None:
            return await self._authorization_hint(reference, session_id)
        if request_id is not None:
            return await self._card_hint(reference, request_id)
        session = await self.store.session_by_charge(reference)  # a URL without our id
        if session is not None and session.method == Method.TERMINAL:
            after = await self.authorization_changed(session)
            return after.payment_status != P.PENDING
        request = await self.store.terminal_request_by_reference(reference)
        if request is not None:
            return (await self.card_read(request)).status != R.PENDING
        raise _unknown_reference()

    async def _authorization_hint(self, reference: str, session_id: str) -> bool:
        async def read() -> tuple[bool, Session | None]:
            session = await self.store.get_session(session_id)
            if session is None or session.method != Method.TERMINAL:
                return True, None
            if session.charge_id is not None:
                return True, session
            op = await self.store.get_operation(key_for(session_id, OpT.AUTHORIZE))
            # no answer yet, or one that named no reference (refused at once): settled
            return op is not None and op.status != OperationStatus.PENDING, session

        session = await self._awaited(read)
        if session is None:
            raise _unknown_reference()
        if session.charge_id is None:
            if session.payment_status != P.PENDING:
                return True  # refused when asked: nothing is pending at the gateway
            raise _not_ready()
        if session.charge_id != reference:
            raise _unknown_reference()
        after = await self.authorization_changed(session)
        return after.payment_status != P.PENDING

    async def _card_hint(self, reference: str, request_id: str) -> bool:
        async def read() -> tuple[bool, TerminalRequest | None]:
            request = await self.store.get_terminal_request(request_id)
            return request is None or request.reference is not None or \
                request.status != R.PENDING, request

        request = await self._awaited(read)
        if request is None:
            raise _unknown_reference()
        if request.status != R.PENDING:
            return True
        if request.reference is None:
            raise _not_ready()
        if request.reference != reference:
            raise _unknown_reference()
        return (await self.card_read(request)).status != R.PENDING

    async def _awaited(self, read: Callable[[], Awaitable[tuple[bool, T]]]) -> T:
        """`read()` until it says ready, for at most `billing.ccv.hint_wait` seconds: our own
        request's answer is in flight when its hint overtakes it (here or on another node, so
        the store is read, not a local event)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.billing.ccv.hint_wait
        pause = 0.02
        while True:
            ready, value = await read()
            if ready or loop.time() >= deadline:
                return value
            await asyncio.sleep(min(pause, max(deadline - loop.time(), 0)))
            pause = min(pause * 2, 0.25)

    async def reconcile_authorization(self, session: Session, op: Operation) -> None:
        """A terminal AUTHORIZE still PENDING: read it when its reference is known. Else our
        request's answer never arrived, or the request never left (a crash):
        - its request is kept (written before it is sent): it may have reached CCV, so it is
          sent again, the same body with the same Idempotency-Reference (CCV answers a repeat
          with the first answer and asks no card twice; a request that never arrived asks for
          the card now, and an approval for a session given up meanwhile is reversed);
        - no request kept: it was never sent (the ledger keeps it before the call). Once it
          is older than the remote start timeout (no start in flight can still send it) the
          operation is FAILED without a call, and its session with it."""
        sid = session.session_id
        if op.charge_id or session.charge_id:
            if session.charge_id is None:
                await self.store.update_session(sid, charge_id=op.charge_id)
                session = await self.sessions.get(sid)
            try:
                await self.authorization_changed(session)
            except BillingError:
                pass  # gateway unavailable: next sweep
            return
        request = retry_of(op)
        if not request.terminal_id:
            stale = utcnow() - timedelta(seconds=self.settings.ocpp.remote_start_timeout)
            if op.created_at <= stale:
                reason = "interrupted before the terminal was asked for the card"
                log.warning("terminal session %s: %s", sid, reason)
                await self.ledger.abandon(op, reason)
                await self._failed(sid, reason)
            return
        done = await self.ledger.run(sid, request, key=op.idempotency_key, attempts=1,
                                     hand_off=False)
        if done.result.status == "authorized":
            await self._authorized(sid)
        elif not done.result.success and not done.result.transient:
            await self._failed(sid, done.result.error or done.result.status)

    async def reconcile(self) -> None:
        """Card reads whose hint never came; terminal starts cut short before the AUTHORIZE
        was recorded (past the remote start timeout: FAILED, nothing was asked); terminal
        sessions whose card has no outcome past `billing.ccv.card_timeout` (FAILED, so the
        connector is free: the pending AUTHORIZE is still read by the sweep, and an approval
        read after this is released by `_authorized`)."""
        for request in await self.store.pending_terminal_requests(limit=1000):
            try:
                await self.card_read(request)
            except BillingError:
                continue
            except Exception:
                log.exception("reconcile: terminal request %s failed", request.request_id)
        now = utcnow()
        stale = now - timedelta(seconds=self.settings.ocpp.remote_start_timeout)
        no_card = now - timedelta(seconds=self.settings.billing.ccv.card_timeout)
        for session in await self.store.list_sessions(statuses={S.PENDING_PAYMENT},
                                                      limit=1000):
            if session.method != Method.TERMINAL or (session.updated_at > stale and
                                                     session.created_at > no_card):
                continue
            if await self.store.get_operation(key_for(session.session_id, OpT.AUTHORIZE)) \
                    is None:
                if session.updated_at <= stale:
                    await self._failed(session.session_id,
                                       "interrupted before the terminal was asked for the card")
            elif session.created_at <= no_card:
                log.warning("terminal session %s: no card outcome in time; connector freed",
                            session.session_id)
                await self._failed(session.session_id,
                                   "no card outcome within billing.ccv.card_timeout")


def _unknown_reference() -> BillingError:
    return BillingError(404, "unknown_reference", "no terminal payment has this reference")


def _not_ready() -> BillingError:
    return BillingError(503, "reference_not_ready",
                        "our request's answer has not arrived yet; the sweep reads it")
