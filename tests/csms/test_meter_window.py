"""The meter commit window (`csms.meter_window`) on a real SQLite store.

Values acknowledged before their commit are written within the window; every transaction read
and write sees them first; a failed write is kept, retried and written once; closing writes
the rest. Failures are real ones: a trigger makes SQLite refuse the insert. "Committed" is
read from the database file by another connection, as a restart after a crash would see it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from csms import meter_window
from csms.charging import ChargingService
from csms.domain import MeterValue
from csms.events import ChargingListener, MeterSample, TransactionStopped
from csms.meter_window import MeterWindow, WindowedStore, with_meter_window
from csms.settings import OcppSettings
from csms.store import Store, StoreError
from csms.store.sqlite import SqliteStore
from tests.csms.store.contract import T0, StoreContract, at, energy, start, stop
from tests.support.wait import eventually

LONG = 3600.0  # a window the flusher never reaches in a test: only flushes write


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "csms.db")


@pytest_asyncio.fixture
async def store(path: str) -> AsyncIterator[WindowedStore]:
    """A windowed store that writes only when something flushes (also runs the contract)."""
    store = WindowedStore(SqliteStore(path), LONG)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


class TestWindowedSqliteStore(StoreContract):
    """Every read and write of the store port sees the pending values: the whole contract
    holds with a window no test reaches."""


def committed(path: str) -> list[tuple[int | None, str]]:
    """(transaction id, value) of every committed row, in insertion order."""
    with sqlite3.connect(path) as db:
        return db.execute("SELECT transaction_id, value FROM meter_values ORDER BY rowid"
                          ).fetchall()


@pytest.fixture
def refusing(path: str) -> Iterator[RefuseInserts]:
    refuse = RefuseInserts(path)
    try:
        yield refuse
    finally:
        refuse.off()


class RefuseInserts:
    """SQLite itself refuses every meter-value insert while on (a trigger), as a full disk or
    a broken file would refuse it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on(self) -> None:
        with sqlite3.connect(self.path) as db:
            db.execute("CREATE TRIGGER IF NOT EXISTS refuse BEFORE INSERT ON meter_values "
                       "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")

    def off(self) -> None:
        with sqlite3.connect(self.path) as db:
            db.execute("DROP TRIGGER IF EXISTS refuse")


def frame(tx: int | None, *values: int) -> list[MeterValue]:
    return [energy(tx, str(v), at(v)) for v in values]


async def test_a_zero_window_is_the_store_itself(path: str) -> None:
    plain = SqliteStore(path)
    assert with_meter_window(plain, 0) is plain
    assert isinstance(with_meter_window(plain, 0.02), WindowedStore)


async def test_values_wait_for_the_window_and_go_in_one_write(path: str) -> None:
    store = WindowedStore(SqliteStore(path), 0.05)
    await store.open()
    try:
        tx = await start(store)
        for n in (1, 2, 3):
            await store.append_meter_values(frame(tx, n, n + 10))
        assert committed(path) == []  # acknowledged, not written yet
        assert store.meter_window.pending == 6
        await eventually(lambda: committed(path), lambda rows: len(rows) == 6)
        assert committed(path) == [(tx, v) for v in ("1", "11", "2", "12", "3", "13")]
        assert store.meter_window.pending == 0
    finally:
        await store.close()


async def test_reads_and_stops_write_the_pending_values_first(store: WindowedStore,
                                                              path: str) -> None:
    tx = await start(store, meter=100)
    await store.append_meter_values(frame(tx, 500))
    assert committed(path) == []
    found = await store.get_transaction(tx)
    assert found is not None and found.last_energy_wh == 500  # the stored register moved
    assert committed(path) == [(tx, "500")]
    await store.append_meter_values(frame(tx, 650))
    stopped, _ = await stop(store, "CP1", tx, 700, at(900))
    assert stopped is not None and stopped.last_energy_wh == 650
    assert committed(path) == [(tx, "500"), (tx, "650")]  # written before the stop


async def test_a_start_supersedes_at_the_pending_register(store: WindowedStore,
                                                           path: str) -> None:
    tx = await start(store, meter=100)
    await store.append_meter_values(frame(tx, 500))
    opened = await store.open_transaction("CP1", 1, "NEXT", 600, at(900))
    [older] = opened.superseded
    assert (older.transaction_id, older.meter_stop) == (tx, 500)  # the value was written first
    assert committed(path) == [(tx, "500")]


