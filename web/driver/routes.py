"""Driver REST API: `POST /charge/start`, `POST /charge/stop`, `GET /charge/{sessionId}`."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from billing.gateways.wallets import WalletTokenError, parse_wallet_token
from billing.models import Method, Operation, Session, SessionStatus
from billing.money import PriceAmount
from billing.service import BillingError, BillingService, StartRequest
from csms.domain import isoformat
from web.apidoc import documented
from web.bodies import FieldError, parse_body
from web.charge_requests import billing_refusal, check_hold_amount
from web.credentials import same_secret
from web.errors import ApiError
from web.keys import BILLING, SETTINGS

routes = web.RouteTableDef()

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_TOKEN = 16384  # characters of a networkToken (wallet tokens are a few kB)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ChargerPrice(_Body):
    price: PriceAmount = Field(description="Price per kWh the app showed, currency units")
    fixed_connection_cost: PriceAmount = Field(description="Fixed fee the app showed")


class ChargeStartRequest(_Body):
    stationId: int | str | None = Field(None, description="The app's own station reference")
    chargePointId: str = Field(min_length=1, max_length=48)
    connectorId: StrictInt = Field(ge=1, le=2**31 - 1)
    method: Method
    amount: StrictInt = Field(0, ge=0, description="Pre-authorization in cents, at most "
                              "billing.max_hold (default 100000)")
    email: str | None = Field(None, max_length=254)
    cpf: str | None = Field(None, description="11 digits, punctuation allowed")
    name: str | None = Field(None, max_length=128)
    cardToken: str | None = Field(None, min_length=1, max_length=256)
    networkToken: str | dict[str, Any] | None = Field(
        None, description="The wallet's payment token as its SDK returns it (Google Pay: the "
        "tokenizationData.token JSON text; Apple Pay: the payment token object or its "
        "paymentData), as a JSON object or its text; or a sandbox test token")
    saveCard: bool = False
    idTag: str | None = Field(None, min_length=1, max_length=20,
                              description="The driver's RFID tag a saved card is bound to")
    charger: ChargerPrice

    @model_validator(mode="after")
    def _check_method(self) -> ChargeStartRequest:
        if self.email is not None and not EMAIL.match(self.email):
            raise FieldError("email", "not a valid e-mail address")
        if self.cpf is not None:
            digits = re.sub(r"[.\-\s]", "", self.cpf)
            if not re.fullmatch(r"\d{11}", digits):
                raise FieldError("cpf", "must have 11 digits")
            self.cpf = digits
        if self.method == Method.TERMINAL:
            raise FieldError("method", "TERMINAL sessions start at the station's terminal "
                             "(POST /terminal/start)")
        if self.method != Method.VIP and self.amount <= 0:
            raise FieldError("amount", "must be a positive number of cents")
        if self.method == Method.CREDIT_CARD and not self.cardToken:
            raise FieldError("cardToken", "required for CREDIT_CARD")
        if self.method.uses_network_token and not self.networkToken:
            raise FieldError("networkToken", f"required for {self.method.value}")
        if self.networkToken is not None:
            self.networkToken = _wallet_token(self.method, self.networkToken)
        if self.method == Method.PIX and not (self.email and self.cpf):
            raise FieldError("cpf" if self.email else "email", "required for PIX")
        return self


def _wallet_token(method: Method, token: str | dict[str, Any]) -> str:
    """The token as JSON text, refused when it is no wallet token or another wallet's."""
    text = json.dumps(token, separators=(",", ":")) if isinstance(token, dict) else token
    if not 0 < len(text) <= MAX_TOKEN:
        raise FieldError("networkToken", f"must have 1 to {MAX_TOKEN} characters")
    try:
        wallet = parse_wallet_token(text)
    except WalletTokenError as exc:
        raise FieldError("networkToken", str(exc)) from None
    expected = {Method.GOOGLE_PAY: "google_pay", Method.APPLE_PAY: "apple_pay"}.get(method)
    if wallet is not None and expected and wallet.kind != expected:
        raise FieldError("networkToken", f"a {wallet.kind} token, not {expected}")
    return text


class ChargeStopRequest(_Body):
    sessionId: str = Field(min_length=1, max_length=64)


class PaymentData(BaseModel):
    orderId: str | None
    chargeId: str | None
    status: str
    pixQrCode: str | None
    pixQrCodeUrl: str | None = None
    pixExpiresAt: str | None


class ChargeStartResponse(BaseModel):
    success: Literal[True]
    sessionId: str
    paymentData: PaymentData


class OperationView(BaseModel):
    type: str
    amount: int
    status: str
    at: str
    error: str | None = None


class PaymentView(BaseModel):
    status: str
    authorizedAmount: int
    capturedAmount: int
    refundedAmount: int
    operations: list[OperationView]


class StopRequestView(BaseModel):
    requestedBy: Literal["DRIVER", "OPERATOR", "BUDGET_GUARD"] | None = Field(
        description="Who asked; null for a stop asked before stop requests were recorded")
    requestedAt: str | None
    attempts: int = Field(description="RemoteStopTransaction requests sent so far")
    lastAttemptAt: str | None
    lastError: str | None = Field(
        description="Why the last attempt failed (offline, rejected, no answer); null when "
        "the station accepted it. The stop is sent again until the station stops")


