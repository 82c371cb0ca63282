"""A stop is a durable intent: whoever asks (driver, operator, budget guard), the stop is
recorded on the session and re-sent until the station's StopTransaction arrives; a driver's
stop that races StartTransaction is never lost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from ocpp.v16 import call

from tests.billing.flows import T0, Env, charge, open_env, ready_station, start_body, stop_tx
from tests.support.stations import FakeStation, station
from tests.support.wait import eventually
from web.keys import BILLING_STORE


@pytest.fixture
async def env(request: pytest.FixtureRequest, tmp_path: Path, aiohttp_server: Any,
              ) -> AsyncIterator[Env]:
    marker = request.node.get_closest_marker("env")
    extra = dict(marker.kwargs) if marker else {}
    async with open_env("sandbox", tmp_path, aiohttp_server, extra) as env:
        yield env


def meter(tx_id: int, wh: int, at: str) -> call.MeterValues:
    return call.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=[
        {"timestamp": at, "sampledValue": [{"value": str(wh)}]}])


def remote_stops(cp: FakeStation) -> list[int]:
    return [p["transaction_id"] for name, p in cp.received if name == "RemoteStopTransaction"]


async def charging(env: Env, cp: FakeStation, amount: int = 5000) -> tuple[str, int]:
    await ready_station(env, cp)
    _, started = await env.post("/charge/start", start_body(amount=amount))
    sid = started["sessionId"]
    return sid, await charge(env, cp, sid)


async def test_a_stop_asked_while_the_station_is_offline_is_sent_when_it_reconnects(
        env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        sid, tx_id = await charging(env, cp)
        assert (await env.session(sid))["stopRequest"] is None
    status, body = await env.post("/charge/stop", {"sessionId": sid})  # station offline
    assert status == 200 and body["session"]["status"] == "STOPPING"
    asked = body["session"]["stopRequest"]
    assert asked["requestedBy"] == "DRIVER" and asked["requestedAt"]
    assert asked["attempts"] == 1 and "not connected" in asked["lastError"]
    async with station(env.ws_url, "EVSE-001") as back:
        assert (await back.wait_for("RemoteStopTransaction"))["transaction_id"] == tx_id
        seen = await eventually(lambda: env.session(sid),
                                lambda b: b["stopRequest"]["attempts"] == 2)
        assert seen["stopRequest"]["lastError"] is None  # accepted
        await back.call(stop_tx(tx_id, 4000))
        done = await env.wait_session(sid, "COMPLETED", "CAPTURED")
    assert done["payment"]["capturedAmount"] == 800
    assert done["stopRequest"]["requestedBy"] == "DRIVER"


async def test_stations_reconnecting_together_each_get_their_own_owed_stop(env: Env) -> None:
    """The reconnects are looked up together (one read for those that came meanwhile): each
    station gets the stop owed to it, and only that."""
    owed: dict[str, tuple[str, int]] = {}
    for name in ("EVSE-001", "EVSE-002", "EVSE-003"):
        async with station(env.ws_url, name) as cp:
            await ready_station(env, cp)
            _, started = await env.post("/charge/start", start_body(chargePointId=name))
            owed[name] = (started["sessionId"], await charge(env, cp, started["sessionId"]))
    for sid, _ in list(owed.values())[:2]:  # EVSE-003's session keeps charging
        assert (await env.post("/charge/stop", {"sessionId": sid}))[0] == 200
    async with station(env.ws_url, "EVSE-001") as one, \
            station(env.ws_url, "EVSE-002") as two, station(env.ws_url, "EVSE-003") as three:
        assert (await one.wait_for("RemoteStopTransaction"))["transaction_id"] == \
            owed["EVSE-001"][1]
        assert (await two.wait_for("RemoteStopTransaction"))["transaction_id"] == \
            owed["EVSE-002"][1]
        await one.call(call.Heartbeat())  # a round trip more: nothing else came meanwhile
        assert (remote_stops(one), remote_stops(two), remote_stops(three)) == \
            ([owed["EVSE-001"][1]], [owed["EVSE-002"][1]], [])


async def test_a_failed_look_for_owed_stops_is_tried_again(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store fails the read of the stops owed to a station that just reconnected: the
    station keeps its connection and the read is tried again, so the stop still goes out on
    the reconnect rather than at the retry schedule's next attempt (30 s here, up to
    stop_retry_max_interval)."""
    async with station(env.ws_url, "EVSE-001") as cp:
        sid, tx_id = await charging(env, cp)
    assert (await env.post("/charge/stop", {"sessionId": sid}))[0] == 200  # station offline
    store = env.server.app[BILLING_STORE]
    original, failed = store.list_sessions, []

    async def failing_once(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("station_ids") is not None and not failed:
            failed.append(kwargs["station_ids"])
            raise OSError("store unavailable")
        return await original(*args, **kwargs)

    monkeypatch.setattr(store, "list_sessions", failing_once)
    async with station(env.ws_url, "EVSE-001") as back:
        assert (await back.wait_for("RemoteStopTransaction"))["transaction_id"] == tx_id
        assert failed == [{"EVSE-001"}]
        await back.call(stop_tx(tx_id, 4000))
        await env.wait_session(sid, "COMPLETED", "CAPTURED")


async def test_a_second_driver_stop_re_sends_a_rejected_stop_at_once(env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        cp.remote_stop_status = "Rejected"
        sid, tx_id = await charging(env, cp)
        _, first = await env.post("/charge/stop", {"sessionId": sid})
        assert first["session"]["stopRequest"]["attempts"] == 1
        assert "rejected" in first["session"]["stopRequest"]["lastError"]
        cp.remote_stop_status = "Accepted"
        status, again = await env.post("/charge/stop", {"sessionId": sid})
        assert status == 200 and again["session"]["status"] == "STOPPING"
        assert remote_stops(cp) == [tx_id, tx_id]
        asked = again["session"]["stopRequest"]
        assert (asked["attempts"], asked["lastError"]) == (2, None)
        listed = await env.get("/api/sessions?status=STOPPING")
        assert [s["stopRequest"]["attempts"] for s in listed] == [2]
        await cp.call(stop_tx(tx_id, 2000))
        await env.wait_session(sid, "COMPLETED", "CAPTURED")


@pytest.mark.env(CSMS_BILLING__STOP_RETRY_INTERVAL="0.1")
async def test_a_stop_is_re_sent_on_a_schedule_until_the_station_stops(env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        cp.remote_stop_status = "Rejected"
        sid, tx_id = await charging(env, cp)
        await env.post("/charge/stop", {"sessionId": sid})
        await eventually(lambda: remote_stops(cp), lambda sent: len(sent) >= 3)
        await cp.call(stop_tx(tx_id, 2000))
        done = await env.wait_session(sid, "COMPLETED", "CAPTURED")
        assert done["stopRequest"]["attempts"] >= 3
        assert "rejected" in done["stopRequest"]["lastError"]


async def test_an_operator_stop_is_recorded_as_the_operator_s(env: Env) -> None:
    async with station(env.ws_url, "EVSE-001") as cp:
        sid, tx_id = await charging(env, cp)
        status, body = await env.post(f"/api/sessions/{sid}/stop", {})
        assert status == 200 and body["status"] == "STOPPING"
        assert body["stopRequest"]["requestedBy"] == "OPERATOR"
        assert remote_stops(cp) == [tx_id]
        await cp.call(stop_tx(tx_id, 2000))
        await env.wait_session(sid, "COMPLETED", "CAPTURED")


async def test_budget_guard_re_stops_a_stopping_session_that_keeps_drawing(env: Env) -> None:
    """The station rejects the guard's RemoteStop and energy keeps flowing past the hold: every
    sample that raises the cost further sends the stop again."""
    async with station(env.ws_url, "EVSE-001") as cp:
        cp.remote_stop_status = "Rejected"
        sid, tx_id = await charging(env, cp, amount=500)
        await cp.call(meter(tx_id, 2000, "2026-11-22T10:10:00Z"))  # 5.00 >= 5.00
        await eventually(lambda: remote_stops(cp), lambda sent: len(sent) == 1)
        body = await env.session(sid)
        assert body["status"] == "STOPPING"
        assert body["stopRequest"]["requestedBy"] == "BUDGET_GUARD"
        await cp.call(meter(tx_id, 20000, "2026-11-22T11:00:00Z"))  # 32.00
        await eventually(lambda: remote_stops(cp), lambda sent: len(sent) == 2)
        await cp.call(meter(tx_id, 20000, "2026-11-22T11:01:00Z"))  # no more energy: no re-send
        await cp.call(meter(tx_id, 40000, "2026-11-22T12:00:00Z"))  # 62.00
        await eventually(lambda: remote_stops(cp), lambda sent: len(sent) == 3)
        await cp.call(stop_tx(tx_id, 40000))
        body = await env.wait_session(sid, "COMPLETED", "CAPTURED")
    assert body["costCents"] == 6200 and body["payment"]["capturedAmount"] == 500
    assert body["stopRequest"]["attempts"] == 3


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
