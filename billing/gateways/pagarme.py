"""Pagar.me API V5 adapter (https://docs.pagar.me/reference) over httpx.

Requests, as documented by Pagar.me:

- authorize: `POST /orders` with `code` = session id, the customer (`customer` {name, email, type
  "individual", document, document_type "CPF"}, or `customer_id` for a saved card), one item
  {amount, description, quantity 1, code}, `closed: true`, and `payments[0]` = {payment_method
  "credit_card", credit_card {operation_type "auth_only", installments 1, statement_descriptor,
  <source>}}. `operation_type` "auth_only" is the documented pre-authorization (the credit card
  page: auth_and_capture | auth_only | pre_auth,
  https://docs.pagar.me/reference/cart%C3%A3o-de-cr%C3%A9dito-1). The source is one of:
  - a card: `card_token`;
  - a saved card: `card_id`, with the owner's `customer_id` on the order;
  - Google Pay: `payload` {type "google_pay", google_pay {version "EC_v2", data (the
    `encryptedMessage` inside Google's `signedMessage`), intermediate_signing_key {signed_key,
    signatures}, signature, signed_message}}, filled from the token as Google returns it
    (https://docs.pagar.me/reference/google-paytm-api);
  - Apple Pay: `card` {payload {type "apple_pay", apple_pay {version "EC_v1",
    merchant_identifier, header {transaction_id, ephemeral_public_key, public_key_hash}, data,
    signature}}}, filled from the token's `paymentData` plus
    `billing.pagarme.apple_pay_merchant_identifier` (https://docs.pagar.me/reference/apple-pay-2).
  `WALLET` (the generic method) is not a third payload: Pagar.me documents two wallets, so the
  token's own shape (`billing.gateways.wallets`) picks google_pay or apple_pay, for WALLET,
  GOOGLE_PAY and APPLE_PAY alike. A network token that is no wallet token (an opaque string) is
  refused: the credit card page lists `network_token` only as an object of brand token data
  (pass-through tokenization), which a wallet app does not have.
- saving a card (`save_card` with a `card_token`): `POST /customers` (the driver), then
  `POST /customers/{customer_id}/cards {"token"}` (the customer's cards resource; a card token is
  single use, so the card is created from it once), then the order charges that card by
  `card_id`. The reference returned (and stored by billing) is `"{customer_id}/{card_id}"`, the
  card's resource path: charging it later needs both. A reference without "/" (saved before this
  adapter created customers) is sent as `card_id` with the `customer` object. A wallet token is a
  one-time device token: it is never saved.
- create_pix: `POST /orders` with `payments[0]` = {payment_method "pix", pix {expires_in}};
  `qr_code`, `qr_code_url` and `expires_at` are read from `charges[0].last_transaction`
  (https://docs.pagar.me/reference/pix-2).
- capture: `POST /charges/{id}/capture {"amount"}` (partial capture allowed).
- void and refund: `DELETE /charges/{id} {"amount"}` (cancel before capture = release the hold;
  after payment = refund, partial when amount < paid). Pagar.me names both "cancelar cobrança".
  Wallet charges are credit card charges: captured and voided the same way.
- fetch: `GET /charges/{id}`.

Where the documentation is silent or ambiguous (read with the pages above):
- Google Pay puts `payload` directly in `credit_card`; the Apple Pay page's example nests it in
  `credit_card.card`. Each wallet follows its own page.
- The Google Pay page's field table was only partly readable; the google_pay fields and the
  "EC_v2"-only version are those of Pagar.me's own generated SDK models (pagarme-python-sdk,
  doc/models/create-google-pay-request.md). Its `merchant_identifier` (optional in the Node SDK,
  absent in the Python one) is not sent.
- The Apple Pay page distinguishes Gateway and PSP contracts; this adapter sends the Gateway
  shape (the PSP part was not readable). Google Pay is documented for Gateway accounts only.
- The card-creation body field is `token` in Pagar.me's SDK model (CreateCardRequest); the
  reference pages for customers/cards were not found in the corpus.
- Whether an order may charge a `card_id` without its owner's `customer_id` is not stated; this
  adapter always sends the owner.

Every POST and DELETE carries an `Idempotency-Key` header
(https://docs.pagar.me/docs/o-que-%C3%A9): Pagar.me stores the key with the outcome for 24 hours
and answers a repeated request with the first result. The customer and card created for a saved
card use the operation's key plus ":customer" / ":card", so a retry creates neither twice.

Errors (https://docs.pagar.me/reference/erros-1): 4xx bodies are `{"message", "errors": {field:
[...]}}`; 400/401/403/404/412/422 are final; 408/429/5xx, timeouts and network errors are
transient (retry with the same idempotency key). An order whose card was refused comes back 200
with charge status "failed" and last_transaction status "not_authorized": success=False,
status "declined".
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from billing.gateways.base import Customer, GatewayResult, GatewayStatus
from billing.gateways.wallets import WalletTokenError, parse_wallet_token
from billing.settings import PagarmeSettings

TRANSIENT_HTTP_STATUSES = frozenset({408, 425, 429})

# last_transaction.status values that decide the outcome on their own.
_TRANSACTION_STATUS: dict[str, GatewayStatus] = {
    "not_authorized": "declined",
    "authorized_pending_capture": "authorized",
    "waiting_capture": "authorized",
    "captured": "captured",
    "partial_capture": "captured",
    "voided": "voided",
    "partial_void": "voided",
    "refunded": "refunded",
    "partial_refunded": "partially_refunded",
    "with_error": "failed",
    "error_on_voiding": "failed",
    "error_on_refunding": "failed",
}


def map_charge_status(charge: dict[str, Any]) -> GatewayStatus:
    """Map a Pagar.me charge (status, payment_method, last_transaction.status, paid_amount,
    canceled_amount) onto the port's statuses.

    Charge statuses: pending, processing, paid, overpaid, underpaid, canceled, failed,
    chargedback (treated as "refunded": the money went back to the customer).
    """
    charge_status = str(charge.get("status") or "")
    transaction = charge.get("last_transaction") or {}
    transaction_status = str(transaction.get("status") or "")
    is_card = charge.get("payment_method") == "credit_card"
    paid = int(charge.get("paid_amount") or 0)
    canceled = int(charge.get("canceled_amount") or 0)

    if transaction_status == "not_authorized":
        return "declined"
    if charge_status == "failed":
        return "declined" if is_card and transaction_status != "with_error" else "failed"
    if charge_status == "chargedback":
        return "refunded"
    if charge_status == "canceled":
        return "refunded" if paid > 0 else "voided"
    if charge_status in ("paid", "overpaid", "underpaid"):
        if canceled > 0:
            return "refunded" if canceled >= paid else "partially_refunded"
        return "captured" if is_card else "paid"
    if transaction_status in _TRANSACTION_STATUS:
        return _TRANSACTION_STATUS[transaction_status]
    return "pending"


def _error_text(status_code: int, body: dict[str, Any]) -> str:
    """Pagar.me's `message` plus its per-field `errors`, in one line."""
    message = str(body.get("message") or f"HTTP {status_code}")
    errors = body.get("errors")
    details: list[str] = []
    if isinstance(errors, dict):
        for name, problems in errors.items():
            items = problems if isinstance(problems, list) else [problems]
            details.append(f"{name}: {'; '.join(str(p) for p in items)}")
    elif isinstance(errors, list):
        details.extend(str(e) for e in errors)
    text = f"{message} ({' | '.join(details)})" if details else message
    return f"HTTP {status_code}: {text}"


