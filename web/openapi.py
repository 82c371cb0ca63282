"""`GET /api/openapi.json`: the driver API and webhooks, generated from the pydantic models."""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from web.driver.routes import (
    ChargeStartRequest,
    ChargeStartResponse,
    ChargeStopRequest,
    ChargeStopResponse,
    ErrorResponse,
    SessionView,
)
from web.webhooks import WebhookAck, WebhookEvent

REF = "#/components/schemas/{model}"
MODELS: list[type[BaseModel]] = [ChargeStartRequest, ChargeStartResponse, ChargeStopRequest,
                                 ChargeStopResponse, SessionView, ErrorResponse, WebhookEvent,
                                 WebhookAck]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": _ref(model)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"description": "error", **_json(ErrorResponse)} for s in statuses}


@functools.cache
def build_openapi() -> dict[str, Any]:
    _, schema = models_json_schema([(m, "validation") for m in MODELS], ref_template=REF)
    security = [{"apiKey": []}]
    return {
        "openapi": "3.1.0",
        "info": {"title": "CSMS driver API", "version": "1.0.0",
                 "description": "Start, follow and stop paid charging sessions. Amounts are "
                                "integer minor units (cents)."},
        "components": {
            "schemas": schema.get("$defs", {}),
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "gatewayBasic": {"type": "http", "scheme": "basic"},
            },
        },
        "paths": {
            "/charge/start": {"post": {
                "operationId": "startCharge", "security": security,
                "summary": "Reserve the money and ask the station to start",
                "requestBody": {"required": True, **_json(ChargeStartRequest)},
                "responses": {"200": {"description": "session created",
                                      **_json(ChargeStartResponse)},
                              **_errors(400, 401, 402, 404, 409, 422, 502, 504)}}},
            "/charge/stop": {"post": {
                "operationId": "stopCharge", "security": security,
                "summary": "Stop a session (void at once before charging)",
                "requestBody": {"required": True, **_json(ChargeStopRequest)},
                "responses": {"200": {"description": "stopping or ended",
                                      **_json(ChargeStopResponse)},
                              **_errors(400, 401, 404, 422)}}},
            "/charge/{sessionId}": {"get": {
                "operationId": "getCharge", "security": security,
                "parameters": [{"name": "sessionId", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the session", **_json(SessionView)},
                              **_errors(401, 404)}}},
            "/webhooks/sandbox": {"post": {
                "operationId": "sandboxWebhook",
                "requestBody": {"required": True, **_json(WebhookEvent)},
                "responses": {"200": {"description": "acknowledged", **_json(WebhookAck)},
                              **_errors(400, 404, 422)}}},
            "/webhooks/pagarme": {"post": {
                "operationId": "pagarmeWebhook", "security": [{"gatewayBasic": []}],
                "requestBody": {"required": True, **_json(WebhookEvent)},
                "responses": {"200": {"description": "acknowledged", **_json(WebhookAck)},
                              **_errors(400, 401, 422, 503)}}},
        },
    }


async def openapi_view(request: web.Request) -> web.Response:
    return web.json_response(build_openapi())
