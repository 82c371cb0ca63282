"""Two `csms serve` nodes behind no balancer at all: the station on one node, the driver and
the operator on the other, and the station's node dying mid-session."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from ocpp.routing import on
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action

from tests.billing.flows import Env, charge, ready_station, start_body, stop_tx
from tests.cluster.conftest import COMMAND_TIMEOUT, Cluster
from tests.support.redis import RedisServer
from tests.support.stations import FakeStation, station
from tests.support.wait import eventually

pytestmark = pytest.mark.mongodb

# 12,345 Wh at 1.50/kWh plus the 2.00 fee: 2.00 + 18.5175 -> 20.52 (half-up), held 50.00
ENERGY_WH = 12_345
COST_CENTS = 2052


async def ready_on_a_seen_on_b(a: Env, b: Env, cp: FakeStation) -> None:
    """The station booted and Available on node A, and node B sees it connected."""
    await ready_station(a, cp)
    await eventually(lambda: b.get("/api/stations/EVSE-001"), lambda s: s["connected"])


async def start_and_charge(env: Env, cp: FakeStation) -> tuple[str, int]:
    """A paid session started through `env`'s node, charging: its id and the transaction id."""
    status, started = await env.post("/charge/start", start_body())
    assert status == 200, started
    sid = started["sessionId"]
    return sid, await charge(env, cp, sid)


async def test_station_on_a_driver_on_b_through_a_paid_session(cluster: Cluster) -> None:
    a, b = cluster.env(cluster.a), cluster.env(cluster.b)
    async with station(a.ws_url, "EVSE-001") as cp:
        await ready_on_a_seen_on_b(a, b, cp)
        sid, tx_id = await start_and_charge(b, cp)  # RemoteStart came through node B
        await cp.call(call.MeterValues(connector_id=1, transaction_id=tx_id, meter_value=[
            {"timestamp": "2026-11-22T10:10:00Z", "sampledValue": [{"value": "4000"}]}]))
        status, _ = await b.post("/charge/stop", {"sessionId": sid})
        assert status == 200
        assert (await cp.wait_for("RemoteStopTransaction"))["transaction_id"] == tx_id
        await cp.call(stop_tx(tx_id, ENERGY_WH))
        done = await b.wait_session(sid, "COMPLETED", "CAPTURED")
    assert done["costCents"] == COST_CENTS
    assert done["payment"]["capturedAmount"] == COST_CENTS
    assert cluster.fake.counts["capture"] == 1


async def test_node_a_dies_mid_session_and_the_stop_resent_to_b_bills_once(
        cluster: Cluster) -> None:
    a, b = cluster.env(cluster.a), cluster.env(cluster.b)
    async with station(a.ws_url, "EVSE-001") as cp:
        await ready_on_a_seen_on_b(a, b, cp)
        sid, tx_id = await start_and_charge(b, cp)
        cluster.a.kill("mid-session")
        await cluster.a.wait_dead()
    # The station reconnects through the balancer, which now only has node B, and sends the
    # StopTransaction it could not deliver; then sends it once more (no answer seen, say).
    async with station(b.ws_url, "EVSE-001") as cp:
        await cp.boot()
        await cp.call(stop_tx(tx_id, ENERGY_WH))
        await cp.call(stop_tx(tx_id, ENERGY_WH))
        done = await b.wait_session(sid, "COMPLETED", "CAPTURED")
    assert done["costCents"] == COST_CENTS
    assert [(o["type"], o["amount"]) for o in done["payment"]["operations"]] == \
        [("AUTHORIZE", 5000), ("CAPTURE", COST_CENTS)]
    assert cluster.fake.counts["capture"] == 1


async def test_a_reconnect_on_the_other_node_closes_the_old_socket(cluster: Cluster) -> None:
    a, b = cluster.env(cluster.a), cluster.env(cluster.b)
    async with station(a.ws_url, "EVSE-001") as old:
        await ready_station(a, old)
        async with station(b.ws_url, "EVSE-001") as new:
            await new.boot()
            await eventually(lambda: old._connection.state.name, lambda s: s == "CLOSED")
            # the station stays connected (on B) whatever A's late close does
            await asyncio.sleep(0.5)
            for env in (a, b):
                assert (await env.get("/api/stations/EVSE-001"))["connected"] is True
            status, body = await a.post("/api/stations/EVSE-001/commands/GetConfiguration",
                                        {})
            assert status == 200, body  # from A, routed to the new connection on B
            assert new.received[-1][0] == "GetConfiguration"


