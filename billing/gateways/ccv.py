"""CCV Payment API adapter (unattended terminals, e.g. the IM30) over httpx.

Documentation read (developer.myccv.eu/documentation/payment_api/...):
[auth] general/authentication, [idem] general/idempotency, [hooks] general/webhooks,
[ac] online_payments/basic_operations/authorise_capture, [status] .../payment_status,
[capture] api_reference/capture, [reversal] api_reference/reversal, [refund] api_reference/refund,
[payment] api_reference/payment, [token] api_reference/token,
[terminal] online_payments/payment_methods/terminal, [owt] .../payment_features/one_way_tokens.

Requests (every one with HTTP Basic: the API key as user, empty password [auth]):

- authorize_terminal: `POST /api/v1/payment` {transactionType "authorise", amount, currency,
  method "terminal", webhookUrl, merchantOrderReference = session id, description, details
  {terminalId, managementSystemId, accessProtocol "OPI_NL", operatingEnvironment "UNATTENDED"}}
  [ac][terminal]; the answer is "pending" with CCV's `reference` (our charge_id).
- fetch: `GET /api/v1/transaction?reference=` [status]; statuses pending | success | failed |
  manualintervention.
- capture: `POST /api/v1/capture {reference, amount}` [capture] (amount <= authorised).
- void: `POST /api/v1/reversal {reference}` [reversal]: releases the whole authorisation.
- refund: `POST /api/v1/refund {reference, amount}` [refund].
- request_card_token: `POST /api/v1/token` {method "terminal", merchantOrderReference,
  webhookUrl, details (as above)}; fetch_card_token: `GET /api/v1/token?reference=` [token][owt].

Every POST carries `Idempotency-Reference` [idem]: CCV allows at most 50 characters and
recommends a UUID, so the ledger's key (e.g. "<session id>:capture", possibly longer) is sent as
uuid5(namespace, key): the same key always gives the same reference.

Amounts: integer cents <-> CCV decimals through billing.money, exactly: 1999 -> "19.99". An
amount CCV returns that is not a whole number of cents is refused (status "failed").

Outcomes: HTTP 408/425/429/5xx, timeouts and network errors are transient (retry with the same
key); other 4xx are final failures of a POST. A fetch (GET) answered with any HTTP error read
nothing, so its outcome is unknown (transient): a terminal authorisation is never taken as
failed, while the card may be held, because CCV's lookup refused us (401 after a key rotation,
404 before the reference is visible); the sweep reads it again.
CCV status -> port status, by transaction type:
authorise: pending -> pending, success -> authorized, failed -> declined; capture (and sale):
success -> captured; reversal: success -> voided; refund: success -> refunded; any pending ->
pending; failed -> failed; manualintervention -> failed (final: CCV asks for its helpdesk
[status], an operator must look), except for an authorise, where it stays pending: the card may
be held, so the sweep keeps reading it until CCV ends it success (then used or reversed) or
failed.

Silent or ambiguous in the pages read, and chosen here:
- `amount` is sent as a decimal string ("19.99"), exact by construction; the examples show a
  JSON number (9.99) [ac]. Amounts in answers are read as either.
- `currency` is sent lower-case, as in every example [ac][terminal].
- `operatingEnvironment` "UNATTENDED": the terminal page's example says "ATTENDED" and its
  details table was not readable; an IM30 in a charger is unattended. No returnUrl (no browser).
- The payment's `token` field ("if a token was requested" [payment]) is read as the card's
  one-way token when present; how to request it on a terminal payment is not shown, so the
  terminal flow can also read it with the token resource.
- The token resource's request fields and path were not fully readable [token]: this adapter
  assumes `POST /api/v1/token` with the terminal `details`, answered "pending" with a
  `reference`, and `GET /api/v1/token?reference=` giving `token`. Idempotency is documented for
  payment, capture, refund and reversal only [idem]; the header is sent on token too.
- Refunds post to `/api/v1/refund {reference, amount}` [refund][idem] and name the CAPTURE's
  reference: CCV refunds a sale or a capture, not an authorise (online_payments/
  basic_operations/refund). So `capture` answers with the capture's own reference as its
  charge_id (the ledger keeps it on the CAPTURE operation), and billing refunds that.
- The reversal takes no amount [reversal]: `void` releases all of the hold whatever `amount`.
- A refund's result is "refunded" even when partial: CCV answers per refund transaction,
  without the payment's running totals.
- Whether a fetch of a captured authorisation still says "success" is not stated; captures,
  reversals and refunds are separate transactions with their own references [capture].
- The error body was not readable; `failureCode` / `message` / `description` are shown when
  present. The same Idempotency-Reference with different fields is treated as a final error.
- Webhooks carry only `{"id": reference}` and are unauthenticated [hooks]: the caller must
  treat them as hints and fetch; that is the flow's job, not this adapter's.

How the rest of the CSMS uses it (billing/terminal.py, billing/ledger.py, web/webhooks.py), and
what was chosen where the pages are silent:
- Built in billing/parts.py whenever `billing.ccv.api_key` is set, beside the app gateway:
  TERMINAL sessions use it for every call, app sessions keep `billing.gateway`.
- webhookUrl = `server.public_url` + `/webhooks/ccv?key=<billing.ccv.webhook_secret>` plus our
  own id of the request (`&session=<session id>` or `&request=<terminal request id>`): CCV
  allows extra data in a per-request URL [hooks]; a hint without the key is refused (401), and
  one that overtakes CCV's answer to our request is matched by our id (billing/terminal.py).
  [hooks] documents no retry of a hint (only that a 2xx is expected): none is relied on.
  Every hint is followed by a fetch; a hint whose fetch shows a final outcome is remembered
  (a repeat is answered `duplicate` without a fetch); a still-pending one is not, so the next
  hint about it is read. Hints that never come: the reconciliation sweep fetches pending
  terminal authorisations and card reads.
- The approved authorisation's `token` is the card's one-way token; a stop at the terminal
  compares it (constant time) with the token of a fresh card read. An authorisation approved
  without a token can never be stopped at the terminal (TOKEN_MISMATCH): the station's RFID,
  the operator or the budget guard still stop it.
- A capture of less than the authorisation releases the rest at CCV (one capture per
  authorisation, as the capture page shows); no reversal follows a partial capture.
- A card read's Idempotency-Reference derives from "<session>:CARD:<request id>": one read
  per stop request, a repeat of the same request is the same read.
- A terminal authorisation whose cardholder never comes (or that CCV never ends) holds its
  session PENDING_PAYMENT for at most `billing.ccv.card_timeout` (default 300 s): then the
  sweep ends the session FAILED so the connector takes the next driver. The AUTHORIZE stays
  PENDING and is still read by the sweep; an approval read after that is reversed at once.
  (No documented way to cancel a pending terminal payment at CCV was found.)
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from billing.gateways.base import (
    CardTokenResult,
    Customer,
    GatewayResult,
    GatewayStatus,
    Terminal,
)
from billing.money import from_cents, to_decimal
from billing.settings import CcvSettings

TRANSIENT_HTTP_STATUSES = frozenset({408, 425, 429})
IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1d3c1e-8a53-4c55-9a0e-3c2b1f7d2a90")
ACCESS_PROTOCOL = "OPI_NL"
OPERATING_ENVIRONMENT = "UNATTENDED"

_SUCCESS_STATUS: dict[str, GatewayStatus] = {
    "authorise": "authorized",
    "capture": "captured",
    "sale": "captured",
    "reversal": "voided",
    "refund": "refunded",
}


def idempotency_reference(key: str) -> str:
    """CCV's Idempotency-Reference (a UUID, 36 characters) for the ledger's idempotency key."""
    if not key:
        raise ValueError("an idempotency key is required")
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, key))


def ccv_amount(cents: int) -> str:
    """Integer cents -> CCV's decimal amount, exactly: 1 -> "0.01", 100000 -> "1000.00"."""
    return str(from_cents(cents))


