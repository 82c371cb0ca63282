"""A brand-new station is shown connected from the moment it is live, before the batched write
of its connect (`csms.connection_writer`) creates its row: in GET /api/stations/{id}, in
GET /api/stations and on the dashboard's pages, with what is known (its id, no boot data)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
from ocpp.v16 import call

from tests.conftest import make_settings
from tests.support.held_connects import hold_connects
from tests.support.stations import station
from tests.support.wait import eventually
from web.app import create_app

KNOWN = {"id": "CP-NEW", "connected": True, "vendor": None, "model": None,
         "serialNumber": None, "firmwareVersion": None, "firmwareStatus": None,
         "diagnosticsStatus": None, "provisioned": False, "passwordSet": False,
         "securityProfile": 1, "securityProfileSource": "default", "lastBootAt": None,
         "ocppVersion": "1.6", "connectors": [], "terminal": None, "evses": None}


async def fetch(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as resp:
        is_json = resp.content_type == "application/json"
        return resp.status, await (resp.json() if is_json else resp.text())


def row(html: str, station_id: str) -> str | None:
    """The station's row on the dashboard's station list, if it has one."""
    found = re.search(rf'<tr data-station="{station_id}">(.*?)</tr>', html, re.DOTALL)
    return None if found is None else found.group(1)


async def test_a_new_station_is_shown_connected_before_its_connect_is_written(
        tmp_path: Path, aiohttp_server: Any) -> None:
    app = create_app(make_settings(tmp_path))  # open operator API and dashboard
    held = hold_connects(app)
    server = await aiohttp_server(app)
    base = f"http://{server.host}:{server.port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with station(f"ws://{server.host}:{server.port}/ocpp", "CP-NEW") as cp:
                await cp.call(call.Heartbeat())  # served; a heartbeat creates no row
                await eventually(lambda: held.noted.get("CP-NEW"))  # its connect is held
                assert await held.store.get_station("CP-NEW") is None

                status, one = await fetch(http, f"{base}/api/stations/CP-NEW")
                assert status == 200, one
                assert isinstance(one.pop("lastSeen"), str)  # the hub's: when it connected
                assert one == KNOWN
                status, listed = await fetch(http, f"{base}/api/stations")
                assert status == 200 and [s["id"] for s in listed] == ["CP-NEW"]
                assert {**listed[0], "lastSeen": None} == {**KNOWN, "lastSeen": None}

                status, page = await fetch(http, f"{base}/stations")
                assert status == 200 and "online" in (row(page, "CP-NEW") or "")
                status, page = await fetch(http, f"{base}/stations/CP-NEW")
                assert status == 200 and "Station CP-NEW" in page
                status, page = await fetch(http, f"{base}/")
                assert 'data-testid="online">1 <small>/ 1</small>' in page

                held.release.set()  # the connect is written: one row, the same view
                assert await eventually(lambda: held.store.get_station("CP-NEW"))
                status, listed = await fetch(http, f"{base}/api/stations")
                assert status == 200
                assert [(s["id"], s["connected"]) for s in listed] == [("CP-NEW", True)]
            # gone: shown from its stored row, disconnected
            await eventually(lambda: fetch(http, f"{base}/api/stations/CP-NEW"),
                             lambda got: got[1]["connected"] is False)
    finally:
        held.release.set()  # the app's stop waits for a held write
