"""In a cluster, a brand-new station held by node A is shown connected through node B from its
presence alone, before A's batched write of its connect (`csms.connection_writer`) creates
its row. Two nodes in this process (so A's writer can be held), on one redis-server and one
database of the MongoDB wire server."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from csms.keys import STORE
from tests.conftest import make_settings
from tests.support.held_connects import hold_connects
from tests.support.mongo import MongoDatabase
from tests.support.redis import RedisServer, redis_server  # noqa: F401  (a fixture)
from tests.support.stations import station
from tests.support.wait import eventually
from web.app import create_app

pytestmark = pytest.mark.mongodb


async def fetch(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as resp:
        return resp.status, await resp.json()


async def test_a_station_held_elsewhere_and_not_stored_yet_is_shown_connected(
        tmp_path: Path, redis_server: RedisServer,  # noqa: F811
        mongo_database: MongoDatabase, aiohttp_server: Any) -> None:
    # the engines are set up first, so they outlive the nodes (torn down in reverse)
    environ = {**mongo_database.env(), "CSMS_TASKS__BROKER": "redis",
               "CSMS_TASKS__REDIS_URL": redis_server.url,
               "CSMS_TASKS__QUEUE_NAME": f"csms-test-{uuid.uuid4().hex}",
               "CSMS_CLUSTER__ENABLED": "true"}
    nodes = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        nodes.append(create_app(make_settings(tmp_path / name, CSMS_CLUSTER__NODE_ID=name,
                                              **environ)))
    held = hold_connects(nodes[0])
    a, b = [await aiohttp_server(app) for app in nodes]
    on_b = f"http://{b.host}:{b.port}/api/stations"
    try:
        async with aiohttp.ClientSession() as http, \
                station(f"ws://{a.host}:{a.port}/ocpp", "CP-NEW"):
            await eventually(lambda: held.noted.get("CP-NEW"))  # A's write of it is held
            assert await nodes[1][STORE].get_station("CP-NEW") is None
            status, one = await eventually(lambda: fetch(http, f"{on_b}/CP-NEW"),
                                           lambda got: got[0] == 200)
            assert (one["id"], one["connected"], one["ocppVersion"]) == ("CP-NEW", True, "1.6")
            assert (one["vendor"], one["lastBootAt"], one["connectors"]) == (None, None, [])
            status, listed = await fetch(http, on_b)
            assert status == 200
            assert [(s["id"], s["connected"]) for s in listed] == [("CP-NEW", True)]
            assert await nodes[1][STORE].get_station("CP-NEW") is None  # still not stored
    finally:
        held.release.set()  # node A's stop waits for the held write
