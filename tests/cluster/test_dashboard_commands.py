"""The dashboard on node B starts and stops a 2.0.1 station connected to node A: its remote
start and stop go through the cluster's command routing (STATION_COMMANDS), in the station's
version, as the dashboard's own node would send them."""

from __future__ import annotations

import re

import aiohttp
import pytest

from tests.cluster.conftest import Cluster
from tests.support.stations201 import station201
from tests.support.wait import eventually

pytestmark = pytest.mark.mongodb

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def _post_form(http: aiohttp.ClientSession, base: str, page: str, action: str,
                     fields: dict[str, str]) -> str:
    """Submit a dashboard form as a browser would: the page's CSRF token, then the POST; the
    page it redirects to (with its flash message) is returned."""
    async with http.get(base + page) as resp:
        assert resp.status == 200
        token = CSRF.search(await resp.text())
    assert token is not None
    async with http.post(base + action, data={"csrf": token.group(1), **fields}) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.text()


async def test_the_dashboard_on_b_starts_and_stops_a_2_0_1_station_on_a(
        cluster: Cluster) -> None:
    a, b = cluster.env(cluster.a), cluster.env(cluster.b)
    jar = aiohttp.CookieJar(unsafe=True)  # the dashboard's cookie on 127.0.0.1
    async with station201(a.ws_url, "CP-ON-A") as cp, \
            aiohttp.ClientSession(cookie_jar=jar) as browser:
        await cp.boot()
        await cp.status(1, 1, "Available")
        page = "/stations/CP-ON-A"
        shown = await _post_form(browser, b.url, page, page + "/start",
                                 {"connectorId": "1", "idTag": "OPERATOR-B"})
        assert "Remote start on #1 for OPERATOR-B: the station accepted it" in shown
        request = await cp.wait_for("RequestStartTransaction")
        assert (request["evse_id"], request["id_token"]["id_token"]) == (1, "OPERATOR-B")

        await cp.event("Started", "tx-on-a", 0, timestamp="2026-11-22T10:00:00Z", wh=0,
                       id_token="OPERATOR-B", remote_start_id=request["remote_start_id"],
                       trigger_reason="RemoteStart")
        tx = await eventually(lambda: b.get("/api/transactions/tx-on-a?stationId=CP-ON-A"))
        shown = await _post_form(browser, b.url, page, f"/transactions/{tx['id']}/stop",
                                 {"back": "station"})
        assert "Remote stop: the station accepted it" in shown
        assert await cp.wait_for("RequestStopTransaction") == {"transaction_id": "tx-on-a"}