class PagarmeGateway:
    """The payment gateway port over Pagar.me API V5.

    `client` is an optional shared httpx.AsyncClient (connection pool); base URL, Basic auth
    (secret key as user, empty password) and timeout always come from `settings`. Without one,
    the gateway creates its own client; close it with `aclose()`.
    """

    name = "pagarme"

    def __init__(self, settings: PagarmeSettings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self._base_url = settings.base_url.rstrip("/")
        self._auth = httpx.BasicAuth(settings.secret_key, "")
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=settings.timeout)

    async def open(self) -> None:
        """Nothing to do: the httpx client opens its connections on first use."""

    async def close(self) -> None:
        """Close the httpx client if this gateway created it."""
        if self._owns_client:
            await self._client.aclose()

    aclose = close

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
        """Create an order with one auth-only credit card payment (card, saved card or wallet)."""
        sources = [s for s in (card_token, network_token, card_id) if s]
        if len(sources) != 1:
            return _refused(amount, "exactly one of card_token, network_token or card_id is "
                                    "required")
        credit_card: dict[str, Any] = {
            "operation_type": "auth_only",
            "installments": 1,
            "statement_descriptor": self.settings.statement_descriptor,
        }
        customer_id: str | None = None
        if network_token:
            source = self._wallet_source(network_token)
            if isinstance(source, str):
                return _refused(amount, source)
            credit_card.update(source)
        elif card_id:
            customer_id, _, card = card_id.rpartition("/")
            credit_card["card_id"] = card
        elif save_card:
            saved = await self._save_card(customer, card_token or "", idempotency_key)
            if isinstance(saved, GatewayResult):
                return _replace(saved, amount=amount)
            customer_id, credit_card["card_id"] = saved
        else:
            credit_card["card_token"] = card_token
        payment = {"payment_method": "credit_card", "credit_card": credit_card}
        body = self._order_body(session_id, amount, customer, description, payment,
                                customer_id=customer_id or None)
        result = await self._create_order(body, amount, idempotency_key)
        if save_card and card_token and customer_id and result.success:
            return _replace(result, card_reference=f"{customer_id}/{credit_card['card_id']}")
        return result

    def _wallet_source(self, network_token: str) -> dict[str, Any] | str:
        """The credit_card fields for a wallet token, or why it cannot be sent."""
        try:
            wallet = parse_wallet_token(network_token)
        except WalletTokenError as exc:
            return f"network_token is not a wallet payment token: {exc}"
        if wallet is None:
            return ("network_token is not a Google Pay or Apple Pay payment token (Pagar.me "
                    "takes wallet tokens as documented payloads)")
        if wallet.kind == "google_pay":
            return {"payload": google_pay_payload(wallet.token)}
        merchant = self.settings.apple_pay_merchant_identifier
        if not merchant:
            return "Apple Pay needs billing.pagarme.apple_pay_merchant_identifier"
        return {"card": {"payload": apple_pay_payload(wallet.token, merchant)}}

    async def _save_card(
        self, customer: Customer, card_token: str, key: str
    ) -> tuple[str, str] | GatewayResult:
        """Create the driver as a customer and the card in their cards: (customer id, card id)."""
        created = await self._post_resource("/customers", _customer_body(customer),
                                            f"{key}:customer")
        if isinstance(created, GatewayResult):
            return created
        card = await self._post_resource(f"/customers/{created}/cards", {"token": card_token},
                                         f"{key}:card")
        if isinstance(card, GatewayResult):
            return card
        return created, card

    async def _post_resource(
        self, path: str, body: dict[str, Any], key: str
    ) -> str | GatewayResult:
        """POST a resource and return its `id`, or the failure."""
        response = await self._request("POST", path, body, key)
        if isinstance(response, GatewayResult):
            return response
        status_code, created = response
        if status_code >= 400:
            return self._http_failure(status_code, created, 0)
        if not created.get("id"):
            return _refused(0, f"Pagar.me returned no id for POST {path}", created)
        return str(created["id"])

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
        """Create an order with one PIX payment; the QR code comes in last_transaction."""
        payment = {"payment_method": "pix", "pix": {"expires_in": expires_in}}
        body = self._order_body(session_id, amount, customer, description, payment)
        return await self._create_order(body, amount, idempotency_key)

    async def capture(self, *, charge_id: str, amount: int, idempotency_key: str) -> GatewayResult:
        """`POST /charges/{id}/capture {"amount"}`."""
        return await self._charge_call(
            "POST", f"/charges/{charge_id}/capture", {"amount": amount}, amount, idempotency_key
        )

    async def void(
        self, *, charge_id: str, amount: int | None, idempotency_key: str
    ) -> GatewayResult:
        """`DELETE /charges/{id}` on an uncaptured charge (whole charge when amount is None)."""
        body = {} if amount is None else {"amount": amount}
        return await self._charge_call(
            "DELETE", f"/charges/{charge_id}", body, amount, idempotency_key
        )

    async def refund(self, *, charge_id: str, amount: int, idempotency_key: str) -> GatewayResult:
        """`DELETE /charges/{id} {"amount"}` on a paid charge."""
        return await self._charge_call(
            "DELETE", f"/charges/{charge_id}", {"amount": amount}, amount, idempotency_key
        )

    async def fetch(self, *, charge_id: str) -> GatewayResult:
        """`GET /charges/{id}`."""
        return await self._charge_call("GET", f"/charges/{charge_id}", None, None, None)

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _order_body(
        session_id: str,
        amount: int,
        customer: Customer,
        description: str,
        payment: dict[str, Any],
        *,
        customer_id: str | None = None,
    ) -> dict[str, Any]:
        """An order: the customer object, or `customer_id` when the customer exists already."""
        who: dict[str, Any] = (
            {"customer_id": customer_id} if customer_id else {"customer": _customer_body(customer)}
        )
        return {
            "code": session_id,
            **who,
            "items": [
                {"amount": amount, "description": description, "quantity": 1, "code": session_id}
            ],
            "payments": [payment],
            "closed": True,
        }

    async def _create_order(self, body: dict[str, Any], amount: int, key: str) -> GatewayResult:
        response = await self._request("POST", "/orders", body, key)
        if isinstance(response, GatewayResult):
            return _replace(response, amount=amount)
        status_code, order = response
        if status_code >= 400:
            return self._http_failure(status_code, order, amount)
        charges = order.get("charges") or []
        if not charges:
            return _refused(amount, "Pagar.me returned an order without charges", order,
                            order_id=order.get("id"))
        return self._from_charge(charges[0], amount, raw=order, order_id=order.get("id"))

    async def _charge_call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        amount: int | None,
        key: str | None,
    ) -> GatewayResult:
        response = await self._request(method, path, body, key)
        if isinstance(response, GatewayResult):
            return _replace(response, amount=amount or 0)
        status_code, charge = response
        if status_code >= 400:
            return self._http_failure(status_code, charge, amount or 0)
        operation_amount = amount if amount is not None else int(charge.get("amount") or 0)
        order = charge.get("order") or {}
        return self._from_charge(charge, operation_amount, raw=charge, order_id=order.get("id"))

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None, key: str | None
    ) -> tuple[int, dict[str, Any]] | GatewayResult:
        """Send one request. Returns (status, JSON body) or a transient GatewayResult for
        network errors, timeouts and non-JSON 5xx."""
        headers = {"Accept": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        try:
            response = await self._client.request(
                method,
                self._base_url + path,
                json=body,
                headers=headers,
                auth=self._auth,
                timeout=self.settings.timeout,
            )
        except httpx.TimeoutException as exc:
            return _transient(f"timeout talking to Pagar.me: {exc!r}")
        except httpx.TransportError as exc:
            return _transient(f"network error talking to Pagar.me: {exc!r}")
        try:
            payload = response.json()
        except ValueError:
            payload = {"text": response.text}
        if not isinstance(payload, dict):
            payload = {"body": payload}
        return response.status_code, payload

    @staticmethod
    def _http_failure(status_code: int, body: dict[str, Any], amount: int) -> GatewayResult:
        transient = status_code >= 500 or status_code in TRANSIENT_HTTP_STATUSES
        return GatewayResult(
            success=False,
            status="failed",
            amount=amount,
            transient=transient,
            error=_error_text(status_code, body),
            raw=body,
        )

    @staticmethod
    def _from_charge(
        charge: dict[str, Any], amount: int, *, raw: dict[str, Any], order_id: str | None
    ) -> GatewayResult:
        status = map_charge_status(charge)
        transaction = charge.get("last_transaction") or {}
        error = None
        if status in ("declined", "failed"):
            gateway_response = transaction.get("gateway_response") or {}
            error = (
                transaction.get("acquirer_message")
                or _gateway_errors(gateway_response)
                or f"charge {charge.get('status')}, transaction {transaction.get('status')}"
            )
        paid = charge.get("paid_amount")
        canceled = charge.get("canceled_amount")
        is_card = charge.get("payment_method") == "credit_card"
        return GatewayResult(
            success=status not in ("declined", "failed"),
            status=status,
            amount=amount,
            order_id=order_id,
            charge_id=charge.get("id"),
            error=error,
            raw=raw,
            pix_qr_code=transaction.get("qr_code"),
            pix_qr_code_url=transaction.get("qr_code_url"),
            pix_expires_at=transaction.get("expires_at"),
            captured_amount=int(paid) if is_card and paid is not None else None,
            refunded_amount=int(canceled) if paid and canceled is not None else None,
            card_last4=(transaction.get("card") or {}).get("last_four_digits") if is_card
            else None,
        )


def _gateway_errors(gateway_response: dict[str, Any]) -> str | None:
    errors = gateway_response.get("errors") or []
    messages = [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors]
    return "; ".join(messages) or None


def _customer_body(customer: Customer) -> dict[str, Any]:
    """A Pagar.me customer (an individual with a CPF)."""
    return {
        "name": customer.name,
        "email": customer.email,
        "type": "individual",
        "document": customer.document,
        "document_type": "CPF",
    }


def google_pay_payload(token: dict[str, Any]) -> dict[str, Any]:
    """Pagar.me's `credit_card.payload` for a Google Pay token (ECv2) as Google returns it."""
    key = token["intermediateSigningKey"]
    return {
        "type": "google_pay",
        "google_pay": {
            "version": "EC_v2",
            "data": json.loads(token["signedMessage"])["encryptedMessage"],
            "intermediate_signing_key": {
                "signed_key": key["signedKey"],
                "signatures": list(key["signatures"]),
            },
            "signature": token["signature"],
            "signed_message": token["signedMessage"],
        },
    }


def apple_pay_payload(payment_data: dict[str, Any], merchant_identifier: str) -> dict[str, Any]:
    """Pagar.me's `credit_card.card.payload` for an Apple Pay token's `paymentData`."""
    header = payment_data["header"]
    return {
        "type": "apple_pay",
        "apple_pay": {
            "version": payment_data["version"],
            "merchant_identifier": merchant_identifier,
            "header": {
                "transaction_id": header["transactionId"],
                "ephemeral_public_key": header["ephemeralPublicKey"],
                "public_key_hash": header["publicKeyHash"],
            },
            "data": payment_data["data"],
            "signature": payment_data["signature"],
        },
    }


def _refused(
    amount: int, error: str, raw: dict[str, Any] | None = None, *, order_id: str | None = None
) -> GatewayResult:
    """A final failure decided here (bad input or an unusable answer)."""
    return GatewayResult(success=False, status="failed", amount=amount, order_id=order_id,
                         error=error, raw=raw or {})


def _transient(error: str) -> GatewayResult:
    return GatewayResult(success=False, status="failed", amount=0, transient=True, error=error)


def _replace(result: GatewayResult, **changes: Any) -> GatewayResult:
    return GatewayResult.from_dict({**result.to_dict(), **changes})
