"""Heartbeats' last-seen times are written in batches (a documented window), never lost on a
clean stop, and never written over a later connect or disconnect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest_asyncio

from csms.charging import ChargingService
from csms.settings import OcppSettings
from csms.store.sqlite import SqliteStore


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(str(tmp_path / "csms.db"))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def last_seen(store: SqliteStore, station_id: str) -> datetime | None:
    station = await store.get_station(station_id)
    assert station is not None
    return station.last_seen


async def connect(service: ChargingService, station_id: str) -> None:
    """A station connects, and its connect is written (`csms.connection_writer`)."""
    await service.connected(station_id)
    await service.connections.flush()


async def test_heartbeats_are_written_with_the_next_batch(store: SqliteStore) -> None:
    service = ChargingService(store, OcppSettings(last_seen_interval=3600))
    await connect(service, "CP1")
    connected_at = await last_seen(store, "CP1")
    await service.heartbeat("CP1")
    assert await last_seen(store, "CP1") == connected_at  # noted, not written yet
    await service.last_seen.flush()
    written = await last_seen(store, "CP1")
    assert written is not None and connected_at is not None and written > connected_at


async def test_a_clean_stop_writes_what_is_pending(store: SqliteStore) -> None:
    service = ChargingService(store, OcppSettings(last_seen_interval=3600))
    await connect(service, "CP1")
    service.last_seen.start()
    await service.heartbeat("CP1")
    before = await last_seen(store, "CP1")
    await service.last_seen.stop()
    after = await last_seen(store, "CP1")
    assert after is not None and before is not None and after > before


async def test_a_disconnect_is_not_overwritten_by_an_older_heartbeat(store: SqliteStore) -> None:
    service = ChargingService(store, OcppSettings(last_seen_interval=3600))
    await connect(service, "CP1")
    await service.heartbeat("CP1")
    await service.disconnected("CP1")
    await service.connections.flush()
    disconnected_at = await last_seen(store, "CP1")
    await service.last_seen.flush()
    assert await last_seen(store, "CP1") == disconnected_at


async def test_interval_zero_writes_every_heartbeat(store: SqliteStore) -> None:
    service = ChargingService(store, OcppSettings(last_seen_interval=0))
    await connect(service, "CP1")
    before = await last_seen(store, "CP1")
    await service.heartbeat("CP1")
    after = await last_seen(store, "CP1")
    assert after is not None and before is not None and after > before
