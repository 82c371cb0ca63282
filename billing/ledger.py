"""THE gateway pathway: `Ledger.run` is the only place billing calls a payment gateway (its
private helpers `_send`, for operations, and `_fetch`, for the read a webhook asks for, are the
only lines that touch the gateway, and only `run` calls them).

One way for money to move, whoever asks (a start, settlement, a release, reconciliation, a job
handler, a webhook):

  1. record the operation in the ledger with its idempotency key `<sessionId>:<TYPE>` (or the
     key a refund was recorded with), before anything reaches the gateway; an operation that
     already exists is reused with ITS amount, and one already finished is not sent again;
  2. call the gateway with that key, retrying transient failures a bounded number of times
     with the same key (jobs and sweeps retry later, again with the same key);
  3. record the outcome on the operation;
  4. move the payment through `billing.payment` (compare-and-set).

A capture or void whose outcome stays unknown, or that the gateway refused, is handed to an
OPERATION job (which calls `run` again with the same key); an authorization or PIX charge
whose outcome is unknown stays PENDING for the reconciliation sweep, which sends it again with
its kept request. A PIX charge's identifiers and QR code reach the session in the same write
that records the CHARGE as SUCCEEDED (`payment.charge_created`): no crash separates them.

Terminal sessions (method TERMINAL) use the terminal gateway (CCV) for every call, app sessions
the app gateway. A terminal AUTHORIZE is answered "pending" (the cardholder is at the terminal):
it stays PENDING with the gateway's reference on the session until a `Fetch(...,
authorization=True)` (after a webhook, or the sweep) reads it approved or declined. Reading a
card's one-way token at a terminal (`CardRead`, `CardFetch`) moves no money and records no
operation, but it is a gateway call too, so it goes through `run` like the rest.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from typing import Any, Protocol, overload

from billing import payment
from billing.gateways.base import (
    CardTokenResult,
    Customer,
    GatewayResult,
    PaymentGateway,
    Terminal,
    TerminalGateway,
)
from billing.jobs.outbox import MoneyJobs
from billing.models import (
    JobKind,
    Method,
    Operation,
    OperationStatus,
    OperationType,
    PaymentStatus,
    Session,
)
from billing.store.ports import BillingStore

log = logging.getLogger(__name__)

OpT = OperationType
P = PaymentStatus


def key_for(session_id: str, op: OperationType) -> str:
    return f"{session_id}:{op.value}"


@dataclass(frozen=True, slots=True)
class Request:
    """One gateway operation of a session, with what the gateway port needs for it."""

    type: OperationType
    amount: int
    charge_id: str | None = None
    customer: Customer | None = None  # AUTHORIZE, CHARGE
    card_token: str | None = None  # AUTHORIZE: exactly one of the three
    network_token: str | None = None
    card_id: str | None = None
    save_card: bool = False
    description: str = ""
    expires_in: int = 0  # CHARGE: seconds the QR code stays payable
    void_all: bool = False  # VOID of an unpaid PIX charge: the whole charge, no amount
    # AUTHORIZE of a TERMINAL session: the terminal that reads the card, and where the
    # gateway posts its hints
    terminal_id: str = ""
    management_system_id: str = ""
    webhook_url: str = ""


# What an authorization or a PIX charge sends besides its amount (the operation keeps that):
# kept on the pending operation so a retry sends exactly the same body (one payment source
# only; a PIX charge has none, but its QR code's lifetime).
CONTEXT_FIELDS = ("card_token", "network_token", "card_id", "save_card", "description",
                  "expires_in", "terminal_id", "management_system_id", "webhook_url")
KEPT_REQUESTS = frozenset({OperationType.AUTHORIZE, OperationType.CHARGE})


def context_of(request: Request) -> dict[str, Any]:
    """An authorization's or PIX charge's request as kept on its pending operation (`raw`)
    until it finishes: a payment source (a card or wallet token) is kept only that long (see
    `_scrub`)."""
    context = {name: getattr(request, name) for name in CONTEXT_FIELDS if getattr(request, name)}
    if request.customer is not None:
        context["customer"] = asdict(request.customer)
    return context


def retry_of(op: Operation) -> Request:
    """The request a pending operation was first sent with, from its kept context (a context
    kept by an older build has no customer: the caller supplies it)."""
    context = op.raw or {}
    customer = context.get("customer")
    return Request(op.type, op.amount, charge_id=op.charge_id,
                   customer=Customer(**customer) if customer else None,
                   **{name: context[name] for name in CONTEXT_FIELDS if context.get(name)})


# A created PIX charge's identifiers and QR code, as the session keeps them.
PIX_FIELDS = ("order_id", "charge_id", "pix_qr_code", "pix_qr_code_url", "pix_expires_at")


@dataclass(frozen=True, slots=True)
class Fetch:
    """Ask the gateway what became of a charge (a webhook is a hint, not the truth). A read: it
    records no operation of its own; when it shows a PIX charge paid it completes the CHARGE
    operation and moves the payment to PAID."""

    charge_id: str
    pix: bool
    # a terminal authorization still PENDING here: an approval or a decline read now finishes
    # the AUTHORIZE operation and moves the payment (AUTHORIZED with the card's token, FAILED)
    authorization: bool = False


@dataclass(frozen=True, slots=True)
class CardRead:
    """Ask the session's terminal to read a card and compute its one-way token; `key` (one
    per stop request) makes a repeated ask the same ask."""

    terminal: Terminal
    webhook_url: str
    key: str


@dataclass(frozen=True, slots=True)
class CardFetch:
    """What became of a card read (`reference`: the gateway's id of it)."""

    reference: str


TERMINAL_GATEWAY_MISSING = "no terminal gateway is configured ([billing.ccv])"


@dataclass(frozen=True, slots=True)
class Done:
    result: GatewayResult
    moved: Session | None = None  # the session, when this call moved its payment


class TerminalPaymentGateway(PaymentGateway, TerminalGateway, Protocol):
    """A gateway with unattended terminals (CCV): the port plus `TerminalGateway`."""


class Ledger:
    def __init__(self, store: BillingStore, gateway: PaymentGateway, jobs: MoneyJobs,
                 attempts: int, terminal: TerminalPaymentGateway | None = None) -> None:
        self.store = store
        self.gateway = gateway
        self.terminal = terminal  # for TERMINAL sessions; None: none configured
        self.jobs = jobs
        self.attempts = attempts

    @overload
    async def run(self, session_id: str, request: CardRead | CardFetch) -> CardTokenResult: ...

    @overload
    async def run(self, session_id: str, request: Request | Fetch, *, key: str | None = None,
                  context: dict[str, Any] | None = None, attempts: int | None = None,
                  hand_off: bool = True) -> Done: ...

    async def run(self, session_id: str, request: Request | Fetch | CardRead | CardFetch, *,
                  key: str | None = None, context: dict[str, Any] | None = None,
                  attempts: int | None = None, hand_off: bool = True,
                  ) -> Done | CardTokenResult:
        """Record -> call -> record the outcome -> move the payment (see the module doc).

        `key` defaults to `<sessionId>:<TYPE>`. `context` is kept on a pending operation for
        a later retry; an authorization or a PIX charge keeps its whole request (`context_of`)
        so a retry sends the same body. `attempts` bounds the in-request
        retries (default: `billing.gateway_attempts`; a job passes 1: its schedule retries).
        `hand_off=False` (a job running the operation) hands nothing to another job."""
        if isinstance(request, CardRead | CardFetch):
            return await self._card(session_id, request)
        if isinstance(request, Fetch):
            return await self._fetch(session_id, request)
        if context is None and request.type in KEPT_REQUESTS:
            context = context_of(request)
        key = key or key_for(session_id, request.type)
        op, _ = await self.store.begin_operation(session_id, request.type, request.amount, key,
                                                 request.charge_id)
        assert op is not None  # without at_version an existing key wins
        if op.status != OperationStatus.PENDING:
            result = _recorded(op)
            moved = await self._move(op, result) if result.success else \
                await self._move_failed(op)
        else:
            kept = await self.store.finish_operation(key, OperationStatus.PENDING,
                                                     raw=context) if context else op
            if kept is not None and kept.status != OperationStatus.PENDING:
                # finished meanwhile (a sweep gave up on it as never sent): not sent now
                result = _recorded(kept)
                return Done(result, None)
            result = await self._call(op, request, attempts or self.attempts)
            moved = await self._record(op, request, result)
        if hand_off and not result.success and op.type in (OpT.CAPTURE, OpT.VOID):
            # Unknown outcome: the job retries it. Refused: the job ends FAILED with the
            # gateway's error, where operators see it and can retry it.
            log.warning("session %s: %s %s (%s); handed to a job", session_id, op.type.value,
                        "outcome unknown" if result.transient else "refused", result.error)
            await self.jobs.submit(JobKind.OPERATION, key, session_id, {"operation": key})
        elif result.transient and hand_off:
            log.warning("session %s: %s outcome unknown (%s); left for reconciliation",
                        session_id, op.type.value, result.error)
        return Done(result, moved)

    async def abandon(self, op: Operation, reason: str) -> Session | None:
        """A PENDING operation that provably never reached the gateway (an authorization or
        PIX charge whose request was never kept: the crash came before its call) ends FAILED
        without a call, and the payment with it."""
        assert op.type in KEPT_REQUESTS, op.type
        done = await self.store.finish_operation(op.idempotency_key, OperationStatus.FAILED,
                                                 error=reason)
        if done is None or done.status != OperationStatus.FAILED:
            return None
        return await self._move_failed(op)

    async def _call(self, op: Operation, request: Request, attempts: int) -> GatewayResult:
        result: GatewayResult | None = None
        for attempt in range(max(attempts, 1)):
            result = await self._send(op, request)
            if not result.transient:
                break
            if attempt + 1 < attempts:
                await asyncio.sleep(0.2 * 2**attempt)
        assert result is not None
        return result

    async def _gateway_for(self, session_id: str) -> PaymentGateway:
        """The terminal gateway for a TERMINAL session, else the app gateway. One read, and
        only where a terminal gateway is configured."""
        if self.terminal is None:
            return self.gateway
        session = await self.store.get_session(session_id)
        return self.terminal if session is not None and session.method == Method.TERMINAL \
            else self.gateway

    async def _send(self, op: Operation, r: Request) -> GatewayResult:
        """The gateway call of a recorded operation: its key, its amount."""
        key, amount, charge_id = op.idempotency_key, op.amount, op.charge_id or r.charge_id
        customer = r.customer or Customer(name="Driver", email="", document="")
        gateway = await self._gateway_for(op.session_id)
        if r.terminal_id and op.type == OpT.AUTHORIZE:
            if self.terminal is None:
                return GatewayResult(success=False, status="failed", amount=amount,
                                     error=TERMINAL_GATEWAY_MISSING)
            return await self.terminal.authorize_terminal(
                session_id=op.session_id, amount=amount,
                terminal=Terminal(r.terminal_id, r.management_system_id),
                webhook_url=r.webhook_url, description=r.description, idempotency_key=key)
        if op.type == OpT.AUTHORIZE:
            return await gateway.authorize(
                session_id=op.session_id, amount=amount, customer=customer,
                card_token=r.card_token, network_token=r.network_token, card_id=r.card_id,
                save_card=r.save_card, description=r.description, idempotency_key=key)
        if op.type == OpT.CHARGE:
            return await gateway.create_pix(
                session_id=op.session_id, amount=amount, customer=customer,
                expires_in=r.expires_in, description=r.description, idempotency_key=key)
        if not charge_id:
            return GatewayResult(success=False, status="failed", amount=amount,
                                 error="the session has no gateway charge")
        if op.type == OpT.CAPTURE:
            return await gateway.capture(charge_id=charge_id, amount=amount,
                                              idempotency_key=key)
        if op.type == OpT.VOID:
            return await gateway.void(charge_id=charge_id,
                                           amount=None if r.void_all else amount,
                                           idempotency_key=key)
        return await gateway.refund(charge_id=charge_id, amount=amount, idempotency_key=key)

    async def _record(self, op: Operation, request: Request, result: GatewayResult,
                      ) -> Session | None:
        """Record the outcome of a call, then move the payment."""
        if result.transient:
            return None
        key = op.idempotency_key
        if op.type == OpT.AUTHORIZE and result.status == "pending":
            # a terminal asking for the card: the reference on the operation and the session
            # (webhooks name it), the payment stays PENDING until a fetch reads the outcome
            await self.store.finish_operation(key, OperationStatus.PENDING,
                                              charge_id=result.charge_id)
            if result.charge_id:
                await self.store.update_session(op.session_id, charge_id=result.charge_id)
            return None
        if op.type == OpT.REFUND and result.success:
            # outcome and refunded total in one compare-and-set: never counted twice
            return await payment.settle_refund(self.store, key, raw=_scrub(result.raw))
        if op.type == OpT.CHARGE and result.success:
            # outcome and the charge's identifiers on the session in one write: a crash never
            # leaves a created charge that the session does not know (the payment stays PENDING)
            await payment.charge_created(self.store, key, raw=_scrub(result.raw), **{
                name: getattr(result, name) for name in PIX_FIELDS})
            return None
        status = OperationStatus.SUCCEEDED if result.success else OperationStatus.FAILED
        await self.store.finish_operation(key, status, error=result.error,
                                          charge_id=result.charge_id or request.charge_id,
                                          raw=_scrub(result.raw))
        if result.success:
            return await self._move(op, result)
        return await self._move_failed(op)

    async def _move_failed(self, op: Operation) -> Session | None:
        """The payment move of a refused authorization or PIX charge (safe to repeat)."""
        if op.type in (OpT.AUTHORIZE, OpT.CHARGE):
            return await payment.move_payment(self.store, op.session_id, {P.PENDING}, P.FAILED)
        return None

    async def _move(self, op: Operation, result: GatewayResult) -> Session | None:
        """The payment move of a succeeded operation (a compare-and-set: safe to repeat)."""
        if op.type == OpT.VOID and result.status == "refunded":
            return await _returned(self.store, op.session_id, result)
        if op.type == OpT.CHARGE:
            # recorded earlier; an older build kept its id only on the operation when it died
            # before the session's write: the session adopts it (the same id, so repeatable)
            if result.charge_id:
                await self.store.update_session(op.session_id, charge_id=result.charge_id)
            return None
        if op.type == OpT.AUTHORIZE:
            changes: dict[str, Any] = {"authorized_amount": result.amount,
                                       "order_id": result.order_id,
                                       "charge_id": result.charge_id}
            if result.card_reference:
                changes["card_reference"] = result.card_reference
            if result.card_last4:
                changes["card_last4"] = result.card_last4
            if result.card_fingerprint:
                changes["card_fingerprint"] = result.card_fingerprint
            return await payment.move_payment(self.store, op.session_id, {P.PENDING},
                                              P.AUTHORIZED, **changes)
        return await payment.after_success(self.store, op.session_id, op.type, op.amount)

    async def _fetch(self, session_id: str, request: Fetch) -> Done:
        gateway = await self._gateway_for(session_id)
        result = await gateway.fetch(charge_id=request.charge_id)
        if request.authorization:
            return Done(result, await self._authorization_read(session_id, request, result))
        if request.pix and result.status == "refunded" and not result.transient:
            return Done(result, await _returned(self.store, session_id, result))
        if result.transient or not (request.pix and result.status == "paid"):
            return Done(result)
        paid = await payment.move_payment(self.store, session_id, {P.PENDING}, P.PAID,
                                          authorized_amount=result.amount)
        if paid is not None:
            await self.store.finish_operation(key_for(session_id, OpT.CHARGE),
                                              OperationStatus.SUCCEEDED, raw=_scrub(result.raw))
        return Done(result, paid)


    async def _authorization_read(self, session_id: str, request: Fetch,
                                  result: GatewayResult) -> Session | None:
        """A pending terminal authorization read approved or declined: finish it as if the
        gateway had answered so (`_record`); still pending or unknown: nothing changes."""
        if result.transient or result.status == "pending":
            return None
        op = await self.store.get_operation(key_for(session_id, OpT.AUTHORIZE))
        if op is None or op.status != OperationStatus.PENDING:
            return None
        return await self._record(op, Request(OpT.AUTHORIZE, op.amount,
                                              charge_id=request.charge_id), result)

    async def _card(self, session_id: str, request: CardRead | CardFetch) -> CardTokenResult:
        if self.terminal is None:
            return CardTokenResult(success=False, status="failed",
                                   error=TERMINAL_GATEWAY_MISSING)
        if isinstance(request, CardFetch):
            return await self.terminal.fetch_card_token(reference=request.reference)
        return await self.terminal.request_card_token(
            session_id=session_id, terminal=request.terminal, webhook_url=request.webhook_url,
            idempotency_key=request.key)


async def _returned(store: BillingStore, session_id: str, result: GatewayResult,
                    ) -> Session | None:
    """A PIX charge still PENDING here that the gateway shows paid and given back."""
    refunded = result.refunded_amount if result.refunded_amount is not None else result.amount
    return await payment.returned_unseen(store, session_id, paid=result.amount,
                                         refunded=refunded)


def _recorded(op: Operation) -> GatewayResult:
    """The outcome of an operation finished earlier, as the gateway gave it."""
    failed = op.status == OperationStatus.FAILED
    return GatewayResult(success=not failed, status="failed" if failed else _STATUS[op.type],
                         amount=op.amount, charge_id=op.charge_id, error=op.error,
                         raw=op.raw or {})


_STATUS: dict[OperationType, Any] = {
    OpT.AUTHORIZE: "authorized", OpT.CHARGE: "pending", OpT.CAPTURE: "captured",
    OpT.VOID: "voided", OpT.REFUND: "refunded"}


SECRET_KEYS = frozenset({"card_token", "network_token", "card_id", "card", "payload", "token"})


def _scrub(raw: Any) -> Any:
    """Keep the gateway's answer, minus anything card-like, at any depth. Every outcome
    recorded on an operation goes through here, and finishing an operation replaces its kept
    request, so no card or wallet token outlives the operation's PENDING state."""
    if isinstance(raw, dict):
        return {k: _scrub(v) for k, v in raw.items() if k not in SECRET_KEYS}
    if isinstance(raw, list):
        return [_scrub(v) for v in raw]
    return raw