def cents_from_ccv(value: Any) -> int:
    """CCV's decimal amount (number or string) -> integer cents; refuses fractions of a cent."""
    amount = to_decimal(value)
    cents = amount.scaleb(2)
    if cents != cents.to_integral_value():
        raise ValueError(f"not a whole number of cents: {value!r}")
    return int(cents)


def map_status(transaction: dict[str, Any]) -> GatewayStatus:
    """CCV transaction (type, status) -> the port's status."""
    status = str(transaction.get("status") or "")
    kind = str(transaction.get("type") or "")
    if status == "pending":
        return "pending"
    if status == "manualintervention" and kind == "authorise":
        # unknown (CCV's helpdesk decides): the card may be held, so never read as declined;
        # the sweep reads it again until CCV ends it (billing.ccv.card_timeout frees the
        # connector meanwhile, and an approval read after that is reversed)
        return "pending"
    if status == "success":
        return _SUCCESS_STATUS.get(kind, "failed")
    if status == "failed" and kind == "authorise":
        return "declined"
    return "failed"


def _error_text(status_code: int, body: dict[str, Any]) -> str:
    parts = [str(body[k]) for k in ("failureCode", "message", "description", "text") if body.get(k)]
    return f"HTTP {status_code}: {' - '.join(parts) or 'CCV refused the request'}"


