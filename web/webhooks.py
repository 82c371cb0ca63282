"""`POST /webhooks/{gateway}`: authenticated, deduplicated hints; the charge is fetched again.

Sandbox: `{"type": "charge.paid", "data": {"id": "<chargeId>"}}` simulates the customer paying a
PIX charge. Pagar.me: HTTP Basic with `billing.pagarme.webhook_user/_password`, body
`{"id": "hook_...", "type": "charge.paid", "data": {"id": "ch_..."}}`. CCV: `{"id": reference}`
posted to the webhookUrl we gave with the request, which carries `billing.ccv.webhook_secret`
as `?key=` (CCV's hints carry no credentials; its docs suggest data in a per-request URL) and
our own id of the request (`&session=` or `&request=`), so a hint that overtakes our request's
answer is matched (it waits up to `billing.ccv.hint_wait` for it, else 503).
"""

from __future__ import annotations

import hashlib
from typing import TypeVar

from aiohttp import BasicAuth, web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from billing.gateways.sandbox import SandboxGateway
from billing.service import BillingError
from web.apidoc import Param, documented
from web.bodies import parse_body
from web.credentials import same_secret
from web.errors import ApiError
from web.keys import BILLING, BILLING_STORE, GATEWAY, SETTINGS

routes = web.RouteTableDef()
E = TypeVar("E", bound=BaseModel)
ID_PATTERN = r"^[A-Za-z0-9_-]+$"  # our session and terminal request ids (token_urlsafe)


