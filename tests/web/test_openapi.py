"""The generated OpenAPI document covers every route, and real responses match its schemas."""

from __future__ import annotations

from typing import Any

import aiohttp
import jsonschema
from aiohttp.test_utils import TestServer

from tests.billing.flows import Env, charge, ready_station, start_body
from tests.support.stations import station
from web.openapi import in_api, openapi_path


async def fetch_spec(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(url + "/api/openapi.json") as resp:
        assert resp.status == 200
        return await resp.json()


async def test_every_route_is_in_the_spec_with_its_methods(server: TestServer,
                                                           http_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        spec = await fetch_spec(http, http_url)
    assert spec["openapi"].startswith("3.1")
    registered = {(openapi_path(route.resource.canonical), route.method.lower())
                  for route in server.app.router.routes()
                  if route.resource is not None and in_api(route)}  # HEAD: implied
    documented = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert registered == documented
    assert len(registered) >= 27  # the whole operator API, not only the driver's
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            assert operation["summary"] != "(not documented)", (method, path)
            assert "default" in operation["responses"]
    for schema in spec["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


class Checker:
    """Calls the API and validates each answer against the spec's schema for its status."""

    def __init__(self, env: Env, spec: dict[str, Any]) -> None:
        self.env, self.spec = env, spec

    async def __call__(self, method: str, template: str, status: int, body: Any = None,
                       **values: Any) -> Any:
        url = self.env.url + template.format(**values)
        async with self.env.http.request(method, url, json=body) as resp:
            assert resp.status == status, await resp.text()
            answer = await resp.json()
        response = self.spec["paths"][template][method.lower()]["responses"][str(status)]
        schema = {**response["content"]["application/json"]["schema"],
                  "components": self.spec["components"]}
        jsonschema.validate(answer, schema, cls=jsonschema.Draft202012Validator)
        return answer


async def test_real_responses_match_the_spec(server: TestServer, http_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        env = Env(server, None, http)
        check = Checker(env, await fetch_spec(http, http_url))
        await check("POST", "/api/stations", 201, {"id": "EVSE-001"})
        await check("PUT", "/api/id-tags/{idTag}", 200, {"status": "Blocked"}, idTag="RFID-9")
        await check("GET", "/api/stations/{stationId}/tariff", 200, stationId="EVSE-001")
        async with station(env.ws_url, "EVSE-001") as cp:
            await ready_station(env, cp)
            started = await check("POST", "/charge/start", 200, start_body())
            sid = started["sessionId"]
            tx_id = await charge(env, cp, sid)
            await check("GET", "/charge/{sessionId}", 200, sessionId=sid)
            await check("GET", "/api/stations", 200)
            await check("GET", "/api/stations/{stationId}", 200, stationId="EVSE-001")
            await check("GET", "/api/stations/{stationId}/messages", 200, stationId="EVSE-001")
            await check("GET", "/api/transactions", 200)
            await check("GET", "/api/transactions/{transactionId}", 200, transactionId=tx_id)
            await check("GET", "/api/sessions/{sessionId}", 200, sessionId=sid)
            await check("POST", "/charge/stop", 200, {"sessionId": sid})
        await check("GET", "/api/sessions", 200)
        await check("GET", "/api/jobs", 200)
        await check("GET", "/api/id-tags", 200)
        await check("GET", "/healthz", 200)
        # errors have the one shape the spec describes
        await check("GET", "/api/stations/{stationId}", 404, stationId="nobody")
        await check("POST", "/charge/start", 422, start_body(connectorId=0))
        await check("POST", "/api/stations/{stationId}/commands/{action}", 404, {},
                    stationId="nobody", action="Reset")
