"""Driver sessions on an OCPP 2.0.1 station, exactly as on 1.6: hold, RequestStartTransaction,
the Started event links the session, the budget guard and the driver stop send
RequestStopTransaction, the Ended event captures the exact cost or voids.

The station is the `ocpp` library's v201 client, which validates every answer it gets against
the official 2.0.1 schemas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from ocpp.v16 import call as call16
from ocpp.v201 import call as call201

from tests.billing.flows import Env, open_env, ops, start_body
from tests.support.mongo import backend_environ
from tests.support.stations import station
from tests.support.stations201 import Station201, station201

STATION = "EVSE-001"  # start_body's chargePointId


@pytest.fixture(params=["sandbox", "pagarme-mongodb"])
async def env(request: pytest.FixtureRequest, tmp_path, aiohttp_server) -> AsyncIterator[Env]:
    gateway, _, backend = request.param.partition("-")
    extra = backend_environ(request, backend or "sqlite")
    marker = request.node.get_closest_marker("env")
    if marker:
        extra.update(marker.kwargs)
    async with open_env(gateway, tmp_path, aiohttp_server, extra) as env:
        yield env


async def ready(cp: Station201, status: str = "Available") -> None:
    await cp.boot()
    await cp.status(1, 1, status)


async def started(env: Env, cp: Station201, sid: str, *, tx: str = "TX-1", wh: int = 0,
                  with_token: bool = True, with_remote_id: bool = True) -> dict[str, Any]:
    """Play the station's part after RequestStartTransaction: a Started event; returns the
    request the station got."""
    request = await cp.wait_for("RequestStartTransaction")
    answer = await cp.event(
        "Started", tx, 0, timestamp="2026-11-22T10:00:00Z", wh=wh,
        evse_id=request["evse_id"], trigger_reason="RemoteStart",
        id_token=request["id_token"]["id_token"] if with_token else None,
        remote_start_id=request["remote_start_id"] if with_remote_id else None)
    if with_token:
        assert answer.id_token_info["status"] == "Accepted"
    await env.wait_session(sid, "CHARGING")
    return request


async def test_a_paid_session_captures_exactly_the_cost_once(env: Env) -> None:
    async with station201(env.ws_url, STATION) as cp:
        await ready(cp, "Occupied")  # the driver plugged in first
        status, body = await env.post("/charge/start", start_body())
        assert status == 200, body
        sid = body["sessionId"]
        request = await started(env, cp, sid, wh=1000)
        assert request["evse_id"] == 1 and request["id_token"]["type"] == "Central"
        await cp.event("Updated", "TX-1", 1, timestamp="2026-11-22T10:10:00Z", wh=6000)
        running = await env.session(sid)
        assert (running["energyWh"], running["costCents"]) == (5000, 950)

        status, stopped = await env.post("/charge/stop", {"sessionId": sid})
        assert status == 200 and stopped["session"]["status"] == "STOPPING"
        assert (await cp.wait_for("RequestStopTransaction")) == {"transaction_id": "TX-1"}
        # 12,345 Wh at 1.50/kWh plus 2.00 = 20.5175 -> 2052 cents; the Ended arrives twice
        for _ in range(2):
            await cp.event("Ended", "TX-1", 2, timestamp="2026-11-22T10:30:00Z", wh=13345,
                           trigger_reason="RemoteStop", stopped_reason="Remote")
        done = await env.wait_session(sid, "COMPLETED", "CAPTURED")
    assert (done["energyWh"], done["costCents"]) == (12345, 2052)
    assert ops(done) == [("AUTHORIZE", 5000, "SUCCEEDED"), ("CAPTURE", 2052, "SUCCEEDED")]
    if env.fake is not None:
        assert env.gateway_count("capture") == 1
    tx = await env.get(f"/api/transactions/TX-1?stationId={STATION}")
    assert (tx["sessionId"], tx["ocppVersion"], tx["id"]) == (sid, "2.0.1",
                                                              done["transactionId"])


async def test_only_the_sessions_token_passes_while_it_charges(env: Env) -> None:
    async with station201(env.ws_url, STATION) as cp:
        await ready(cp)
        _, body = await env.post("/charge/start", start_body())
        request = await started(env, cp, body["sessionId"])
        token = request["id_token"]["id_token"]
        other = await cp.call(_authorize("SOMEONE-ELSE"))
        assert other.id_token_info["status"] == "Invalid"
        own = await cp.call(_authorize(token))
        assert own.id_token_info["status"] == "Accepted"


def _authorize(token: str) -> call201.Authorize:
    return call201.Authorize(id_token={"id_token": token, "type": "ISO14443"})


async def test_a_rejected_start_voids(env: Env) -> None:
    async with station201(env.ws_url, STATION) as cp:
        await ready(cp)
        cp.start_status = "Rejected"
        status, body = await env.post("/charge/start", start_body())
        assert status == 409 and body["error"]["code"] == "remote_start_rejected"
        session = await env.session(body["error"]["sessionId"])
    assert (session["status"], session["payment"]["status"]) == ("FAILED", "VOIDED")


@pytest.mark.env(CSMS_OCPP__REMOTE_START_TIMEOUT="0.3")
async def test_no_started_in_time_voids_and_a_late_one_is_refused(env: Env) -> None:
    async with station201(env.ws_url, STATION) as cp:
        await ready(cp)
        _, body = await env.post("/charge/start", start_body())
        done = await env.wait_session(body["sessionId"], "CANCELED", "VOIDED")
        request = await cp.wait_for("RequestStartTransaction")
        late = await cp.event("Started", "TX-LATE", 0, timestamp="2026-11-22T10:00:00Z",
                              wh=0, id_token=request["id_token"]["id_token"],
                              remote_start_id=request["remote_start_id"])
        assert late.id_token_info["status"] == "Invalid"  # the station must not charge
    assert [o[0] for o in ops(done)] == ["AUTHORIZE", "VOID"]


async def test_a_stop_before_charging_voids(env: Env) -> None:
    async with station201(env.ws_url, STATION) as cp:
        await ready(cp)
        _, body = await env.post("/charge/start", start_body())
        await cp.wait_for("RequestStartTransaction")
        status, stopped = await env.post("/charge/stop", {"sessionId": body["sessionId"]})
        assert status == 200
        assert (stopped["session"]["status"], stopped["session"]["payment"]["status"]) == (
            "CANCELED", "VOIDED")


async def test_an_end_before_any_energy_voids(env: Env) -> None:
    async with station201(env.ws_url, STATION) as cp:
        await ready(cp)
        _, body = await env.post("/charge/start", start_body())
        sid = body["sessionId"]
        await started(env, cp, sid, wh=500)
        await cp.event("Ended", "TX-1", 1, timestamp="2026-11-22T10:01:00Z", wh=500,
                       trigger_reason="EVCommunicationLost", stopped_reason="EVDisconnected")
        done = await env.wait_session(sid, "CANCELED", "VOIDED")
    assert [o[0] for o in ops(done)] == ["AUTHORIZE", "VOID"]
    if env.fake is not None:
        assert env.gateway_count("capture") == 0


async def test_the_budget_guard_sends_request_stop(env: Env) -> None:
    async with station201(env.ws_url, STATION) as cp:
        await ready(cp)
        _, body = await env.post("/charge/start", start_body(amount=500))
        sid = body["sessionId"]
        await started(env, cp, sid, with_token=False)  # linked by its remoteStartId alone
        await cp.event("Updated", "TX-1", 1, timestamp="2026-11-22T10:05:00Z", wh=1000)
        assert (await env.session(sid))["status"] == "CHARGING"  # 3.50 < 5.00
        await cp.event("Updated", "TX-1", 2, timestamp="2026-11-22T10:10:00Z", wh=2000)
        assert (await cp.wait_for("RequestStopTransaction")) == {"transaction_id": "TX-1"}
        assert (await env.session(sid))["status"] == "STOPPING"
        await cp.event("Ended", "TX-1", 3, timestamp="2026-11-22T10:11:00Z", wh=2100,
                       trigger_reason="RemoteStop", stopped_reason="Remote")
        done = await env.wait_session(sid, "COMPLETED", "CAPTURED")
    assert (done["costCents"], done["payment"]["capturedAmount"]) == (515, 500)


async def test_a_stop_asked_while_offline_is_resent_and_its_ended_arrives_later(
        env: Env) -> None:
    async with station201(env.ws_url, STATION) as cp:
        await ready(cp)
        _, body = await env.post("/charge/start", start_body())
        sid = body["sessionId"]
        await started(env, cp, sid, wh=100)
    status, stopped = await env.post("/charge/stop", {"sessionId": sid})
    assert status == 200 and stopped["session"]["status"] == "STOPPING"
    async with station201(env.ws_url, STATION) as cp:
        await cp.boot()
        assert (await cp.wait_for("RequestStopTransaction")) == {"transaction_id": "TX-1"}
        # the station had queued an Updated while offline; it sends it, then the Ended
        await cp.event("Updated", "TX-1", 1, timestamp="2026-11-22T10:20:00Z", wh=4100,
                       offline=True)
        await cp.event("Ended", "TX-1", 2, timestamp="2026-11-22T10:25:00Z", wh=4100,
                       trigger_reason="RemoteStop", stopped_reason="Remote")
        done = await env.wait_session(sid, "COMPLETED", "CAPTURED")
    assert (done["energyWh"], done["costCents"]) == (4000, 800)


async def test_a_1_6_and_a_2_0_1_station_bill_side_by_side(env: Env) -> None:
    async with station(env.ws_url, "EVSE-016") as old, \
            station201(env.ws_url, "EVSE-201") as new:
        await old.boot()
        await old.status(1, "Available")
        await ready(new)
        _, first = await env.post("/charge/start", start_body(chargePointId="EVSE-016"))
        _, second = await env.post("/charge/start", start_body(chargePointId="EVSE-201"))
        remote = await old.wait_for("RemoteStartTransaction")
        start = await old.call(call16.StartTransaction(
            connector_id=1, id_tag=remote["id_tag"], meter_start=0,
            timestamp="2026-11-22T10:00:00Z"))
        await started(env, new, second["sessionId"], with_remote_id=False)  # token alone
        await old.call(call16.StopTransaction(meter_stop=2000, timestamp="2026-11-22T10:30:00Z",
                                            transaction_id=start.transaction_id,
                                            reason="Local"))
        await new.event("Ended", "TX-1", 1, timestamp="2026-11-22T10:30:00Z", wh=4000,
                        trigger_reason="StopAuthorized", stopped_reason="Local")
        one = await env.wait_session(first["sessionId"], "COMPLETED", "CAPTURED")
        two = await env.wait_session(second["sessionId"], "COMPLETED", "CAPTURED")
    assert (one["costCents"], two["costCents"]) == (500, 800)
    listed = {t["stationId"]: t for t in await env.get("/api/transactions")}
    assert (listed["EVSE-016"]["ocppVersion"], listed["EVSE-016"]["transactionId"]) == (
        "1.6", start.transaction_id)
    assert (listed["EVSE-201"]["ocppVersion"], listed["EVSE-201"]["transactionId"]) == (
        "2.0.1", "TX-1")


@pytest.mark.env(CSMS_OCPP__REMOTE_START_TIMEOUT="0.3")
async def test_a_late_start_named_by_its_remote_start_id_alone_is_refused(env: Env) -> None:
    """The Started names the remoteStartId but carries no idToken (the station was given the
    token in RequestStartTransaction): the refusal must still reach the station, or it
    charges with nobody paying."""
    async with station201(env.ws_url, STATION) as cp:
        await ready(cp)
        _, body = await env.post("/charge/start", start_body())
        await env.wait_session(body["sessionId"], "CANCELED", "VOIDED")
        request = await cp.wait_for("RequestStartTransaction")
        late = await cp.event("Started", "TX-LATE", 0, timestamp="2026-11-22T10:00:00Z",
                              wh=0, trigger_reason="RemoteStart",
                              remote_start_id=request["remote_start_id"])
        assert late.id_token_info == {"status": "Invalid"}