class WebhookCharge(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(min_length=1)


class WebhookEvent(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = Field(None, min_length=1, max_length=128,
                           description="Event id; deliveries are deduplicated by it")
    type: str = Field(max_length=64)
    data: WebhookCharge


class SandboxCharge(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=64)


class SandboxEvent(BaseModel):
    """The sandbox's own events: exactly this shape, nothing more is stored."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, min_length=1, max_length=64,
                           description="Event id; deliveries are deduplicated by it")
    type: str = Field(pattern=r"^[a-z_]{1,32}\.[a-z_]{1,32}$", examples=["charge.paid"])
    data: SandboxCharge


class CcvHint(BaseModel):
    """CCV's webhook body: only the transaction's reference (general/webhooks)."""

    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")


SANDBOX_MAX_BODY = 4096  # bytes: the sandbox's events are a few dozen
PAGARME_MAX_BODY = 256 * 1024  # Pagar.me sends the whole charge, a few kB


class WebhookAck(BaseModel):
    success: bool
    duplicate: bool = False
    sessionId: str | None = None


async def _event(request: web.Request, model: type[E], max_bytes: int) -> tuple[E, str]:
    """The event, validated and within `max_bytes`, and its id (or the body's hash)."""
    event = await parse_body(request, model, max_bytes=max_bytes)
    body = await request.read()
    event_id = event.id or "sha256:" + hashlib.sha256(body).hexdigest()
    return event, event_id


async def _handle(request: web.Request, gateway: str, event: WebhookEvent | SandboxEvent,
                  event_id: str) -> web.Response:
    store = request.config_dict[BILLING_STORE]
    if not await store.record_webhook(gateway, event_id, event.model_dump()):
        return web.json_response(WebhookAck(success=True, duplicate=True).model_dump())
    try:
        session = await request.config_dict[BILLING].charge_changed(event.data.id)
    except BillingError as exc:
        await store.forget_webhook(gateway, event_id)  # let the redelivery be handled
        raise ApiError(exc.status, exc.code, exc.message) from None
    return web.json_response(WebhookAck(
        success=True, sessionId=session.session_id if session else None).model_dump())


@routes.post("/webhooks/sandbox", name="webhook_sandbox")
@documented("Sandbox gateway events (charge.paid pays a PIX charge)", body=SandboxEvent,
            response=WebhookAck, errors=(404, 409, 413, 503))
async def sandbox_webhook(request: web.Request) -> web.Response:
    gateway = request.config_dict[GATEWAY]
    if not isinstance(gateway, SandboxGateway):
        raise ApiError(404, "not_found", "the sandbox gateway is not enabled")
    event, event_id = await _event(request, SandboxEvent, SANDBOX_MAX_BODY)
    if (await gateway.fetch(charge_id=event.data.id)).charge_id is None:
        raise ApiError(404, "not_found", "the sandbox has no such charge")
    if event.type == "charge.paid":
        await gateway.mark_pix_paid(event.data.id)  # the sandbox's stand-in for a payer
    return await _handle(request, "sandbox", event, event_id)


def _basic_ok(request: web.Request, user: str, password: str) -> bool:
    try:
        given = BasicAuth.decode(request.headers.get("Authorization", ""), encoding="utf-8")
    except ValueError:  # missing, not Basic, not base64 or not UTF-8
        return False
    # Both compared, always: the time taken does not tell which one was wrong.
    return same_secret(f"{given.login}:{given.password}", f"{user}:{password}")


@routes.post("/webhooks/pagarme", name="webhook_pagarme")
@documented("Pagar.me webhook: a hint, the charge is fetched again", body=WebhookEvent,
            response=WebhookAck, security="gatewayBasic", errors=(401, 409, 413, 503))
async def pagarme_webhook(request: web.Request) -> web.Response:
    settings = request.config_dict[SETTINGS].billing.pagarme
    if not settings.webhook_user or not _basic_ok(request, settings.webhook_user,
                                                  settings.webhook_password):
        raise ApiError(401, "unauthorized", "webhook credentials required",
                       headers={"WWW-Authenticate": 'Basic realm="webhooks", charset="UTF-8"'})
    event, event_id = await _event(request, WebhookEvent, PAGARME_MAX_BODY)
    return await _handle(request, "pagarme", event, event_id)




CCV_MAX_BODY = 4096  # `{"id": reference}`


class CcvHintIds(BaseModel):
    """Our own id of the request a hint is about, carried by its per-request webhookUrl:
    `session` (an authorisation) or `request` (a card read). Neither: an older URL, matched
    by CCV's reference alone."""

    model_config = ConfigDict(extra="ignore")
    session: str | None = Field(None, min_length=1, max_length=64, pattern=ID_PATTERN)
    request: str | None = Field(None, min_length=1, max_length=64, pattern=ID_PATTERN)


def _ccv_ids(request: web.Request) -> CcvHintIds:
    try:
        return CcvHintIds.model_validate({k: request.query.get(k)
                                          for k in ("session", "request") if k in request.query})
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0])
        raise ApiError(422, "invalid_request", f"{field}: not an id of ours",
                       field=field) from None


@routes.post("/webhooks/ccv", name="webhook_ccv")
@documented("CCV webhook: a hint naming a terminal authorisation or card read, fetched again "
            "before anything changes; a hint about a final outcome is handled once",
            body=CcvHint, response=WebhookAck, security="ccvWebhookKey",
            errors=(404, 409, 413, 503),
            query=(Param("session", "our session id: the hint is about its authorisation"),
                   Param("request", "our terminal request id: the hint is about its card "
                                    "read")))
async def ccv_webhook(request: web.Request) -> web.Response:
    secret = request.config_dict[SETTINGS].billing.ccv.webhook_secret
    if not secret or not same_secret(request.query.get("key", ""), secret):
        raise ApiError(401, "unauthorized", "the webhook URL's key is required",
                       headers={"WWW-Authenticate": 'ApiKey realm="webhooks", query="key"'})
    ours = _ccv_ids(request)
    hint = await parse_body(request, CcvHint, max_bytes=CCV_MAX_BODY)
    store = request.config_dict[BILLING_STORE]
    if not await store.record_webhook("ccv", hint.id, hint.model_dump()):
        return web.json_response(WebhookAck(success=True, duplicate=True).model_dump())
    try:
        final = await request.config_dict[BILLING].terminal.hint(
            hint.id, session_id=ours.session, request_id=ours.request)
    except BillingError as exc:
        await store.forget_webhook("ccv", hint.id)  # a redelivery is handled
        raise ApiError(exc.status, exc.code, exc.message) from None
    except BaseException:
        await store.forget_webhook("ccv", hint.id)
        raise
    if not final:  # still pending: the next hint about it must be read again
        await store.forget_webhook("ccv", hint.id)
    return web.json_response(WebhookAck(success=True).model_dump())