class SlowStation(FakeStation):
    """Answers Reset only after the CSMS has given up."""

    @on(Action.reset)
    async def on_reset(self, type: str) -> call_result.Reset:
        await asyncio.sleep(COMMAND_TIMEOUT * 3)
        return call_result.Reset(status="Accepted")


async def test_routing_answers_as_a_local_hub_would(cluster: Cluster) -> None:
    a, b = cluster.env(cluster.a), cluster.env(cluster.b)
    command = "/api/stations/EVSE-001/commands/"
    async with station(a.ws_url, "EVSE-001", cls=SlowStation) as cp:
        await ready_station(a, cp)
        status, body = await b.post(command + "GetConfiguration", {"key": ["HeartbeatInterval"]})
        assert status == 200 and body["response"]["configurationKey"], body
        status, body = await b.post(command + "Reset", {"type": "Sideways"})
        assert status == 422, body
        status, body = await b.post(command + "GetLocalListVersion", {})  # no handler
        assert (status, body["error"]["code"]) == (502, "station_error"), body
        status, body = await b.post(command + "Reset", {"type": "Soft"})
        assert (status, body["error"]["code"]) == (504, "station_timeout"), body
    status, body = await b.post("/api/stations/NOWHERE/commands/Reset", {"type": "Soft"})
    assert (status, body["error"]["code"]) == (404, "station_not_connected")


async def test_a_station_on_a_dead_node_is_not_connected(cluster: Cluster) -> None:
    a, b = cluster.env(cluster.a), cluster.env(cluster.b)
    async with station(a.ws_url, "EVSE-001") as cp:
        await ready_on_a_seen_on_b(a, b, cp)
        cluster.a.kill("holding the station")
        await cluster.a.wait_dead()
        status, body = await b.post("/api/stations/EVSE-001/commands/Reset", {"type": "Soft"})
        assert (status, body["error"]["code"]) == (404, "station_not_connected"), body
        status, body = await b.post("/charge/start", start_body())
        assert (status, body["error"]["code"]) == (409, "station_offline"), body
        # once its presence expired, node B records it as gone for the operator too
        await eventually(lambda: b.get("/api/stations/EVSE-001"),
                         lambda s: not s["connected"], timeout=10)
    assert cluster.fake.counts["orders"] == 0


async def test_one_start_per_connector_across_nodes(cluster: Cluster) -> None:
    a, b = cluster.env(cluster.a), cluster.env(cluster.b)
    async with station(a.ws_url, "EVSE-001") as cp:
        await ready_on_a_seen_on_b(a, b, cp)
        answers: list[tuple[int, Any]] = await asyncio.gather(
            *(env.post("/charge/start", start_body()) for env in (a, b, a, b)))
        started = [body for status, body in answers if status == 200]
        refused = [body["error"]["code"] for status, body in answers if status != 200]
        assert len(started) <= 1, answers
        assert set(refused) <= {"connector_busy"}, answers
        assert cluster.fake.counts["orders"] == len(started)  # no hold for a refused start


async def test_the_dashboard_on_b_hears_what_happens_on_a(cluster: Cluster) -> None:
    a, b = cluster.env(cluster.a), cluster.env(cluster.b)
    async with station(a.ws_url, "EVSE-001") as cp, \
            cluster.http.get(b.url + "/events?watch=station:EVSE-001") as stream:
        assert stream.status == 200
        first = await stream.content.readuntil(b"\r\n\r\n")  # the catch-up event
        assert first.startswith(b"event: station\r\n"), first
        await ready_station(a, cp)  # connected, booted, Available: on node A
        line = await asyncio.wait_for(stream.content.readline(), 10)
        assert line.strip() == b"event: station"


