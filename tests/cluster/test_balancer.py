"""The stack's nginx (deploy/nginx-stack.conf, on ports of the test's own) in front of the
two nodes: a station connects through it, and operator and driver requests sent through it
reach the station whichever node nginx hands each of them to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.billing.flows import Env, charge, ready_station, start_body, stop_tx
from tests.cluster.conftest import Cluster
from tests.support.nginx import Balancer, start_balancer
from tests.support.stations import station
from tests.support.wait import eventually

pytestmark = pytest.mark.mongodb


@pytest.fixture
def balancer(cluster: Cluster, tmp_path: Path) -> Iterator[Balancer]:
    nginx = start_balancer(tmp_path / "nginx", cluster.a.port, cluster.b.port)
    yield nginx
    nginx.stop()


async def test_a_station_and_its_commands_through_the_balancer(cluster: Cluster,
                                                               balancer: Balancer) -> None:
    front = Env(SimpleNamespace(host="127.0.0.1", port=balancer.port),  # type: ignore[arg-type]
                cluster.fake, cluster.http)
    async with station(balancer.ws_url, "EVSE-001") as cp:
        await ready_station(front, cp)
        for node in (cluster.env(cluster.a), cluster.env(cluster.b)):
            await eventually(lambda env=node: env.get("/api/stations/EVSE-001"),
                             lambda s: s["connected"])
        # least_conn hands these to the node without the websocket, at least some of them
        for _ in range(3):
            status, body = await front.post(
                "/api/stations/EVSE-001/commands/GetConfiguration", {})
            assert status == 200, body
        assert [name for name, _ in cp.received].count("GetConfiguration") == 3
        status, started = await front.post("/charge/start", start_body())
        assert status == 200, started
        sid = started["sessionId"]
        tx_id = await charge(front, cp, sid)
        status, _ = await front.post("/charge/stop", {"sessionId": sid})
        assert status == 200
        assert (await cp.wait_for("RemoteStopTransaction"))["transaction_id"] == tx_id
        await cp.call(stop_tx(tx_id, 12_345))
        done = await front.wait_session(sid, "COMPLETED", "CAPTURED")
    assert done["costCents"] == 2052
    assert cluster.fake.counts["capture"] == 1
