"""Connects and disconnects are written in batches off the station's path (a documented
window, `csms.connection_writer`): in the order they happened per station, kept through a
failed write, and written on a clean stop. Both store backends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from csms import connection_writer
from csms.connection_writer import ConnectionWriter
from csms.domain import utcnow
from csms.store.factory import make_store
from csms.store.ports import Store
from tests.conftest import make_settings
from tests.csms.store.contract import at
from tests.support.mongo import BACKENDS, backend_environ
from tests.support.stations import station
from tests.support.wait import eventually
from web.settings import Settings


@pytest.fixture(params=BACKENDS)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return make_settings(tmp_path, **backend_environ(request, request.param))


@pytest_asyncio.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    store = make_store(settings.store)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def connected(store: Store, station_id: str) -> bool | None:
    station = await store.get_station(station_id)
    return None if station is None else station.connected


async def test_a_disconnect_noted_during_a_write_is_written_after_it(store: Store) -> None:
    writer = ConnectionWriter(store)
    writer.note("CP1", True, at(1))
    writing = asyncio.create_task(writer.flush())
    await asyncio.sleep(0)  # the connect's write is under way
    writer.note("CP1", False, at(2))
    writer.note("CP2", True, at(2))
    writer.note("CP2", False, at(3))  # replaces the pending connect
    assert await writing
    assert await writer.flush()
    assert (await connected(store, "CP1"), await connected(store, "CP2")) == (False, False)
    station = await store.get_station("CP1")
    assert station is not None and station.last_seen == at(2)


async def test_the_task_keeps_the_order_of_quick_reconnects(store: Store) -> None:
    writer = ConnectionWriter(store)
    writer.start()
    try:
        for _ in range(20):
            writer.note("CP1", True, utcnow())
            await asyncio.sleep(0)
            writer.note("CP1", False, utcnow())
        writer.note("CP2", True, utcnow())
        assert await eventually(lambda: connected(store, "CP2"))
    finally:
        await writer.stop()
    assert await connected(store, "CP1") is False


async def test_a_failed_write_stays_pending_and_a_newer_note_wins(store: Store,
                                                                 settings: Settings) -> None:
    writer = ConnectionWriter(store)
    writer.note("CP1", True, at(1))
    writer.note("CP2", True, at(1))
    await store.close()
    assert await writer.flush() is False  # the store is closed: nothing is lost
    writer.note("CP2", False, at(2))
    reopened = make_store(settings.store)
    await reopened.open()
    try:
        writer.store = reopened
        assert await writer.flush()
        assert (await connected(reopened, "CP1"), await connected(reopened, "CP2")) == \
            (True, False)
    finally:
        await reopened.close()
    await store.open()  # for the fixture's close


async def test_a_clean_stop_writes_what_is_pending(store: Store) -> None:
    writer = ConnectionWriter(store)  # never started: only stop() writes
    writer.note("CP1", True, at(1))
    assert await connected(store, "CP1") is None
    await writer.stop()
    assert await connected(store, "CP1") is True


class WireStore:
    """The real store behind a connection write that, like MongoDB's bulk write once it is
    on a pooled connection, lands even when its caller is cancelled: the write runs in its
    own task, held at its gate (if the test set one) until the test opens it. Records when
    each write starts and ends."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.gates: dict[int, asyncio.Event] = {}
        self.log: list[str] = []
        self.writes: list[asyncio.Task[None]] = []
        self.failing: set[int] = set()  # the writes (by number) that fail, writing nothing

    async def set_connections(self, states: Mapping[str, tuple[bool, datetime]]) -> None:
        n, batch = len(self.writes), dict(states)
        self.log.append(f"start {n}")

        async def write() -> None:
            if n in self.gates:
                await self.gates[n].wait()
            if n in self.failing:
                self.log.append(f"failed {n}")
                raise ConnectionError("the store is away")
            await self.store.set_connections(batch)
            self.log.append(f"end {n}")

        self.writes.append(asyncio.create_task(write()))
        await asyncio.shield(self.writes[-1])


async def settle() -> None:
    """Let every task that can run go as far as it can (no I/O is waited for here)."""
    for _ in range(50):
        await asyncio.sleep(0)


async def test_stop_lets_a_write_in_flight_land_before_the_last_write(store: Store) -> None:
    wire = WireStore(store)
    wire.gates[0] = asyncio.Event()
    writer = ConnectionWriter(wire)  # type: ignore[arg-type]  # only set_connections is used
    writer.start()
    writer.note("CP1", True, at(1))
    writer.note("CP2", True, at(1))
    await eventually(lambda: wire.log)  # the task's first write is in flight, held
    writer.note("CP1", False, at(2))
    writer.note("CP3", True, at(2))
    stopping = asyncio.create_task(writer.stop())
    await settle()  # a stop that cancels the write goes on to its own last write here
    wire.gates[0].set()
    await stopping
    await asyncio.gather(*wire.writes)  # whatever was sent has landed
    assert [await connected(store, sid) for sid in ("CP1", "CP2", "CP3")] == [False, True, True]
    station = await store.get_station("CP1")
    assert station is not None and station.last_seen == at(2)
    assert wire.log == ["start 0", "end 0", "start 1", "end 1"]


async def test_a_write_that_failed_under_the_task_is_written_by_stop(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection_writer, "RETRY_DELAY", 3600.0)  # stop cuts the retry's sleep
    wire = WireStore(store)
    wire.gates[0] = asyncio.Event()
    wire.failing = {0}
    writer = ConnectionWriter(wire)  # type: ignore[arg-type]
    writer.start()
    writer.note("CP1", True, at(1))
    writer.note("CP2", True, at(1))
    await eventually(lambda: wire.log)
    writer.note("CP2", False, at(2))  # noted during the write that fails
    stopping = asyncio.create_task(writer.stop())
    await settle()
    wire.gates[0].set()  # the write in flight fails; the task would retry in an hour
    await stopping
    await asyncio.gather(*wire.writes, return_exceptions=True)
    assert (await connected(store, "CP1"), await connected(store, "CP2")) == (True, False)
    assert wire.log == ["start 0", "failed 0", "start 1", "end 1"]


async def test_shutdown_stores_the_stations_as_disconnected(
        start_server: Callable[..., Any], settings: Settings) -> None:
    server = await start_server(settings)
    url = f"ws://{server.host}:{server.port}/ocpp"
    reader = make_store(settings.store)
    await reader.open()
    try:
        async with station(url, "CP-DOWN") as cp:
            await cp.boot()
            assert await eventually(lambda: connected(reader, "CP-DOWN"))
            await server.close()  # the station is still connected: the server closes it
        assert await connected(reader, "CP-DOWN") is False
    finally:
        await reader.close()