async def test_a_stop_on_a_and_its_retry_on_b_at_the_same_time_bill_once(
        cluster: Cluster) -> None:
    """The station's StopTransaction reaches node A; before A answers (the capture is slow),
    the station reconnects through the balancer to node B and sends it again: both nodes
    settle the same session at once."""
    a, b = cluster.env(cluster.a), cluster.env(cluster.b)
    async with station(a.ws_url, "EVSE-001") as cp:
        await ready_on_a_seen_on_b(a, b, cp)
        sid, tx_id = await start_and_charge(b, cp)
        cluster.fake.delay = 1.5  # both captures are in flight together
        first = asyncio.create_task(cp.call(stop_tx(tx_id, ENERGY_WH)))
        await eventually(lambda: cluster.fake.requests,
                         lambda requests: any(r["path"].endswith("/capture")
                                              for r in requests))
        async with station(b.ws_url, "EVSE-001") as again:
            await again.call(stop_tx(tx_id, ENERGY_WH))
            done = await b.wait_session(sid, "COMPLETED", "CAPTURED")
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
    cluster.fake.delay = 0
    await asyncio.sleep(1.0)  # any second settlement would have finished by now
    done = await a.get(f"/charge/{sid}")
    assert done["costCents"] == COST_CENTS
    assert [(o["type"], o["amount"], o["status"]) for o in done["payment"]["operations"]] == \
        [("AUTHORIZE", 5000, "SUCCEEDED"), ("CAPTURE", COST_CENTS, "SUCCEEDED")]
    assert done["payment"]["capturedAmount"] == COST_CENTS
    assert cluster.fake.counts["capture"] == 1
    captures = [r for r in cluster.fake.requests if r["path"].endswith("/capture")]
    assert {r["headers"].get("Idempotency-Key") for r in captures} == {f"{sid}:CAPTURE"}
    receipts = await eventually(lambda: list((cluster.directory / "outbox").glob("*.eml")),
                                lambda files: len(files) >= 1, timeout=10)
    await asyncio.sleep(0.5)
    assert len(list((cluster.directory / "outbox").glob("*.eml"))) == len(receipts) == 1


async def test_a_node_that_stalls_past_its_presence_gives_up_the_station_it_lost(
        cluster: Cluster) -> None:
    """Node A stalls (a long pause: SIGSTOP) past the presence TTL; meanwhile the station
    connects again on node B. When A wakes up it still holds the old socket; it must not keep
    serving the station from it: A's commands reach the station's connection on B."""
    a, b = cluster.env(cluster.a), cluster.env(cluster.b)
    async with station(a.ws_url, "EVSE-001") as old:
        await ready_station(a, old)
        cluster.a.pause()
        try:
            await eventually(lambda: b.get("/api/stations/EVSE-001"),
                             lambda s: not s["connected"], timeout=15)  # A's presence expired
            async with station(b.ws_url, "EVSE-001") as new:
                await new.boot()
                cluster.a.resume()
                await eventually(lambda: old._connection.state.name, lambda s: s == "CLOSED",
                                 timeout=10)
                status, body = await a.post(
                    "/api/stations/EVSE-001/commands/GetConfiguration", {})
                assert status == 200, body
                assert [name for name, _ in new.received] == ["GetConfiguration"]
                assert (await a.get("/api/stations/EVSE-001"))["connected"] is True
        finally:
            cluster.a.resume()


async def test_redis_restarting_mid_run_is_a_503_and_then_routing_recovers(
        cluster: Cluster, redis_server: RedisServer) -> None:
    """Redis goes away (and comes back empty: no persistence): a routed command answers 503
    meanwhile, never a 500, and once Redis is back the nodes rebuild their presences and
    resubscribe, so commands reach the station again without a reconnect."""
    a, b = cluster.env(cluster.a), cluster.env(cluster.b)
    command = "/api/stations/EVSE-001/commands/GetConfiguration"
    async with station(a.ws_url, "EVSE-001") as cp:
        await ready_on_a_seen_on_b(a, b, cp)
        redis_server.stop()
        status, body = await b.post(command, {})
        assert (status, body["error"]["code"]) == (503, "cluster_unavailable"), body
        status, body = await a.post(command, {})  # the station's own node needs no Redis
        assert status == 200, body
        redis_server.start()
        await eventually(lambda: b.post(command, {}), lambda answer: answer[0] == 200,
                         timeout=15, interval=0.5)
        assert [name for name, _ in cp.received].count("GetConfiguration") >= 2