class Recorder(ChargingListener):
    def __init__(self) -> None:
        self.heard: list[object] = []

    async def meter_sample(self, event: MeterSample) -> None:
        self.heard.append(event)

    async def transaction_stopped(self, event: TransactionStopped) -> None:
        self.heard.append(event)


async def charge(store: Store) -> tuple[list[object], list[MeterValue], object]:
    """One transaction through the charging service; what billing heard and what is stored."""
    recorder = Recorder()
    service = ChargingService(store, OcppSettings(), [recorder])
    tx, _ = await service.start_transaction("CP1", connector_id=1, id_tag="TAG",
                                            meter_start=1000, timestamp=T0,
                                            reservation_id=None)
    tid = tx.transaction_id
    # the reading at 4 s arrives after the one at 5 s: it must not move the register back
    for seconds, wh in ((1, 1400), (2, 1900), (3, 1700), (5, 2600), (4, 1500)):
        await service.meter_values("CP1", connector_id=1, transaction_id=tid,
                                   values=[energy(None, str(wh), at(seconds))])
    await service.stop_transaction("CP1", transaction_id=tid, meter_stop=2700,
                                   timestamp=at(9), reason="Local", id_tag=None,
                                   transaction_data=[energy(None, "2700", at(9))])
    return recorder.heard, await store.list_meter_values(tid), await store.get_transaction(tid)


async def test_billing_hears_and_the_store_keeps_the_same_as_without_a_window(
        tmp_path: Path) -> None:
    plain = SqliteStore(str(tmp_path / "plain.db"))
    windowed = WindowedStore(SqliteStore(str(tmp_path / "windowed.db")), LONG)
    outcomes = []
    for store in (plain, windowed):
        await store.open()
        try:
            outcomes.append(await charge(store))
        finally:
            await store.close()
    assert outcomes[0] == outcomes[1]
    heard, values, tx = outcomes[1]
    assert [e.energy_wh for e in heard] == [400, 900, 700, 1600, 1600, 1700]  # type: ignore
    assert len(values) == 6 and tx.last_energy_wh == 2700  # type: ignore


async def test_the_stored_register_is_the_one_billing_heard_when_frames_share_a_time(
        tmp_path: Path) -> None:
    """Two frames whose registers carry the same time (a station's Sample.Clock and
    Sample.Periodic readings on one second): the charging service's copy keeps the first (a
    reading moves it only when strictly newer), and so must the register the window writes
    for both frames in one call; else billing's running cost and the stored register (a
    supersede's meterStop, the operator API's energyWh) disagree."""
    for store in (SqliteStore(str(tmp_path / "plain.db")),
                  WindowedStore(SqliteStore(str(tmp_path / "windowed.db")), LONG)):
        await store.open()
        try:
            recorder = Recorder()
            service = ChargingService(store, OcppSettings(), [recorder])
            tx, _ = await service.start_transaction("CP1", connector_id=1, id_tag="TAG",
                                                    meter_start=1000, timestamp=T0,
                                                    reservation_id=None)
            for wh in (1500, 1600):
                await service.meter_values("CP1", connector_id=1,
                                           transaction_id=tx.transaction_id,
                                           values=[energy(None, str(wh), at(5))])
            stored = await store.get_transaction(tx.transaction_id)
            heard = recorder.heard[-1]
            assert isinstance(heard, MeterSample) and heard.energy_wh == 500
            assert stored is not None and stored.energy_wh == heard.energy_wh, type(store)
        finally:
            await store.close()


async def test_a_failed_write_is_kept_and_written_once_when_the_store_is_back(
        store: WindowedStore, path: str, refusing: RefuseInserts) -> None:
    tx = await start(store)
    refusing.on()
    await store.append_meter_values(frame(tx, 1, 2))
    with pytest.raises(StoreError):
        await store.meter_window.flush()
    with pytest.raises(StoreError):  # a read does not see a store without them
        await store.get_transaction(tx)
    await store.append_meter_values(frame(tx, 3))
    assert store.meter_window.pending == 3
    refusing.off()
    found = await store.get_transaction(tx)
    assert found is not None and found.last_energy_wh == 3
    assert committed(path) == [(tx, "1"), (tx, "2"), (tx, "3")]  # in order, each once


