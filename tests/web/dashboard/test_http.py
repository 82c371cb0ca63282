"""The dashboard over plain HTTP (no browser): sign-in rules, CSRF, the open-mode banner, and
the routes it must leave alone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
from ocpp.v16 import call

from tests.billing.flows import T0, hijacked, open_env
from tests.support.stations import station
from tests.web.dashboard.conftest import TOKEN
from web.dashboard.render import kwh, money


async def _csrf(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url) as resp:
        found = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
    assert found is not None
    return found.group(1)


async def test_pages_need_a_sign_in_and_posts_need_the_csrf_token(
        tmp_path: Path, aiohttp_server: Any) -> None:
    async with open_env("sandbox", tmp_path, aiohttp_server,
                        {"CSMS_API__OPERATOR_TOKEN": TOKEN}) as env, \
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        env.http = http  # a browser's cookie jar: the server is an IP address
        for path in ("/", "/stations", "/sessions/x", "/jobs", "/tariffs", "/id-tags"):
            async with env.http.get(env.url + path, allow_redirects=False) as resp:
                assert resp.status == 303 and resp.headers["Location"].startswith("/login?next=")
        async with env.http.post(env.url + "/login", data={"token": TOKEN}) as resp:
            assert resp.status == 403  # no CSRF token: refused even with the right token
        csrf = await _csrf(env.http, env.url + "/login")
        async with env.http.post(env.url + "/login?next=//evil.example", allow_redirects=False,
                                 data={"token": TOKEN, "csrf": csrf}) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/"  # no open redirect
        async with env.http.post(env.url + "/id-tags", data={"idTag": "RFID1"},
                                 allow_redirects=False) as resp:
            assert resp.status == 403
        csrf = await _csrf(env.http, env.url + "/id-tags")
        async with env.http.post(env.url + "/id-tags", data={"idTag": "RFID1", "csrf": csrf,
                                                              "status": "Blocked"}) as resp:
            assert resp.status == 200 and "Id tag RFID1 saved (Blocked)" in await resp.text()
        # the JSON API keeps its Bearer rule and its JSON errors, cookie or not
        async with env.http.get(env.url + "/api/id-tags") as resp:
            assert resp.status == 401 and (await resp.json())["success"] is False
        async with env.http.get(env.url + "/api/id-tags",
                                headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            assert await resp.json() == [{"idTag": "RFID1", "status": "Blocked",
                                          "expiryDate": None, "parentIdTag": None}]


async def test_an_empty_operator_token_opens_the_dashboard_with_a_banner(
        tmp_path: Path, aiohttp_server: Any) -> None:
    async with open_env("sandbox", tmp_path, aiohttp_server, {}) as env:
        async with env.http.get(env.url + "/") as resp:
            assert resp.status == 200
            assert "Open dashboard" in await resp.text()
        async with env.http.get(env.url + "/stations/nobody") as resp:
            assert resp.status == 404 and "No station &#39;nobody&#39;" in await resp.text()
        for path in ("/dashboard/static/../app.py", "/dashboard/static/nothing.js"):
            async with env.http.get(env.url + path) as resp:
                assert resp.status == 404
        async with env.http.get(env.url + "/dashboard/static/vendor/htmx-2.0.11.min.js") as resp:
            assert resp.status == 200


def test_money_and_energy_are_shown_from_integers_without_float_arithmetic() -> None:
    assert (money(5000), money(5), money(-150), money(None)) == ("50.00", "0.05", "-1.50", "—")
    assert money(2052, "BRL") == "BRL 20.52"
    assert (kwh(1234), kwh(0)) == ("1.234 kWh", "0.000 kWh")


async def test_the_connector_mix_counts_connectors_not_the_station_itself(
        tmp_path: Path, aiohttp_server: Any) -> None:
    """OCPP 1.6 connector 0 is the charge point as a whole: it is no place a car charges."""
    async with open_env("sandbox", tmp_path, aiohttp_server, {}) as env:
        async with station(env.ws_url, "EVSE-MIX") as cp:
            await cp.boot()
            await cp.status(0, "Available")
            await cp.status(1, "Charging")
            await cp.call(call.StartTransaction(connector_id=1, id_tag="RFID-1", meter_start=0,
                                                timestamp=T0))
            async with env.http.get(env.url + "/") as resp:
                text = await resp.text()
    mix = text[text.index("Connector status"):text.index("<h2>Faults")]
    assert "Charging" in mix and "Available" not in mix
    # what charges right now, billed or not
    now = text[text.index("Charging now"):text.index("<h2>Stations")]
    assert "EVSE-MIX" in now and "RFID-1" in now and "unbilled" in now


async def test_the_station_page_shows_the_effective_security_profile_and_whose(
        tmp_path: Path, aiohttp_server: Any) -> None:
    async with open_env("sandbox", tmp_path, aiohttp_server, {}) as env:
        for body in ({"id": "EVSE-OWN", "securityProfile": 2}, {"id": "EVSE-DEF"}):
            async with env.http.post(env.url + "/api/stations", json=body) as resp:
                assert resp.status == 201
        shown = {}
        for station_id in ("EVSE-OWN", "EVSE-DEF"):
            async with env.http.get(f"{env.url}/stations/{station_id}") as resp:
                found = re.search(r'data-testid="security-profile">(.*?)</dd>', await resp.text())
            assert found is not None
            shown[station_id] = re.sub(r"<[^>]+>", "", found.group(1))
    assert shown == {"EVSE-OWN": "2 (TLS + Basic) (this station's own)",
                     "EVSE-DEF": "1 (HTTP Basic) (server default)"}


async def test_an_operator_decides_a_session_in_review_from_the_dashboard(
        tmp_path: Path, aiohttp_server: Any) -> None:
    """Implausible energy parks a session in REVIEW: the overview lists it, its page offers
    the decision, and charging 5.00 captures exactly that."""
    async with open_env("sandbox", tmp_path, aiohttp_server, {}) as env, \
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        sid, _ = await hijacked(env)
        await env.wait_session(sid, "REVIEW")
        async with http.get(env.url + "/") as resp:
            overview = await resp.text()
        assert "Waiting for review" in overview and sid[:10] in overview
        page_url = f"{env.url}/sessions/{sid}"
        csrf = await _csrf(http, page_url)
        async with http.get(page_url) as resp:
            assert 'data-testid="review"' in await resp.text()
        async with http.post(f"{page_url}/review", allow_redirects=False, data={
                "csrf": csrf, "decision": "capture", "amount": "5.00"}) as resp:
            assert resp.status == 303
        done = await env.wait_session(sid, "COMPLETED", "CAPTURED")
    assert done["payment"]["capturedAmount"] == 500