class SessionView(BaseModel):
    sessionId: str
    status: str
    chargePointId: str
    connectorId: int
    transactionId: int | None
    method: str
    energyWh: int
    costCents: int
    payment: PaymentView
    receiptUrl: str | None
    stopRequest: StopRequestView | None = Field(
        None, description="The stop asked for this session, null while nobody asked")
    reason: str | None = Field(
        None, description="Why the session ended as it did, or waits in REVIEW (and how an "
        "expired review was settled)")
    reviewDueAt: str | None = Field(
        None, description="REVIEW: when the session is settled without an operator "
        "(billing.review_deadline_hours after it stopped)")


class ChargeStopResponse(BaseModel):
    success: Literal[True]
    session: SessionView


def session_view(session: Session, operations: list[Operation]) -> SessionView:
    return SessionView(
        sessionId=session.session_id, status=session.status.value,
        chargePointId=session.station_id, connectorId=session.connector_id,
        transactionId=session.transaction_id, method=session.method.value,
        energyWh=session.energy_wh, costCents=session.cost_cents,
        payment=PaymentView(
            status=session.payment_status.value, authorizedAmount=session.authorized_amount,
            capturedAmount=session.captured_amount, refundedAmount=session.refunded_amount,
            operations=[OperationView(type=op.type.value, amount=op.amount,
                                      status=op.status.value, at=isoformat(op.created_at) or "",
                                      error=op.error) for op in operations]),
        receiptUrl=session.receipt_url,
        stopRequest=stop_request_view(session),
        reason=session.failure_reason,
        reviewDueAt=isoformat(session.review_due_at)
        if session.status == SessionStatus.REVIEW else None,
    )


def stop_request_view(session: Session) -> StopRequestView | None:
    if session.stop_requested_at is None:
        return None
    by = session.stop_requested_by
    return StopRequestView(requestedBy=by.value if by else None,
                           requestedAt=isoformat(session.stop_requested_at),
                           attempts=session.stop_attempts,
                           lastAttemptAt=isoformat(session.stop_last_attempt_at),
                           lastError=session.stop_last_error)


def _check_driver_key(request: web.Request, *, or_terminal: bool = False) -> None:
    """One of `api.driver_keys` (or none configured); with `or_terminal`, one of
    `api.terminal_keys` also passes (a kiosk follows the terminal session it started)."""
    api = request.config_dict[SETTINGS].api
    keys = list(api.driver_keys)
    if not keys:
        return
    if or_terminal:
        keys += api.terminal_keys
    given = request.headers.get("X-Api-Key", "")
    if not any(same_secret(given, key) for key in keys):
        # No registered scheme fits an API-key header; RFC 9110 still wants a challenge.
        raise ApiError(401, "unauthorized", "a valid X-Api-Key is required",
                       headers={"WWW-Authenticate": 'ApiKey realm="driver", header="X-Api-Key"'})


@routes.post("/charge/start", name="charge_start")
@documented("Reserve the money and ask the station to start", body=ChargeStartRequest,
            response=ChargeStartResponse, errors=(402, 404, 409, 502, 504))
async def charge_start(request: web.Request) -> web.Response:
    _check_driver_key(request)
    body: ChargeStartRequest = await parse_body(request, ChargeStartRequest)
    check_hold_amount(request, body.amount)
    service: BillingService = request.config_dict[BILLING]
    try:
        session = await service.start(StartRequest(
            station_id=body.chargePointId, connector_id=body.connectorId, method=body.method,
            amount=body.amount, email=body.email, cpf=body.cpf, name=body.name,
            card_token=body.cardToken, network_token=body.networkToken,
            save_card=body.saveCard, shown_price=body.charger.price,
            shown_fixed_cost=body.charger.fixed_connection_cost, driver_id_tag=body.idTag))
    except BillingError as exc:
        raise billing_refusal(exc) from None
    response = ChargeStartResponse(success=True, sessionId=session.session_id, paymentData=
                                   PaymentData(orderId=session.order_id,
                                               chargeId=session.charge_id,
                                               status=session.payment_status.value.lower(),
                                               pixQrCode=session.pix_qr_code,
                                               pixQrCodeUrl=session.pix_qr_code_url,
                                               pixExpiresAt=session.pix_expires_at))
    return web.json_response(response.model_dump())


@routes.post("/charge/stop", name="charge_stop")
@documented("Stop a session: void at once before charging; while charging, record the stop and "
            "send RemoteStopTransaction (again on a STOPPING session) until the station stops",
            body=ChargeStopRequest,
            response=ChargeStopResponse, errors=(404, 409))
async def charge_stop(request: web.Request) -> web.Response:
    _check_driver_key(request)
    body: ChargeStopRequest = await parse_body(request, ChargeStopRequest)
    service: BillingService = request.config_dict[BILLING]
    try:
        session = await service.stop(body.sessionId)
    except BillingError as exc:
        raise billing_refusal(exc) from None
    operations = await service.operations(session.session_id)
    stopped = ChargeStopResponse(success=True, session=session_view(session, operations))
    return web.json_response(stopped.model_dump())


@routes.get("/charge/{session_id}", name="charge_session")
@documented("A session with its payment", response=SessionView, errors=(404,))
async def charge_session(request: web.Request) -> web.Response:
    _check_driver_key(request, or_terminal=True)
    service: BillingService = request.config_dict[BILLING]
    try:
        session = await service.get(request.match_info["session_id"])
    except BillingError as exc:
        raise billing_refusal(exc) from None
    operations = await service.operations(session.session_id)
    return web.json_response(session_view(session, operations).model_dump())


