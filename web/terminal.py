"""The unattended terminal API, called by the station's kiosk software or the terminal
integration: `POST /terminal/start`, `POST /terminal/stop`, `GET /terminal/requests/{id}`.

Who may call it: a client holding one of `api.terminal_keys`, sent in `X-Api-Key` (a key per
site or integration, revocable on its own; the driver apps' keys do not open it). An empty list
leaves it open: development only (production mode refuses it while CCV is configured).
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from billing.models import TerminalRequest
from billing.service import BillingError, BillingService
from csms.domain import isoformat
from web.apidoc import documented
from web.bodies import parse_body
from web.charge_requests import billing_refusal, check_hold_amount
from web.credentials import same_secret
from web.errors import ApiError
from web.keys import BILLING, SETTINGS

routes = web.RouteTableDef()


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TerminalStartRequest(_Body):
    chargePointId: str = Field(min_length=1, max_length=48)
    connectorId: StrictInt = Field(ge=1, le=2**31 - 1)
    amount: StrictInt = Field(ge=1, description="Cents to hold on the card, at most "
                              "billing.max_hold (default 100000)")


class TerminalStopRequest(_Body):
    chargePointId: str = Field(min_length=1, max_length=48)
    connectorId: StrictInt = Field(ge=1, le=2**31 - 1)


class TerminalStarted(BaseModel):
    success: Literal[True]
    sessionId: str = Field(description="Follow it at GET /charge/{sessionId} (method TERMINAL)")


class TerminalStopAccepted(BaseModel):
    success: Literal[True]
    requestId: str = Field(description="Follow it at GET /terminal/requests/{requestId}")


class TerminalRequestView(BaseModel):
    requestId: str
    status: Literal["PENDING", "STOPPED", "TOKEN_MISMATCH", "FAILED"]
    chargePointId: str
    connectorId: int
    createdAt: str
    updatedAt: str
    error: str | None

    @classmethod
    def of(cls, request: TerminalRequest) -> TerminalRequestView:
        return cls(requestId=request.request_id, status=request.status.value,
                   chargePointId=request.station_id, connectorId=request.connector_id,
                   createdAt=isoformat(request.created_at) or "",
                   updatedAt=isoformat(request.updated_at) or "", error=request.error)


def terminal_key_ok(request: web.Request) -> bool:
    """The request carries one of `api.terminal_keys` (or none are configured)."""
    keys = request.config_dict[SETTINGS].api.terminal_keys
    given = request.headers.get("X-Api-Key", "")
    return not keys or any(same_secret(given, key) for key in keys)


def _check_terminal_key(request: web.Request) -> None:
    if not terminal_key_ok(request):
        raise ApiError(401, "unauthorized", "a valid terminal X-Api-Key is required",
                       headers={"WWW-Authenticate":
                                'ApiKey realm="terminal", header="X-Api-Key"'})


@routes.post("/terminal/start", name="terminal_start")
@documented("Hold `amount` on the card the station's terminal reads; the connector is started "
            "once the card is approved (follow the session at GET /charge/{sessionId})",
            body=TerminalStartRequest, response=TerminalStarted, status=202,
            security="terminalKey", errors=(402, 404, 409, 502))
async def terminal_start(request: web.Request) -> web.Response:
    _check_terminal_key(request)
    body = await parse_body(request, TerminalStartRequest)
    check_hold_amount(request, body.amount)
    service: BillingService = request.config_dict[BILLING]
    try:
        session = await service.terminal.start(body.chargePointId, body.connectorId,
                                               body.amount)
    except BillingError as exc:
        raise billing_refusal(exc) from None
    return web.json_response(TerminalStarted(success=True, sessionId=session.session_id)
                             .model_dump(), status=202)


@routes.post("/terminal/stop", name="terminal_stop")
@documented("Ask the station's terminal for a card: the session charging on the connector "
            "stops only for the card that started it",
            body=TerminalStopRequest, response=TerminalStopAccepted, status=202,
            security="terminalKey", errors=(404, 409, 502))
async def terminal_stop(request: web.Request) -> web.Response:
    _check_terminal_key(request)
    body = await parse_body(request, TerminalStopRequest)
    service: BillingService = request.config_dict[BILLING]
    try:
        stop = await service.terminal.request_stop(body.chargePointId, body.connectorId)
    except BillingError as exc:
        raise billing_refusal(exc) from None
    return web.json_response(TerminalStopAccepted(success=True, requestId=stop.request_id)
                             .model_dump(), status=202)


@routes.get("/terminal/requests/{request_id}", name="terminal_request")
@documented("A stop asked at a terminal: PENDING (reading the card), STOPPED (the same card: "
            "the session is stopping), TOKEN_MISMATCH (another card: nothing stopped), FAILED",
            response=TerminalRequestView, security="terminalKey", errors=(404,))
async def terminal_request(request: web.Request) -> web.Response:
    _check_terminal_key(request)
    service: BillingService = request.config_dict[BILLING]
    try:
        stop = await service.terminal.get_request(request.match_info["request_id"])
    except BillingError as exc:
        raise billing_refusal(exc) from None
    return web.json_response(TerminalRequestView.of(stop).model_dump())
