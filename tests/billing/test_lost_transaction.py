"""A station that lost a billed transaction in a reboot (its StopTransaction lost too) rejects
every RemoteStop. Its connector is not locked for ever (found by an independent review): the next
driver starts, that start supersedes the lost transaction, and the lost session is billed at its
last reading."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ocpp.v16 import call

from tests.billing.flows import T0, Env, charge, meter, open_env, ready_station, start_body
from tests.support.stations import station
from tests.support.wait import eventually


@pytest.fixture
async def env(tmp_path: Path, aiohttp_server: Any) -> AsyncIterator[Env]:
    async with open_env("sandbox", tmp_path, aiohttp_server, {}) as env:
        yield env


async def test_a_transaction_the_station_lost_does_not_lock_the_connector(env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body())
        sid = started["sessionId"]
        tx_id = await charge(env, cp, sid)
        await cp.call(meter(tx_id, 3000, "2026-11-22T10:20:00Z"))
        # reboot: the station forgot the transaction; it rejects RemoteStop for it
        cp.remote_stop_status = "Rejected"
        await env.post("/charge/stop", {"sessionId": sid})
        await ready_station(env, cp)  # Available again
        # the next driver may tap an RFID card at the station (the lost session's stop was
        # asked already: its card-token match no longer holds the station)...
        auth = await cp.call(call.Authorize(id_tag="RFID-NEXT"))
        assert auth.id_tag_info["status"] == "Accepted"
        # ...or start by app: the connector is not busy
        status, body = await env.post("/charge/start", start_body(email="next@x.com"))
        assert status == 200, body
        # the next start supersedes the lost transaction: the old session is billed at 3 kWh
        remote = await eventually(lambda: [p for n, p in cp.received
                                           if n == "RemoteStartTransaction"],
                                  lambda starts: len(starts) == 2)
        begun = await cp.call(call.StartTransaction(connector_id=1, id_tag=remote[1]["id_tag"],
                                                    meter_start=3000, timestamp=T0))
        assert begun.id_tag_info["status"] == "Accepted"
        await env.wait_session(body["sessionId"], "CHARGING")
        done = await env.wait_session(sid, "COMPLETED", "CAPTURED")
    assert done["energyWh"] == 3000 and done["payment"]["capturedAmount"] == 650
