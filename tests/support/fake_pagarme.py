"""A fake Pagar.me API V5 server (aiohttp) for tests, run on a real port by a fixture.

Follows Pagar.me's documentation (https://docs.pagar.me/reference): HTTP Basic auth with the
secret key as user; `POST /orders`, `POST /charges/{id}/capture`, `DELETE /charges/{id}`,
`GET /charges/{id}` under the `/core/v5` prefix; error bodies `{"message", "errors"}` with
401 / 404 / 412 / 422 (https://docs.pagar.me/reference/erros-1); `Idempotency-Key` replays
(same key on the same method and path returns the stored response with no second effect,
https://docs.pagar.me/docs/o-que-%C3%A9).

Request shapes are checked as the documentation describes them (required fields, types, enums,
no unknown fields in the wallet objects); a drift is a 422 naming the field:
- customers: `POST /customers` and `POST /customers/{id}/cards {"token"}`
  (Pagar.me's customer and card resources); an order names its customer either by the `customer`
  object or by `customer_id`, and a `card_id` must belong to that customer;
- credit_card: `operation_type` auth_and_capture | auth_only | pre_auth, `installments` >= 1,
  `statement_descriptor` up to 22 characters, exactly one source of card, card_id, card_token,
  network_token or payload (https://docs.pagar.me/reference/cart%C3%A3o-de-cr%C3%A9dito-1);
- Google Pay: `credit_card.payload` {type "google_pay", google_pay {version "EC_v2", data,
  intermediate_signing_key {signed_key, signatures[]}, signature, signed_message}}
  (https://docs.pagar.me/reference/google-paytm-api);
- Apple Pay: `credit_card.card.payload` {type "apple_pay", apple_pay {version "EC_v1",
  merchant_identifier, header {ephemeral_public_key, public_key_hash?, transaction_id?}, data,
  signature}} (https://docs.pagar.me/reference/apple-pay-2).

Card test values: a `card_token`, saved card's token, network token number or wallet
`signature` starting with "tok_decline" is refused (order and charge "failed", last_transaction
"not_authorized").

Test controls: `requests` (every request: method, path, headers, body), `counts` (effects per
kind: "orders", "capture", "cancel", "get"; plus "replays", "unauthorized", "injected"),
`fail_next(n, status=500, after_processing=False)`, `delay` (seconds before answering),
`on_received(request)` / `on_processed(request)` hooks (before / after it is carried out),
`mark_pix_paid(charge_id)` and `webhook_body(type, charge_id)`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import secrets
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import BasicAuth, web

PREFIX = "/core/v5"
JSON_BODY = web.RequestKey("json_body", dict)


def _id(prefix: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "_" + "".join(secrets.choice(alphabet) for _ in range(16))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _invalid(errors: dict[str, list[str]]) -> web.Response:
    return web.json_response({"message": "The request is invalid.", "errors": errors}, status=422)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


# A field spec: (required, check) where check is a type, a tuple of allowed values, or a nested
# spec (an object whose unknown fields are refused).
Spec = dict[str, tuple[bool, Any]]

GOOGLE_PAY: Spec = {
    "version": (True, ("EC_v2",)),
    "data": (True, str),
    "intermediate_signing_key": (True, {"signed_key": (True, str), "signatures": (True, list)}),
    "signature": (True, str),
    "signed_message": (True, str),
    "merchant_identifier": (False, str),
}
APPLE_PAY: Spec = {
    "version": (True, ("EC_v1",)),
    "merchant_identifier": (True, str),
    "header": (True, {"ephemeral_public_key": (True, str), "public_key_hash": (False, str),
                      "transaction_id": (False, str)}),
    "data": (True, str),
    "signature": (True, str),
}
CUSTOMER: Spec = {
    "name": (True, str),
    "email": (True, str),
    "document": (True, str),
    "type": (True, ("individual", "company")),
    "document_type": (True, ("CPF", "CNPJ", "PASSPORT")),
    "code": (False, str),
}


def check(value: Any, spec: Spec, path: str, errors: dict[str, list[str]]) -> None:
    """Check `value` against `spec`, adding one message per bad field under its path."""
    if not isinstance(value, dict):
        errors[path] = ["Must be an object."]
        return
    for name in value.keys() - spec.keys():
        errors[f"{path}.{name}"] = ["Unknown field."]
    for name, (required, rule) in spec.items():
        where = f"{path}.{name}"
        if value.get(name) in (None, ""):
            if required:
                errors[where] = [f"The {name} field is required."]
            continue
        field = value[name]
        if isinstance(rule, dict):
            check(field, rule, where, errors)
        elif isinstance(rule, tuple):
            if field not in rule:
                errors[where] = [f"Must be one of {', '.join(rule)}."]
        elif rule is list:
            if not (isinstance(field, list) and field and all(isinstance(x, str) and x
                                                              for x in field)):
                errors[where] = ["Must be a non-empty list of strings."]
        elif not (isinstance(field, rule) and field):
            errors[where] = [f"Must be a non-empty {rule.__name__}."]


def _wallet_payload(card: dict[str, Any], errors: dict[str, list[str]]) -> str | None:
    """Validate a wallet payload where the docs put it; return its signature."""
    path = "order.payments[0].credit_card"
    google, apple = card.get("payload"), (card.get("card") or {}).get("payload")
    if google is not None:
        if not isinstance(google, dict) or google.get("type") != "google_pay":
            errors[f"{path}.payload.type"] = ["Must be google_pay (Apple Pay goes in card)."]
            return None
        check({k: v for k, v in google.items() if k != "type"},
              {"google_pay": (True, GOOGLE_PAY)}, f"{path}.payload", errors)
        return str((google.get("google_pay") or {}).get("signature", ""))
    if not isinstance(apple, dict) or apple.get("type") != "apple_pay":
        errors[f"{path}.card.payload.type"] = ["Must be apple_pay."]
        return None
    check(card["card"], {"payload": (True, {"type": (True, ("apple_pay",)),
                                            "apple_pay": (True, APPLE_PAY)})},
          f"{path}.card", errors)
    return str((apple.get("apple_pay") or {}).get("signature", ""))


class FakePagarme:
    """In-memory Pagar.me V5. `app` is the aiohttp application to serve."""

    def __init__(self, secret_key: str = "sk_test_fake") -> None:
        self.secret_key = secret_key
        self.base_url = ""  # set by the fixture once the server listens: http://host:port/core/v5
        self.orders: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self.cards: dict[str, dict[str, Any]] = {}  # card id -> card (with its customer_id)
        self.requests: list[dict[str, Any]] = []
        self.counts: Counter[str] = Counter()
        self.delay: float = 0.0
        # Seconds to hold a response after the request was carried out (a slow network on
        # the way back: the client may die before it learns the outcome).
        self.response_delay: float = 0.0
        self.on_processed: Any = None  # optional callback(request) once a request is handled
        self.on_received: Any = None  # optional callback(request) before it is handled
        self._idempotent: dict[tuple[str, str, str], tuple[int, dict[str, Any]]] = {}
        self._failures: list[tuple[int, bool]] = []
        self.app = web.Application(middlewares=[self._middleware])
        self.app.add_routes(
            [
                web.post(f"{PREFIX}/orders", self._create_order),
                web.post(f"{PREFIX}/customers", self._create_customer),
                web.post(f"{PREFIX}/customers/{{customer_id}}/cards", self._create_card),
                web.post(f"{PREFIX}/charges/{{charge_id}}/capture", self._capture),
                web.delete(f"{PREFIX}/charges/{{charge_id}}", self._cancel),
                web.get(f"{PREFIX}/charges/{{charge_id}}", self._get_charge),
            ]
        )

    # -- controls --------------------------------------------------------------------------

    def fail_next(self, n: int, status: int = 500, *, after_processing: bool = False) -> None:
        """Answer the next `n` requests with `status`. With `after_processing`, the request
        is carried out first and only its response is replaced (a lost response)."""
        self._failures.extend([(status, after_processing)] * n)

    def mark_pix_paid(self, charge_id: str) -> dict[str, Any]:
        """Simulate the customer paying a pending PIX charge."""
        charge = self.charges[charge_id]
        assert charge["payment_method"] == "pix" and charge["status"] == "pending", charge
        charge.update(
            status="paid", paid_amount=charge["amount"], paid_at=_now(), updated_at=_now()
        )
        charge["last_transaction"].update(status="paid", updated_at=_now())
        self._sync_order(charge)
        return self._charge_view(charge)

    def webhook_body(self, event_type: str, charge_id: str) -> dict[str, Any]:
        """A Pagar.me webhook payload (e.g. "charge.paid") for the charge's current state."""
        return {
            "id": _id("hook"),
            "account": {"id": "acc_fake", "name": "Fake account"},
            "type": event_type,
            "created_at": _now(),
            "data": self._charge_view(self.charges[charge_id]),
        }

    def mutating_requests(self) -> list[dict[str, Any]]:
        """Recorded POST and DELETE requests."""
        return [r for r in self.requests if r["method"] in ("POST", "DELETE")]

    # -- middleware: record, auth, injected failures, idempotency, delay -------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "headers": dict(request.headers),
                "body": body,
            }
        )
        if self.on_received is not None:
            self.on_received(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if not self._authorized(request.headers.get("Authorization", "")):
            self.counts["unauthorized"] += 1
            return web.json_response(
                {"message": "Authorization has been denied for this request."}, status=401
            )
        failure = self._failures.pop(0) if self._failures else None
        if failure and not failure[1]:
            self.counts["injected"] += 1
            return web.json_response(
                {"message": "An internal error has occurred."}, status=failure[0]
            )
        if raw and body is None:
            return web.json_response({"message": "The request body is not valid JSON."}, status=400)
        request[JSON_BODY] = body or {}

        key = request.headers.get("Idempotency-Key")
        slot = (request.method, request.path, key) if key else None
        if slot and slot in self._idempotent:
            self.counts["replays"] += 1
            status, payload = self._idempotent[slot]
            response = web.json_response(copy.deepcopy(payload), status=status)
        else:
            response = await handler(request)
            if slot and request.method in ("POST", "DELETE"):
                assert isinstance(response, web.Response) and response.text is not None
                self._idempotent[slot] = (response.status, json.loads(response.text))
        if self.on_processed is not None:
            self.on_processed(request)
        if self.response_delay:
            await asyncio.sleep(self.response_delay)
        if failure:  # processed, but the client never sees the result
            self.counts["injected"] += 1
            return web.json_response(
                {"message": "An internal error has occurred."}, status=failure[0]
            )
        return response

    def _authorized(self, header: str) -> bool:
        try:
            given = BasicAuth.decode(header, encoding="utf-8")
        except ValueError:
            return False
        return given.login == self.secret_key and given.password == ""

    # -- routes ----------------------------------------------------------------------------

    async def _create_order(self, request: web.Request) -> web.Response:
        body: dict[str, Any] = request[JSON_BODY]
        errors: dict[str, list[str]] = {}
        customer: dict[str, Any] = body.get("customer") or {}
        if ("customer" in body) == ("customer_id" in body):
            errors["order.customer"] = ["Send either customer or customer_id."]
        elif "customer_id" in body:
            customer = self.customers.get(str(body["customer_id"])) or {}
            if not customer:
                errors["order.customer_id"] = ["Customer not found."]
        else:
            check(customer, CUSTOMER, "order.customer", errors)
        items = body.get("items") or []
        if not items:
            errors["order.items"] = ["The items field is required."]
        for i, item in enumerate(items):
            if not _positive_int(item.get("amount")):
                errors[f"order.items[{i}].amount"] = ["The amount must be a positive integer."]
            if not item.get("description"):
                errors[f"order.items[{i}].description"] = ["The description field is required."]
        payments = body.get("payments") or []
        if len(payments) != 1:
            errors["order.payments"] = ["Exactly one payment is supported by this fake."]
        if errors:
            return _invalid(errors)
        payment = payments[0]
        method = payment.get("payment_method")
        amount = sum(item["amount"] * int(item.get("quantity", 1)) for item in items)
        if method == "credit_card":
            charge, problem = self._card_charge(payment.get("credit_card") or {}, amount,
                                                customer.get("id"))
        elif method == "pix":
            charge, problem = self._pix_charge(payment.get("pix") or {}, amount)
        else:
            problem = {"order.payments[0].payment_method": ["Invalid payment method."]}
            charge = None
        if problem or charge is None:
            return _invalid(problem or {})

        self.counts["orders"] += 1
        order_id = _id("or")
        customer_view = customer if customer.get("id") else self._customer_view(customer)
        charge.update(
            id=_id("ch"),
            code=body.get("code"),
            gateway_id=str(secrets.randbelow(10**9)),
            currency="BRL",
            payment_method=method,
            customer=customer_view,
            order_id=order_id,
            created_at=_now(),
            updated_at=_now(),
        )
        self.charges[charge["id"]] = charge
        self.orders[order_id] = {
            "id": order_id,
            "code": body.get("code"),
            "amount": amount,
            "currency": "BRL",
            "closed": bool(body.get("closed", True)),
            "items": [
                {
                    **item,
                    "id": _id("oi"),
                    "type": "product",
                    "status": "active",
                    "created_at": _now(),
                }
                for item in items
            ],
            "customer": customer_view,
            "status": "pending",
            "created_at": _now(),
            "updated_at": _now(),
            "closed_at": _now(),
            "charges": [charge["id"]],
        }
        self._sync_order(charge)
        return web.json_response(self._order_view(order_id))

    @staticmethod
    def _customer_view(customer: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": _id("cus"),
            "name": customer["name"],
            "email": customer["email"],
            "document": customer["document"],
            "document_type": str(customer.get("document_type", "cpf")).lower(),
            "type": customer.get("type", "individual"),
            "delinquent": False,
            "created_at": _now(),
            "updated_at": _now(),
        }

    async def _create_customer(self, request: web.Request) -> web.Response:
        errors: dict[str, list[str]] = {}
        check(request[JSON_BODY], CUSTOMER, "customer", errors)
        if errors:
            return _invalid(errors)
        customer = self._customer_view(request[JSON_BODY])
        self.customers[customer["id"]] = customer
        self.counts["customers"] += 1
        return web.json_response(customer)

    async def _create_card(self, request: web.Request) -> web.Response:
        customer_id = request.match_info["customer_id"]
        if customer_id not in self.customers:
            return web.json_response({"message": "Customer not found."}, status=404)
        body: dict[str, Any] = request[JSON_BODY]
        errors: dict[str, list[str]] = {}
        check(body, {"token": (True, str)}, "card", errors)
        if errors:
            return _invalid(errors)
        card = {"id": _id("card"), "customer_id": customer_id, "token": body["token"],
                "first_six_digits": "400000", "last_four_digits": "0010", "brand": "Visa",
                "status": "active", "type": "credit", "created_at": _now()}
        self.cards[card["id"]] = card
        self.counts["cards"] += 1
        return web.json_response({k: v for k, v in card.items() if k != "token"})

    def _card_charge(
        self, card: dict[str, Any], amount: int, customer_id: str | None
    ) -> tuple[dict[str, Any] | None, dict[str, list[str]] | None]:
        path = "order.payments[0].credit_card"
        errors: dict[str, list[str]] = {}
        sources = [k for k in ("card", "card_id", "card_token", "network_token", "payload")
                   if card.get(k)]
        if len(sources) != 1:
            return None, {path: ["Exactly one of card, card_id, card_token, network_token or "
                                 "payload is required."]}
        operation = card.get("operation_type", "auth_and_capture")
        if operation not in ("auth_and_capture", "auth_only", "pre_auth"):
            errors[f"{path}.operation_type"] = ["Must be auth_and_capture, auth_only or pre_auth."]
        if not _positive_int(card.get("installments", 1)):
            errors[f"{path}.installments"] = ["Must be a positive integer."]
        descriptor = card.get("statement_descriptor", "")
        if not isinstance(descriptor, str) or len(descriptor) > 22:
            errors[f"{path}.statement_descriptor"] = ["At most 22 characters."]
        saved = self.cards.get(str(card.get("card_id")))
        if sources == ["card_id"] and saved and saved["customer_id"] != customer_id:
            errors[f"{path}.card_id"] = ["The card does not belong to the order's customer."]
        token: Any = ""
        if sources[0] in ("payload", "card"):
            token = _wallet_payload(card, errors)
        elif sources == ["network_token"]:
            if not isinstance(card["network_token"], dict):
                errors[f"{path}.network_token"] = ["Must be an object."]
            else:
                token = card["network_token"].get("number")
        else:
            token = card.get("card_token") or (saved or {}).get("token") or card.get("card_id")
        if errors:
            return None, errors
        declined = str(token).startswith("tok_decline")
        card_view = {
            "id": card.get("card_id") or _id("card"),
            "first_six_digits": "400000",
            "last_four_digits": "0010",
            "brand": "Visa",
            "holder_name": "FAKE HOLDER",
            "exp_month": 12,
            "exp_year": 2030,
            "status": "active",
            "type": "credit",
        }
        if declined:
            charge_status, tx_status, paid = "failed", "not_authorized", 0
        elif operation == "auth_only":
            charge_status, tx_status, paid = "pending", "authorized_pending_capture", 0
        else:
            charge_status, tx_status, paid = "paid", "captured", amount
        transaction = {
            "id": _id("tran"),
            "transaction_type": "credit_card",
            "gateway_id": str(secrets.randbelow(10**9)),
            "amount": amount,
            "status": tx_status,
            "success": not declined,
            "installments": int(card.get("installments", 1)),
            "statement_descriptor": card.get("statement_descriptor"),
            "operation_type": operation,
            "acquirer_name": "simulator",
            "acquirer_message": "Transação recusada" if declined else "Transação aprovada",
            "acquirer_return_code": "05" if declined else "00",
            "card": card_view,
            "gateway_response": {"code": "200", "errors": []},
            "created_at": _now(),
            "updated_at": _now(),
        }
        charge = {
            "amount": amount,
            "status": charge_status,
            "paid_amount": paid,
            "canceled_amount": 0,
            "last_transaction": transaction,
        }
        return charge, None

    def _pix_charge(
        self, pix: dict[str, Any], amount: int
    ) -> tuple[dict[str, Any] | None, dict[str, list[str]] | None]:
        try:
            expires_in = int(pix.get("expires_in"))  # the docs' example sends a string
        except (TypeError, ValueError):
            return None, {"order.payments[0].pix.expires_in": ["The expires_in field is required."]}
        if expires_in <= 0:
            return None, {"order.payments[0].pix.expires_in": ["expires_in must be positive."]}
        tx_id = _id("tran")
        value = f"{amount // 100}.{amount % 100:02d}"
        expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
        transaction = {
            "id": tx_id,
            "transaction_type": "pix",
            "gateway_id": str(secrets.randbelow(10**9)),
            "amount": amount,
            "status": "waiting_payment",
            "success": True,
            "qr_code": (
                "00020101021226820014br.gov.bcb.pix2560pix.stone.com.br/pix/v2/"
                f"{tx_id}5204000053039865{len(value):02d}{value}"
                "5802BR6304ABCD"
            ),
            "qr_code_url": f"https://api.pagar.me/core/v5/transactions/{tx_id}/qrcode?payment_method=pix",
            "expires_at": expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "created_at": _now(),
            "updated_at": _now(),
        }
        charge = {
            "amount": amount,
            "status": "pending",
            "paid_amount": 0,
            "canceled_amount": 0,
            "last_transaction": transaction,
        }
        return charge, None

    async def _capture(self, request: web.Request) -> web.Response:
        charge = self.charges.get(request.match_info["charge_id"])
        if charge is None:
            return web.json_response({"message": "Charge not found."}, status=404)
        amount = request[JSON_BODY].get("amount", charge["amount"])
        if not _positive_int(amount):
            return _invalid({"amount": ["The amount must be a positive integer."]})
        if charge["last_transaction"]["status"] != "authorized_pending_capture":
            return web.json_response(
                {"message": f"This charge can not be captured. Charge status: {charge['status']}."},
                status=412,
            )
        if amount > charge["amount"]:
            authorized = charge["amount"]
            message = f"The capture amount {amount} is greater than the authorized {authorized}."
            return _invalid({"amount": [message]})
        self.counts["capture"] += 1
        charge.update(status="paid", paid_amount=amount, paid_at=_now(), updated_at=_now())
        charge["last_transaction"] = {
            **charge["last_transaction"],
            "id": _id("tran"),
            "amount": amount,
            "status": "captured" if amount == charge["amount"] else "partial_capture",
            "updated_at": _now(),
        }
        self._sync_order(charge)
        return web.json_response(self._charge_view(charge))

    async def _cancel(self, request: web.Request) -> web.Response:
        charge = self.charges.get(request.match_info["charge_id"])
        if charge is None:
            return web.json_response({"message": "Charge not found."}, status=404)
        amount = request[JSON_BODY].get("amount")
        if amount is not None and not _positive_int(amount):
            return _invalid({"amount": ["The amount must be a positive integer."]})
        tx = charge["last_transaction"]
        if charge["status"] == "pending" and tx["status"] in (
            "authorized_pending_capture",
            "waiting_payment",
        ):
            remaining = charge["amount"] - charge["canceled_amount"]
            amount = remaining if amount is None else amount
            if amount > remaining:
                message = f"The amount {amount} is greater than the charge amount {remaining}."
                return _invalid({"amount": [message]})
            canceled = charge["canceled_amount"] + amount
            full = canceled == charge["amount"]
            charge.update(canceled_amount=canceled, updated_at=_now())
            if full:
                charge.update(status="canceled", canceled_at=_now())
            tx_status = "voided" if tx["transaction_type"] == "credit_card" else "canceled"
            if not full:
                tx_status = "partial_void"
        elif charge["status"] == "paid":
            refundable = charge["paid_amount"] - charge["canceled_amount"]
            amount = refundable if amount is None else amount
            if amount > refundable:
                message = f"The refund amount {amount} is greater than the refundable {refundable}."
                return _invalid({"amount": [message]})
            canceled = charge["canceled_amount"] + amount
            full = canceled == charge["paid_amount"]
            charge.update(canceled_amount=canceled, updated_at=_now())
            if full:
                charge.update(status="canceled", canceled_at=_now())
            tx_status = "refunded" if full else "partial_refunded"
        else:
            return web.json_response(
                {"message": f"This charge can not be canceled. Charge status: {charge['status']}."},
                status=412,
            )
        self.counts["cancel"] += 1
        charge["last_transaction"] = {
            **tx,
            "id": _id("tran"),
            "amount": amount,
            "status": tx_status,
            "updated_at": _now(),
        }
        self._sync_order(charge)
        return web.json_response(self._charge_view(charge))

    async def _get_charge(self, request: web.Request) -> web.Response:
        charge = self.charges.get(request.match_info["charge_id"])
        if charge is None:
            return web.json_response({"message": "Charge not found."}, status=404)
        self.counts["get"] += 1
        return web.json_response(self._charge_view(charge))

    # -- views -----------------------------------------------------------------------------

    def _sync_order(self, charge: dict[str, Any]) -> None:
        order = self.orders[charge["order_id"]]
        order["status"] = {"paid": "paid", "failed": "failed", "canceled": "canceled"}.get(
            charge["status"], "pending"
        )
        order["updated_at"] = _now()

    def _charge_view(self, charge: dict[str, Any]) -> dict[str, Any]:
        view = {k: v for k, v in charge.items() if k != "order_id"}
        order = self.orders[charge["order_id"]]
        view["order"] = {
            k: order[k] for k in ("id", "code", "amount", "currency", "closed", "status")
        }
        return copy.deepcopy(view)

    def _order_view(self, order_id: str) -> dict[str, Any]:
        order = copy.deepcopy(self.orders[order_id])
        charges = []
        for charge_id in order["charges"]:
            view = {k: v for k, v in self.charges[charge_id].items() if k != "order_id"}
            charges.append(copy.deepcopy(view))
        order["charges"] = charges
        return order
