"""The payment gateway port.

Every adapter implements `PaymentGateway`. Adapters never raise for gateway outcomes: a decline,
a refused capture, a 4xx, a 5xx, a timeout or a dropped connection all come back as a
`GatewayResult`. `transient=True` means "the outcome is unknown or temporary: retry the same call
with the SAME idempotency key"; `transient=False` means the result is final.

Every mutating call takes an `idempotency_key`: the caller creates it once per logical operation
(derived from the session and the operation), stores it with the operation, and sends it on every
retry. Calling twice with the same key has the effect of calling once and returns the same result.
All amounts are integer cents.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

GatewayStatus = Literal[
    "authorized",  # card hold placed (auth only), not captured yet
    "paid",  # PIX paid by the customer
    "pending",  # waiting for the customer (PIX) or for the gateway to finish processing
    "captured",  # card hold captured (fully or partly; the rest of the hold is released)
    "voided",  # uncaptured hold released (or unpaid PIX canceled)
    "refunded",  # paid/captured money fully returned
    "partially_refunded",  # part of the paid/captured money returned
    "declined",  # the issuer or gateway refused the card
    "failed",  # the operation failed: invalid move, bad request, error, or unknown outcome
]

GATEWAY_STATUSES: frozenset[str] = frozenset(GatewayStatus.__args__)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Customer:
    """Who pays: name, e-mail and document (CPF, digits only)."""

    name: str
    email: str
    document: str


@dataclass(frozen=True)
class GatewayResult:
    """Outcome of one gateway call.

    `amount` is the amount this operation concerns (authorized, charged, captured, voided,
    refunded; for `fetch`, the charge amount). `captured_amount` / `refunded_amount` are the
    charge's running totals where the gateway reports them. `card_reference` is the gateway's
    saved-card id (only when save_card was requested), never card data; `card_last4` is the
    card's last four digits as the gateway reports them (for receipts); `card_fingerprint` the
    card's one-way token where the gateway gives one (terminal payments). `raw` is the gateway's
    response body (or the sandbox charge), kept for the ledger and for debugging.
    """

    success: bool
    status: GatewayStatus
    amount: int
    order_id: str | None = None
    charge_id: str | None = None
    transient: bool = False
    error: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    pix_qr_code: str | None = None
    pix_qr_code_url: str | None = None
    pix_expires_at: str | None = None
    captured_amount: int | None = None
    refunded_amount: int | None = None
    card_reference: str | None = None
    card_last4: str | None = None
    # A one-way token of the card that paid (CCV: "99" + 16 characters, the same value a CCV
    # terminal computes when the card is presented again): matches a card, never card data.
    card_fingerprint: str | None = None

    def __post_init__(self) -> None:
        if self.status not in GATEWAY_STATUSES:
            raise ValueError(f"unknown gateway status: {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable copy (for stores and ledgers)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GatewayResult:
        """Inverse of `to_dict`."""
        return cls(**data)


@runtime_checkable
class PaymentGateway(Protocol):
    """Authorize / PIX / capture / void / refund / fetch against one payment provider."""

    name: str

    async def open(self) -> None:
        """Acquire what the gateway needs (a connection pool, a local store)."""

    async def close(self) -> None:
        """Release it; the gateway is not used afterwards."""

    async def authorize(
        self,
        *,
        session_id: str,
        amount: int,
        customer: Customer,
        card_token: str | None = None,
        network_token: str | None = None,
        card_id: str | None = None,
        save_card: bool = False,
        description: str,
        idempotency_key: str,
    ) -> GatewayResult:
        """Place a hold of `amount` cents on a card (auth only, no capture).

        Exactly one of `card_token` (tokenized card), `network_token` (wallet / brand token) or
        `card_id` (card saved earlier) identifies the card. Approved: status "authorized".
        Declined: success=False, status "declined".
        """
        ...

    async def create_pix(
        self,
        *,
        session_id: str,
        amount: int,
        customer: Customer,
        expires_in: int,
        description: str,
        idempotency_key: str,
    ) -> GatewayResult:
        """Create a PIX charge of `amount` cents payable for `expires_in` seconds.

        Returns status "pending" with the QR code (copy-and-paste text), its image URL and
        expiry; the charge becomes "paid" when the customer pays (learned via webhook + fetch).
        """
        ...

    async def capture(self, *, charge_id: str, amount: int, idempotency_key: str) -> GatewayResult:
        """Capture `amount` (<= authorized) of an authorized hold; the rest is released."""
        ...

    async def void(
        self, *, charge_id: str, amount: int | None, idempotency_key: str
    ) -> GatewayResult:
        """Release an uncaptured hold (all of it when `amount` is None)."""
        ...

    async def refund(self, *, charge_id: str, amount: int, idempotency_key: str) -> GatewayResult:
        """Return `amount` of a paid/captured charge (never more than paid minus refunded)."""
        ...

    async def fetch(self, *, charge_id: str) -> GatewayResult:
        """Current state of a charge, for webhooks (which are hints) and reconciliation."""
        ...


@dataclass(frozen=True)
class Terminal:
    """A payment terminal in a station, as the gateway names it (CCV: terminalId and the
    managementSystemId it is registered under; empty: the gateway's configured default)."""

    terminal_id: str
    management_system_id: str = ""


@dataclass(frozen=True)
class CardTokenResult:
    """Outcome of reading a card's one-way token at a terminal.

    `status` "pending" (the terminal is waiting for the card; learn the end by webhook + fetch),
    "success" (`token` is set) or "failed" (no card, or the terminal or gateway refused).
    `reference` is the gateway's id of the token request; `transient` as in GatewayResult.
    """

    success: bool
    status: Literal["pending", "success", "failed"]
    reference: str | None = None
    token: str | None = None
    transient: bool = False
    error: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class TerminalGateway(Protocol):
    """What a gateway with unattended terminals adds to `PaymentGateway`.

    A terminal authorisation has no card token and no customer: the card is read by the
    terminal, so it gets its own call instead of stretching `authorize`. Capture, void,
    refund and fetch are the port's, on the returned `charge_id`. `webhook_url` is where the
    gateway posts its hints for this request (built by the caller from `server.public_url`).
    """

    async def authorize_terminal(
        self,
        *,
        session_id: str,
        amount: int,
        terminal: Terminal,
        webhook_url: str,
        description: str,
        idempotency_key: str,
    ) -> GatewayResult:
        """Ask the terminal for a card and hold `amount` cents on it: "pending" until the
        cardholder acts, then (by fetch) "authorized" with `card_fingerprint`, or "declined"."""
        ...

    async def request_card_token(
        self, *, session_id: str, terminal: Terminal, webhook_url: str, idempotency_key: str
    ) -> CardTokenResult:
        """Ask the terminal to read a card and compute its one-way token (usually "pending")."""
        ...

    async def fetch_card_token(self, *, reference: str) -> CardTokenResult:
        """The current state of a token request."""
        ...
