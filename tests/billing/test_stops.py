"""A stop is a durable intent: whoever asks (driver, operator, budget guard), the stop is
recorded on the session and re-sent until the station's StopTransaction arrives; a driver's
stop that races StartTransaction is never lost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ocpp.v16 import call

from tests.billing.flows import T0, Env, open_env, ready_station, start_body
from tests.support.stations import station
from web.keys import BILLING_STORE


@pytest.fixture
async def env(tmp_path: Path, aiohttp_server: Any) -> AsyncIterator[Env]:
    async with open_env("sandbox", tmp_path, aiohttp_server, {}) as env:
        yield env


async def test_a_driver_stop_racing_the_start_transaction_is_not_lost(env: Env) -> None:
    """The driver's stop reads STARTING; StartTransaction lands before its compare-and-set to
    CANCELED. The stop goes on with the fresh status: the session stops, not charges on."""
    store = env.server.app[BILLING_STORE]
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body())
        sid = started["sessionId"]
        remote = await cp.wait_for("RemoteStartTransaction")
        original = store.transition_session

        async def racing(session_id: str, expected: Any, target: Any, **changes: Any) -> Any:
            if str(target) == "CANCELED" and session_id == sid:
                store.transition_session = original  # once
                await cp.call(call.StartTransaction(connector_id=1, id_tag=remote["id_tag"],
                                                    meter_start=0, timestamp=T0))
            return await original(session_id, expected, target, **changes)

        store.transition_session = racing
        status, body = await env.post("/charge/stop", {"sessionId": sid})
        stop = await cp.wait_for("RemoteStopTransaction")
    assert status == 200
    assert body["session"]["status"] == "STOPPING"
    assert stop["transaction_id"] == body["session"]["transactionId"]