async def test_a_failed_write_keeps_its_register_ahead_of_later_frames(
        store: WindowedStore, refusing: RefuseInserts) -> None:
    """The kept values' register stays the earlier call's: a frame appended while the store
    failed, with a reading at the same time, leaves it (as without a window)."""
    tx = await start(store, meter=0)
    refusing.on()
    await store.append_meter_values([energy(tx, "1500", at(5))])
    with pytest.raises(StoreError):
        await store.meter_window.flush()
    await store.append_meter_values([energy(tx, "1600", at(5)), energy(tx, "1400", at(4))])
    refusing.off()
    found = await store.get_transaction(tx)
    assert found is not None and (found.last_energy_wh, found.last_energy_at) == (1500, at(5))


async def test_the_flusher_retries_on_its_own(path: str, refusing: RefuseInserts,
                                              caplog: pytest.LogCaptureFixture) -> None:
    store = WindowedStore(SqliteStore(path), 0.02)
    await store.open()
    try:
        tx = await start(store)
        refusing.on()
        await store.append_meter_values(frame(tx, 1))
        await eventually(lambda: store.meter_window.failures, lambda n: n >= 2)
        assert "writing 1 meter values failed" in caplog.text
        refusing.off()
        await store.append_meter_values(frame(tx, 2))
        await eventually(lambda: committed(path), lambda rows: len(rows) == 2, timeout=15)
        assert committed(path) == [(tx, "1"), (tx, "2")]
        assert (store.meter_window.failures, store.meter_window.pending) == (0, 0)
    finally:
        await store.close()


async def test_a_cancelled_reader_leaves_the_write_to_finish_once(store: WindowedStore,
                                                                  path: str) -> None:
    tx = await start(store)
    await store.append_meter_values(frame(tx, *range(1, 51)))
    reader = asyncio.create_task(store.get_transaction(tx))
    await asyncio.sleep(0)  # the reader started the write
    reader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    await store.meter_window.flush()
    assert len(committed(path)) == 50


async def test_a_full_buffer_makes_the_next_frame_wait_for_the_store(
        path: str, refusing: RefuseInserts) -> None:
    raw = SqliteStore(path)
    await raw.open()
    try:
        window = MeterWindow(raw, LONG, max_pending=4)
        tx = await start(raw)
        refusing.on()
        await window.append(frame(tx, 1, 2))
        await window.append(frame(tx, 3, 4))
        with pytest.raises(StoreError):  # not acknowledged, so not kept either
            await window.append(frame(tx, 5, 6))
        assert window.pending == 4
        refusing.off()
        await window.append(frame(tx, 5, 6))  # the station's resend: waits, then is kept
        assert committed(path) == [(tx, str(n)) for n in (1, 2, 3, 4)]
        await window.flush()
        assert committed(path) == [(tx, str(n)) for n in range(1, 7)]
    finally:
        await raw.close()


async def test_closing_writes_what_is_pending(path: str) -> None:
    store = WindowedStore(SqliteStore(path), LONG)
    await store.open()
    tx = await start(store)
    await store.append_meter_values(frame(tx, 1, 2))
    await store.append_meter_values(frame(None, 3))
    await store.close()
    assert committed(path) == [(tx, "1"), (tx, "2"), (None, "3")]


async def test_closing_on_a_refusing_store_logs_every_value_it_could_not_write(
        path: str, refusing: RefuseInserts, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(meter_window, "STOP_RETRY_DELAY", 0)
    store = WindowedStore(SqliteStore(path), LONG)
    await store.open()
    tx = await start(store)
    refusing.on()
    await store.append_meter_values(frame(tx, 41, 42))
    with caplog.at_level(logging.ERROR, logger="csms.meter_window"):
        await store.close()
    assert "2 acknowledged meter values could not be stored" in caplog.text
    lost = [r.getMessage() for r in caplog.records if "not stored:" in r.getMessage()]
    assert len(lost) == 2 and "value='41'" in lost[0] and "value='42'" in lost[1]
    assert committed(path) == []
