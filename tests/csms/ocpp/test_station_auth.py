"""Security profile 1: HTTP Basic on the upgrade; unknown stations per configuration."""

from __future__ import annotations

import aiohttp
import pytest
from websockets.exceptions import InvalidStatus

from tests.conftest import make_settings
from tests.support.stations import station


async def provision(http_url: str, station_id: str, password: str | None = None) -> None:
    body = {"id": station_id} if password is None else {"id": station_id, "password": password}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{http_url}/api/stations", json=body) as resp:
            assert resp.status == 201, await resp.text()


async def test_password_protected_station(ws_url: str, http_url: str) -> None:
    await provision(http_url, "CP-SEC", "correct-horse")
    async with station(ws_url, "CP-SEC", password="correct-horse") as cp:
        assert (await cp.boot()).status == "Accepted"

    for password in ("wrong-password", None):
        with pytest.raises(InvalidStatus) as refused:
            async with station(ws_url, "CP-SEC", password=password):
                pass
        assert refused.value.response.status_code == 401
        assert "Basic" in refused.value.response.headers["WWW-Authenticate"]


async def test_credentials_must_name_the_station(ws_url: str, http_url: str) -> None:
    await provision(http_url, "CP-A", "password-a")
    from websockets.asyncio.client import connect

    from tests.support.stations import basic_auth

    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{ws_url}/CP-A", subprotocols=["ocpp1.6"],
                           additional_headers=basic_auth("CP-B", "password-a")):
            pass
    assert refused.value.response.status_code == 401


async def test_password_is_not_stored_in_clear(http_url: str, server) -> None:
    await provision(http_url, "CP-HASH", "s3cret-pass")
    from csms.keys import STORE

    stored = await server.app[STORE].get_station("CP-HASH")
    assert stored.password_hash and "s3cret-pass" not in stored.password_hash
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{http_url}/api/stations/CP-HASH") as resp:
            body = await resp.json()
    assert body["passwordSet"] is True and "s3cret" not in str(body)


async def test_unknown_stations_refused_when_not_allowed(tmp_path, start_server) -> None:
    server = await start_server(make_settings(tmp_path, CSMS_OCPP__ALLOW_UNKNOWN_STATIONS="false"))
    ws_url = f"ws://{server.host}:{server.port}/ocpp"
    http_url = f"http://{server.host}:{server.port}"
    with pytest.raises(InvalidStatus) as refused:
        async with station(ws_url, "CP-STRANGER"):
            pass
    assert refused.value.response.status_code == 404

    await provision(http_url, "CP-KNOWN")
    async with station(ws_url, "CP-KNOWN") as cp:
        assert (await cp.boot()).status == "Accepted"
