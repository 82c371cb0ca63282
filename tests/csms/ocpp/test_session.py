"""The version-neutral session and the subprotocol negotiation, seen from the wire."""

from __future__ import annotations

import dataclasses

import aiohttp
import pytest
from websockets.asyncio.client import connect

from csms.ocpp import endpoint, v16
from tests.support.stations import station


async def test_a_reply_nobody_waits_for_is_dropped(ws_url: str, http_url: str) -> None:
    async with station(ws_url, "CP-STRAY") as cp:
        await cp.boot()
        for n in range(3):
            await cp.raw(f'[3,"stray-{n}",{{}}]')
            await cp.raw(f'[4,"stray-err-{n}","GenericError","",{{}}]')
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{http_url}/api/stations/CP-STRAY/commands/Reset",
                                 json={"type": "Hard"}) as resp:
                assert resp.status == 200
                assert (await resp.json())["response"] == {"status": "Accepted"}


async def test_a_station_offering_several_versions_gets_one_we_speak(ws_url: str) -> None:
    async with connect(f"{ws_url}/CP-MULTI", subprotocols=["ocpp2.1", "ocpp1.6", "foo"]) as ws:
        assert ws.subprotocol == "ocpp1.6"


def test_the_preferred_version_we_speak_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    newer = dataclasses.replace(v16.VERSION, name="9.9", subprotocol="ocpp9.9")
    monkeypatch.setattr(endpoint, "VERSIONS", (newer, v16.VERSION))
    assert endpoint.negotiate(["ocpp1.6", "ocpp9.9"]) is newer
    assert endpoint.negotiate(["ocpp1.6"]) is v16.VERSION
    assert endpoint.negotiate(["ocpp2.0"]) is None