class CcvGateway:
    """The payment gateway port (plus `TerminalGateway`) over CCV's Payment API.

    `client` is an optional shared httpx.AsyncClient; base URL, auth and timeout come from
    `settings`. `currency` is billing's ISO 4217 code.
    """

    name = "ccv"

    def __init__(
        self, settings: CcvSettings, currency: str, client: httpx.AsyncClient | None = None
    ) -> None:
        self.settings = settings
        self.currency = currency.lower()
        self._base_url = settings.base_url.rstrip("/")
        self._auth = httpx.BasicAuth(settings.api_key, "")
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=settings.timeout)

    async def open(self) -> None:
        """Nothing to do: httpx opens connections on first use."""

    async def close(self) -> None:
        """Close the httpx client if this gateway created it."""
        if self._owns_client:
            await self._client.aclose()

    # -- terminal --------------------------------------------------------------------------

    def _details(self, terminal: Terminal) -> dict[str, Any]:
        return {
            "terminalId": terminal.terminal_id,
            "managementSystemId": terminal.management_system_id
            or self.settings.management_system_id,
            "accessProtocol": ACCESS_PROTOCOL,
            "operatingEnvironment": OPERATING_ENVIRONMENT,
        }

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
        """`POST /api/v1/payment` authorise on the terminal; "pending" until the card is read."""
        body = {
            "transactionType": "authorise",
            "amount": ccv_amount(amount),
            "currency": self.currency,
            "method": "terminal",
            "webhookUrl": webhook_url,
            "merchantOrderReference": session_id,
            "description": description,
            "details": self._details(terminal),
        }
        return await self._transaction("POST", "/api/v1/payment", body, amount, idempotency_key)

    async def request_card_token(
        self, *, session_id: str, terminal: Terminal, webhook_url: str, idempotency_key: str
    ) -> CardTokenResult:
        """`POST /api/v1/token` for the card presented at the terminal."""
        body = {
            "method": "terminal",
            "merchantOrderReference": session_id,
            "webhookUrl": webhook_url,
            "details": self._details(terminal),
        }
        return await self._token_call("POST", "/api/v1/token", body, idempotency_key)

    async def fetch_card_token(self, *, reference: str) -> CardTokenResult:
        """`GET /api/v1/token?reference=`."""
        return await self._token_call("GET", "/api/v1/token", {"reference": reference}, None)

    # -- port ------------------------------------------------------------------------------

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
        """Refused: CCV cards are read by a terminal (`authorize_terminal`)."""
        return _refused(amount, "the CCV gateway authorises on a terminal only")

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
        """Refused: CCV has no PIX."""
        return _refused(amount, "the CCV gateway has no PIX")

    async def capture(self, *, charge_id: str, amount: int, idempotency_key: str) -> GatewayResult:
        """`POST /api/v1/capture {reference, amount}`."""
        body = {"reference": charge_id, "amount": ccv_amount(amount)}
        return await self._transaction("POST", "/api/v1/capture", body, amount, idempotency_key,
                                       charge_id=charge_id)

    async def void(
        self, *, charge_id: str, amount: int | None, idempotency_key: str
    ) -> GatewayResult:
        """`POST /api/v1/reversal {reference}`: the whole hold is released."""
        return await self._transaction("POST", "/api/v1/reversal", {"reference": charge_id},
                                       amount, idempotency_key, charge_id=charge_id)

    async def refund(self, *, charge_id: str, amount: int, idempotency_key: str) -> GatewayResult:
        """`POST /api/v1/refund {reference, amount}`."""
        body = {"reference": charge_id, "amount": ccv_amount(amount)}
        return await self._transaction("POST", "/api/v1/refund", body, amount, idempotency_key,
                                       charge_id=charge_id)

    async def fetch(self, *, charge_id: str) -> GatewayResult:
        """`GET /api/v1/transaction?reference=`."""
        return await self._transaction("GET", "/api/v1/transaction", {"reference": charge_id},
                                       None, None, charge_id=charge_id)

    # -- helpers ---------------------------------------------------------------------------

    async def _transaction(
        self,
        method: str,
        path: str,
        body: dict[str, Any],
        amount: int | None,
        key: str | None,
        *,
        charge_id: str | None = None,
    ) -> GatewayResult:
        response = await self._request(method, path, body, key)
        if isinstance(response, str):
            return GatewayResult(success=False, status="failed", amount=amount or 0,
                                 charge_id=charge_id, transient=True, error=response)
        status_code, payload = response
        if status_code >= 400:
            # A read (GET) refused by HTTP read nothing: the transaction may well be approved
            # and held, so its outcome stays unknown (transient) rather than "failed".
            return GatewayResult(
                success=False, status="failed", amount=amount or 0, charge_id=charge_id,
                transient=status_code >= 500 or status_code in TRANSIENT_HTTP_STATUSES
                or method == "GET",
                error=_error_text(status_code, payload), raw=payload,
            )
        status = map_status(payload)
        try:
            answered = cents_from_ccv(payload["amount"]) if "amount" in payload else None
            authorised = (payload.get("details") or {}).get("authorisedAmount")
            authorised_cents = cents_from_ccv(authorised) if authorised is not None else None
        except ValueError as exc:
            return _refused(amount or 0, f"CCV answered an unusable amount: {exc}", payload)
        operation_amount = amount if amount is not None else answered or 0
        if status == "authorized" and authorised_cents is not None:
            operation_amount = authorised_cents  # a partial approval holds less
        error = None
        if status in ("declined", "failed"):
            error = f"CCV {payload.get('type')} {payload.get('status')}: " + str(
                payload.get("failureCode") or "no failureCode")
        # The authorisation's reference stays the charge id of an authorisation, a reversal, a
        # refund and a fetch; a capture's charge id is the capture's own reference, since a
        # refund must name the capture (refunds are for a sale or a capture, never an
        # authorise [refund]). CCV's reference of a new transaction is also in raw.
        reference = charge_id or payload.get("originalReference") or payload.get("reference")
        if path == "/api/v1/capture" and status == "captured" and payload.get("reference"):
            reference = str(payload["reference"])
        token = payload.get("token")
        return GatewayResult(
            success=status not in ("declined", "failed"),
            status=status,
            amount=operation_amount,
            charge_id=reference,
            error=error,
            raw=payload,
            captured_amount=answered if status == "captured" and method == "GET" else None,
            card_fingerprint=str(token) if token else None,
            card_last4=_last4((payload.get("details") or {}).get("maskedPan")),
        )

    async def _token_call(
        self, method: str, path: str, body: dict[str, Any], key: str | None
    ) -> CardTokenResult:
        response = await self._request(method, path, body, key)
        if isinstance(response, str):
            return CardTokenResult(success=False, status="failed", transient=True, error=response)
        status_code, payload = response
        if status_code >= 400:
            return CardTokenResult(
                success=False, status="failed",
                transient=status_code >= 500 or status_code in TRANSIENT_HTTP_STATUSES,
                error=_error_text(status_code, payload), raw=payload,
            )
        status = str(payload.get("status") or "")
        token = payload.get("token") or None
        if status == "success" and token:
            return CardTokenResult(success=True, status="success", reference=payload.get(
                "reference"), token=str(token), raw=payload)
        if status == "pending":
            return CardTokenResult(success=True, status="pending",
                                   reference=payload.get("reference"), raw=payload)
        return CardTokenResult(
            success=False, status="failed", reference=payload.get("reference"), raw=payload,
            error=f"CCV token {status or 'without status'}: "
            + str(payload.get("failureCode") or "no token"),
        )

    async def _request(
        self, method: str, path: str, body: dict[str, Any], key: str | None
    ) -> tuple[int, dict[str, Any]] | str:
        """One request: (HTTP status, JSON body), or why the outcome is unknown (transient)."""
        headers = {"Accept": "application/json"}
        if key is not None:
            headers["Idempotency-Reference"] = idempotency_reference(key)
        try:
            response = await self._client.request(
                method,
                self._base_url + path,
                json=body if method == "POST" else None,
                params=body if method == "GET" else None,
                headers=headers,
                auth=self._auth,
                timeout=self.settings.timeout,
            )
        except httpx.TimeoutException as exc:
            return f"timeout talking to CCV: {exc!r}"
        except httpx.TransportError as exc:
            return f"network error talking to CCV: {exc!r}"
        try:
            payload = response.json()
        except ValueError:
            payload = {"text": response.text}
        if not isinstance(payload, dict):
            payload = {"body": payload}
        return response.status_code, payload


def _last4(masked_pan: Any) -> str | None:
    text = str(masked_pan or "")
    return text[-4:] if len(text) >= 4 and text[-4:].isdigit() else None


def _refused(amount: int, error: str, raw: dict[str, Any] | None = None) -> GatewayResult:
    return GatewayResult(success=False, status="failed", amount=amount, error=error,
                         raw=raw or {})

