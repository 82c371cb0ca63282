"""Billing domain: charging sessions, their payment, and the append-only operations ledger.

Which status may follow which is decided in `billing.payment` (the move tables); the store only
applies a move as a compare-and-set.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class Method(StrEnum):
    PIX = "PIX"
    CREDIT_CARD = "CREDIT_CARD"
    WALLET = "WALLET"
    VIP = "VIP"
    GOOGLE_PAY = "GOOGLE_PAY"
    APPLE_PAY = "APPLE_PAY"
    # A card read by the payment terminal in the station (CCV): held, captured and released
    # like a card, on the terminal gateway; never a driver app's choice.
    TERMINAL = "TERMINAL"

    @property
    def is_card(self) -> bool:
        return self not in (Method.PIX, Method.VIP)

    @property
    def uses_network_token(self) -> bool:
        return self in (Method.WALLET, Method.GOOGLE_PAY, Method.APPLE_PAY)


class SessionStatus(StrEnum):
    PENDING_PAYMENT = "PENDING_PAYMENT"  # PIX not paid yet (or card not yet authorized)
    AUTHORIZED = "AUTHORIZED"  # money reserved, RemoteStart not sent yet
    STARTING = "STARTING"  # RemoteStartTransaction accepted, waiting for StartTransaction
    CHARGING = "CHARGING"
    STOPPING = "STOPPING"  # RemoteStopTransaction sent, waiting for StopTransaction
    # stopped with energy no connector can deliver in that time (`billing.plausibility`):
    # nothing is captured or refunded until an operator decides what is owed
    REVIEW = "REVIEW"
    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"  # ended before any energy flowed
    FAILED = "FAILED"


S = SessionStatus
ACTIVE_SESSION_STATUSES = frozenset({S.AUTHORIZED, S.STARTING, S.CHARGING, S.STOPPING})


class StopRequester(StrEnum):
    """Who asked a running session to stop (the stop is then re-sent until it happens)."""

    DRIVER = "DRIVER"
    OPERATOR = "OPERATOR"
    BUDGET_GUARD = "BUDGET_GUARD"


class PaymentStatus(StrEnum):
    PENDING = "PENDING"
    AUTHORIZED = "AUTHORIZED"
    PAID = "PAID"  # PIX paid upfront
    CAPTURED = "CAPTURED"
    VOIDED = "VOIDED"
    REFUNDED = "REFUNDED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    FAILED = "FAILED"
    WAIVED = "WAIVED"  # VIP


class OperationType(StrEnum):
    AUTHORIZE = "AUTHORIZE"
    CHARGE = "CHARGE"  # PIX
    CAPTURE = "CAPTURE"
    VOID = "VOID"
    REFUND = "REFUND"


class OperationStatus(StrEnum):
    PENDING = "PENDING"  # recorded, gateway outcome not known yet (retry with the same key)
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@dataclass(slots=True)
class Session:
    session_id: str
    station_id: str
    connector_id: int
    method: Method
    id_tag: str  # sent in RemoteStartTransaction; at most 20 characters
    requested_amount: int  # cents the driver asked to reserve
    email: str | None
    cpf: str | None
    currency: str
    price_per_kwh: str  # tariff snapshot at start, decimal strings
    fixed_connection_fee: str
    status: SessionStatus
    created_at: datetime
    updated_at: datetime
    save_card: bool = False
    driver_id_tag: str | None = None  # the driver's own RFID tag, for saved-card starts
    transaction_id: int | None = None
    energy_wh: int = 0
    cost_cents: int = 0
    starting_at: datetime | None = None  # when RemoteStart was accepted
    ended_at: datetime | None = None
    failure_reason: str | None = None
    # payment
    payment_status: PaymentStatus = PaymentStatus.PENDING
    order_id: str | None = None
    charge_id: str | None = None
    authorized_amount: int = 0  # held (card) or paid (PIX)
    captured_amount: int = 0
    refunded_amount: int = 0
    pix_qr_code: str | None = None
    pix_qr_code_url: str | None = None
    pix_expires_at: str | None = None
    card_reference: str | None = None
    card_last4: str | None = None  # as the gateway reported it at authorization (receipts)
    # TERMINAL: the card's one-way token from the authorization (CCV "99" + 16 characters);
    # a stop asked at the terminal must present the card with the same token
    card_fingerprint: str | None = None
    receipt_url: str | None = None
    # what billing recorded of its transaction (from the core's events), so settlement and
    # receipts never read the charging store again
    meter_start: int | None = None  # Wh
    meter_stop: int | None = None  # Wh; set once the stop is recorded
    charging_started_at: datetime | None = None
    stopped_at: datetime | None = None  # the station's stop time; None while it runs
    stop_reason: str | None = None
    # the stop request, a durable intent: re-sent (on reconnect, on a schedule with backoff,
    # when a driver asks again) until the station's stop is recorded
    stop_requested_by: StopRequester | None = None  # None on a stop from before v4
    stop_requested_at: datetime | None = None
    stop_attempts: int = 0  # RemoteStops sent
    stop_last_attempt_at: datetime | None = None
    stop_last_error: str | None = None  # of the last attempt; None when it was accepted
    stop_next_at: datetime | None = None  # when the sweep sends it again
    # when billing received the transaction's start and stop from the station (our clock, not
    # the station's): plausibility judges energy by the tighter of the two windows
    seen_started_at: datetime | None = None
    seen_stopped_at: datetime | None = None
    # REVIEW: past this the reconciliation sweep settles the session itself (before the
    # gateway lets the card hold expire), by `Settlement.review_expired`'s rule
    review_due_at: datetime | None = None
    version: int = 0  # bumped by every write: the compare-and-set token of the session

    @property
    def stop_recorded(self) -> bool:
        return self.stopped_at is not None

    @property
    def delivered_wh(self) -> int:
        """Energy of the recorded stop: meterStop - meterStart, never negative."""
        if self.meter_stop is None:
            return 0
        return max(0, self.meter_stop - (self.meter_start or 0))


@dataclass(slots=True)
class Operation:
    session_id: str
    seq: int
    type: OperationType
    amount: int
    status: OperationStatus
    idempotency_key: str
    created_at: datetime
    updated_at: datetime
    error: str | None = None
    charge_id: str | None = None
    raw: dict[str, Any] | None = None
    # what the request that created it asked for (an operator refund's amount and reason): a
    # repeat of its Idempotency-Key replays it only when this matches
    fingerprint: str | None = None


@dataclass(slots=True)
class SavedCard:
    """A driver's saved card: the gateway's reference only, never card data."""

    driver_id_tag: str
    card_reference: str
    email: str | None
    cpf: str | None
    created_at: datetime


class JobStatus(StrEnum):
    PENDING = "PENDING"  # waiting to run (now, or at next_attempt_at)
    RUNNING = "RUNNING"  # claimed by a worker until lease_until
    DONE = "DONE"
    FAILED = "FAILED"  # gave up (permanent error or attempts exhausted); an operator may retry


class JobKind(StrEnum):
    REFUND = "REFUND"  # payload: {"operation": <idempotency key of the REFUND operation>}
    OPERATION = "OPERATION"  # retry a CAPTURE / VOID / AUTHORIZE: {"operation": <key>}
    RECEIPT = "RECEIPT"  # render, store and e-mail the session's receipt


@dataclass(slots=True)
class Job:
    """A money job in the outbox: written to the store before it is enqueued, so a broker
    outage or a dead worker delays it but never loses it."""

    job_id: str  # deterministic: the operation's idempotency key, or "receipt:<sessionId>"
    kind: JobKind
    session_id: str
    payload: dict[str, Any]
    status: JobStatus
    attempts: int  # attempts made so far
    next_attempt_at: datetime
    lease_until: datetime | None  # a delivery or a run in flight until then
    created_at: datetime
    updated_at: datetime
    last_error: str | None = None


@dataclass(slots=True)
class Receipt:
    session_id: str
    number: int  # sequential, gap-free per store
    token: str  # unguessable; the receipt is served at /receipts/<token>
    html: str
    text: str
    created_at: datetime
    emailed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TerminalBinding:
    """The payment terminal built into a station (CCV: terminalId and the managementSystemId
    it is registered under; empty: `billing.ccv.management_system_id`)."""

    station_id: str
    terminal_id: str
    management_system_id: str
    updated_at: datetime


class TerminalRequestStatus(StrEnum):
    PENDING = "PENDING"  # the terminal is reading the card
    STOPPED = "STOPPED"  # the card matched: the session was asked to stop
    TOKEN_MISMATCH = "TOKEN_MISMATCH"  # another card: nothing stopped
    FAILED = "FAILED"  # no card read (abandoned, refused), or the session ended meanwhile


@dataclass(slots=True)
class TerminalRequest:
    """A stop asked at a station's terminal: which session it is for, and the gateway's
    reference of the card read it started (the webhook names that reference)."""

    request_id: str
    station_id: str
    connector_id: int
    session_id: str
    status: TerminalRequestStatus
    created_at: datetime
    updated_at: datetime
    reference: str | None = None  # the gateway's token request
    error: str | None = None
