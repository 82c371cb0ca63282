"""`GET /api/openapi.json`: OpenAPI 3.1 generated from the app's router and the pydantic models.

Every route of the machine APIs appears: method, path and name from the router, models and
statuses from the handler's `@documented` (web.apidoc). The dashboard's routes (named `dash_*`:
HTML pages and forms for people, behind a sign-in cookie) are not an API and are left out. Path
parameters are written in the API's camelCase (`/charge/{sessionId}`); aiohttp's implicit HEAD
beside each GET is left out.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from web.apidoc import DOCS, Doc, documented
from web.errors import ErrorResponse

REF = "#/components/schemas/{model}"
Mode = Literal["validation", "serialization"]

# Who guards which prefix (web.operator.routes.operator_auth, web.driver.routes).
PREFIX_SECURITY = (("/api/", "bearerAuth"), ("/charge/", "apiKey"))
SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer",
                   "description": "api.operator_token; the API is open while it is empty"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key",
               "description": "one of api.driver_keys (GET /charge/{sessionId} also takes one "
               "of api.terminal_keys); open while the list is empty"},
    "terminalKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key",
                    "description": "one of api.terminal_keys (the stations' kiosk software); "
                    "open while the list is empty"},
    "ccvWebhookKey": {"type": "apiKey", "in": "query", "name": "key",
                      "description": "billing.ccv.webhook_secret, carried by the webhookUrl "
                      "the CSMS gives CCV with each request"},
    "gatewayBasic": {"type": "http", "scheme": "basic",
                     "description": "billing.pagarme.webhook_user / webhook_password"},
    "stationBasic": {"type": "http", "scheme": "basic",
                     "description": "OCPP security profiles 1 and 2 (2: over TLS only): user = "
                     "station id; profile 3 (the station's own or ocpp.security_profile) "
                     "takes a client certificate whose CN is the station id instead"},
}
UNDOCUMENTED = Doc("(not documented)")
DASHBOARD = "dash_"  # route-name prefix of the operator dashboard (web.dashboard)


def in_api(route: web.AbstractRoute) -> bool:
    """A route the document describes: not aiohttp's implicit HEAD, not a dashboard page."""
    name = route.resource.name if route.resource is not None else None
    return route.method != "HEAD" and not (name or "").startswith(DASHBOARD)


def openapi_path(canonical: str) -> str:
    """aiohttp's `/charge/{session_id}` -> the API's `/charge/{sessionId}`."""
    return re.sub(r"\{(\w+)\}", lambda m: "{" + _camel(m.group(1)) + "}", canonical)


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def operations(app: web.Application) -> Iterator[tuple[str, str, str, Doc]]:
    """(path, method, operationId, doc) of every route, sub-applications included."""
    for route in app.router.routes():
        if not in_api(route):
            continue
        path = openapi_path(route.resource.canonical if route.resource else "")
        name = route.resource.name if route.resource and route.resource.name else path
        yield path, route.method.lower(), _camel(name), DOCS.get(route.handler, UNDOCUMENTED)


@functools.cache
def _schemas(models: frozenset[tuple[type[BaseModel], Mode]]) -> tuple[dict[Any, Any], Any]:
    refs, schema = models_json_schema(sorted(models, key=lambda m: (m[0].__name__, m[1])),
                                      ref_template=REF)
    return refs, schema.get("$defs", {})


def _models(docs: list[Doc]) -> frozenset[tuple[type[BaseModel], Mode]]:
    models: set[tuple[type[BaseModel], Mode]] = {(ErrorResponse, "serialization")}
    for doc in docs:
        if doc.body is not None:
            models.add((doc.body, "validation"))
        if doc.response is not None:
            models.add((doc.response, "serialization"))
    return frozenset(models)


def _security(path: str, doc: Doc) -> str | None:
    if doc.public:
        return None
    if doc.security:
        return doc.security
    return next((scheme for prefix, scheme in PREFIX_SECURITY if path.startswith(prefix)), None)


def _error(refs: dict[Any, Any], status: int) -> dict[str, Any]:
    return {"description": HTTPStatus(status).phrase,
            "content": {"application/json": {"schema": refs[(ErrorResponse, "serialization")]}}}


def _operation(refs: dict[Any, Any], path: str, operation_id: str, doc: Doc) -> dict[str, Any]:
    success: dict[str, Any] = {"description": HTTPStatus(doc.status).phrase}
    if doc.response is not None:
        schema = refs[(doc.response, "serialization")]
        if doc.many:
            schema = {"type": "array", "items": schema}
        success["content"] = {"application/json": {"schema": schema}}
    elif doc.content_type:
        kind = "object" if doc.content_type.endswith("json") else "string"
        success["content"] = {doc.content_type: {"schema": {"type": kind}}}
    statuses = set(doc.errors)
    operation: dict[str, Any] = {"operationId": operation_id, "summary": doc.summary}
    scheme = _security(path, doc)
    if scheme:
        operation["security"] = [{scheme: []}]
        statuses.add(401)
    else:
        operation["security"] = []
    typed = {p.name: dict(p.schema) for p in doc.path}
    parameters = [{"name": name, "in": "path", "required": True,
                   "schema": typed.get(name, {"type": "string"})}
                  for name in re.findall(r"\{(\w+)\}", path)]
    parameters += [{"name": p.name, "in": where, "description": p.description,
                    "schema": dict(p.schema)}
                   for where, params in (("query", doc.query), ("header", doc.headers))
                   for p in params]
    if parameters:
        operation["parameters"] = parameters
    if doc.body is not None or doc.free_body:
        body = (refs[(doc.body, "validation")] if doc.body is not None
                else {"type": "object", "description": doc.free_body})
        operation["requestBody"] = {"required": doc.body is not None,
                                    "content": {"application/json": {"schema": body}}}
        statuses |= {400, 413, 415, 422}  # bad JSON, too large, unknown charset, bad field
    operation["responses"] = {str(doc.status): success,
                              **{str(s): _error(refs, s) for s in sorted(statuses)},
                              "default": {**_error(refs, 500), "description": "unexpected"}}
    return operation


def build_openapi(app: web.Application) -> dict[str, Any]:
    found = list(operations(app))
    refs, schemas = _schemas(_models([doc for *_, doc in found]))
    paths: dict[str, dict[str, Any]] = {}
    for path, method, operation_id, doc in found:
        paths.setdefault(path, {})[method] = _operation(refs, path, operation_id, doc)
    return {
        "openapi": "3.1.0",
        "info": {"title": "CSMS API", "version": "1.0.0",
                 "description": "Operator API under /api, driver API under /charge, payment "
                                "gateway webhooks, monitoring and the OCPP websocket. Amounts "
                                "are integer minor units (cents) unless a field says otherwise. "
                                'Every error is {"success": false, "error": {"code", '
                                '"message"}}.'},
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
        "paths": paths,
    }


@documented("This document (OpenAPI 3.1)", content_type="application/json", public=True)
async def openapi_view(request: web.Request) -> web.Response:
    """The document for the whole application this sub-app is mounted in."""
    return web.json_response(build_openapi(request.match_info.apps[0]))
