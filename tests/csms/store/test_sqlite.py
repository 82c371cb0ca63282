"""The store contract on SQLite, plus SQLite-specific behaviour (files, schema, group commit)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio

from csms.domain import LoggedFrame, MeterValue
from csms.station_transactions import TransactionEvent
from csms.store.ports import Store, StoreError
from csms.store.sqlite import _MIGRATIONS, SCHEMA_VERSION, SqliteStore, _statements
from csms.store.sqlite_frames import FRAMES_PAGE_SIZE, FRAMES_SCHEMA_VERSION, frames_path
from csms.store.sqlite_support import WAL_AUTOCHECKPOINT_PAGES, ts
from tests.csms.store.contract import StoreContract, at, energy, frame, grouped, start, stop
from tests.csms.store.report_contract import ReportStoreContract
from tests.support.ports import missing_methods, port_methods


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(str(tmp_path / "csms.db"))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


class TestSqliteStore(StoreContract):
    pass


class TestSqliteReports(ReportStoreContract):
    pass


def test_satisfies_port() -> None:
    store: Store = SqliteStore("unused.db")  # type-checks against the Protocol
    assert len(port_methods(Store)) > 20  # every aggregate's port, not only Store's own
    assert missing_methods(store, Store) == []


async def test_creates_parent_dir_and_wal_schema(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "csms.db"
    store = SqliteStore(str(path))
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


async def test_the_wal_is_checkpointed_every_10000_pages_not_1000(tmp_path: Path) -> None:
    """Round six of issue 15: the writer checkpoints at `WAL_AUTOCHECKPOINT_PAGES`, so a WAL
    past SQLite's default of 1000 pages is still there after the commits that grew it."""
    path = tmp_path / "csms.db"
    store = SqliteStore(str(path))
    await store.open()
    try:
        wide = "9" * 2000  # ~2 values a page: 3,000 values are ~1,500 pages of WAL
        for _ in range(30):
            await store.append_meter_values([
                MeterValue("CP1", 1, None, datetime(2026, 1, 1, tzinfo=UTC), wide,
                           measurand="Power.Active.Import") for _ in range(100)])
        wal_pages = (tmp_path / "csms.db-wal").stat().st_size // (4096 + 24)
        assert 1000 < wal_pages < WAL_AUTOCHECKPOINT_PAGES == 10_000
    finally:
        await store.close()


async def test_data_survives_close_and_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "csms.db")
    store = SqliteStore(path)
    await store.open()
    await store.provision_station("CP1", "hash")
    await store.set_connector_status("CP1", 1, status="Charging", error_code="NoError", at=at(1))
    tx_id = await start(store, "CP1", 1, meter=100)
    await store.append_meter_values([energy(tx_id, "600", at(5))])
    await stop(store, "CP1", tx_id, 700, at(9))
    await stop(store, "CP1", 555, 1, at(9))
    await store.append_frames(grouped([frame("CP1", 1)]), keep=10)
    await store.close()

    reopened = SqliteStore(path)
    await reopened.open()
    try:
        station = await reopened.get_station("CP1")
        assert station is not None and station.provisioned and station.password_hash == "hash"
        assert [c.status for c in station.connectors] == ["Charging"]
        tx = await reopened.get_transaction(tx_id)
        assert tx is not None
        assert (tx.meter_stop, tx.last_energy_wh, tx.energy_wh) == (700, 600, 600)
        assert len(await reopened.list_meter_values(tx_id)) == 1
        assert len(await reopened.list_orphan_stops()) == 1
        assert await reopened.list_frames("CP1") == [frame("CP1", 1)]
        # the counter continues after the reopen
        assert await reopened.next_transaction_id() == tx_id + 1
    finally:
        await reopened.close()


async def test_a_version_2_database_migrates_keeping_its_stations(tmp_path: Path) -> None:
    """Schema 3 adds a station's own security profile; existing stations use the default."""
    path = tmp_path / "csms.db"
    with sqlite3.connect(path) as conn:
        for version in (1, 2):
            conn.executescript(_MIGRATIONS[version])
        conn.execute("PRAGMA user_version = 2")
        conn.execute("INSERT INTO stations (id, password_hash, provisioned) VALUES ('CP1', 'h', 1)")
    store = SqliteStore(str(path))
    await store.open()
    try:
        station = await store.get_station("CP1")
        assert station is not None and station.password_hash == "h"
        assert station.security_profile is None
        assert (await store.provision_station("CP1", None, keep_password=True,
                                              security_profile=3)).security_profile == 3
    finally:
        await store.close()


async def test_schema_7_indexes_meter_values_by_transaction_and_reads_them_in_time_order(
        tmp_path: Path) -> None:
    """A version-6 database keeps its values; they are read by the new index, oldest first,
    whatever order they arrived in."""
    path = tmp_path / "csms.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        for version in range(1, 7):
            for statement in _statements(_MIGRATIONS[version]):
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 6")
        conn.execute("INSERT INTO transactions (transaction_id, station_id, connector_id, id_tag,"
                     " meter_start, started_at) VALUES (7, 'CP1', 1, 'TAG', 0, ?)", (ts(at(0)),))
        conn.executemany("INSERT INTO meter_values (station_id, connector_id, transaction_id,"
                         " timestamp, value) VALUES ('CP1', 1, 7, ?, ?)",
                         [(ts(at(3)), "300"), (ts(at(1)), "100")])
    store = SqliteStore(str(path))
    await store.open()
    try:
        await store.append_meter_values([energy(7, "200", at(2)), energy(7, "400", at(4))])
        values = await store.list_meter_values(7)
        assert [v.value for v in values] == ["100", "200", "300", "400"]
    finally:
        await store.close()
    with closing(sqlite3.connect(path)) as conn:
        indexes = {row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'meter_values'")}
        assert indexes == {"meter_values_by_transaction"}
        plan = " ".join(row[3] for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM meter_values WHERE transaction_id = 7"
            " ORDER BY timestamp, id"))
        assert "meter_values_by_transaction" in plan


async def test_refuses_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "csms.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        await SqliteStore(str(path)).open()


# the frames file before its version 1: no user_version, one row per frame
UNVERSIONED_FRAMES = """
CREATE TABLE frames (station_id TEXT NOT NULL, seq INTEGER NOT NULL, direction TEXT NOT NULL,
                     frame TEXT NOT NULL, at TEXT NOT NULL);
CREATE UNIQUE INDEX frames_by_station ON frames (station_id, seq);
"""


async def test_an_unversioned_frames_file_migrates_keeping_its_frames(tmp_path: Path) -> None:
    """Every frame of the old one-row-per-frame log is shown as before, numbering goes on
    from it, and the file gets its version and FRAMES_PAGE_SIZE."""
    path = str(tmp_path / "csms.db")
    old = [frame("CP1", n, "out" if n % 2 else "in") for n in range(4, 8)]
    old[1] = LoggedFrame("CP1", "in", '[2,"ü😀"]', at(5))
    with closing(sqlite3.connect(frames_path(path))) as conn, conn:
        conn.executescript(UNVERSIONED_FRAMES)
        conn.executemany("INSERT INTO frames VALUES (?, ?, ?, ?, ?)",
                         [(f.station_id, seq, f.direction, f.frame, ts(f.at))
                          for seq, f in enumerate(old, start=4)]
                         + [("CP2", 1, "in", '[2,"x"]', ts(at(1)))])
    store = SqliteStore(path)
    await store.open()
    try:
        assert await store.list_frames("CP1") == old[::-1]
        assert await store.list_frames("CP2") == [LoggedFrame("CP2", "in", '[2,"x"]', at(1))]
        await store.append_frames(grouped([frame("CP1", 8), frame("CP1", 9)]), keep=5)
        newest = [frame("CP1", 9), frame("CP1", 8), *old[::-1][:3]]
        assert await store.list_frames("CP1") == newest
    finally:
        await store.close()
    with closing(sqlite3.connect(frames_path(path))) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == FRAMES_SCHEMA_VERSION
        assert conn.execute("PRAGMA page_size").fetchone()[0] == FRAMES_PAGE_SIZE
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'frames'").fetchall() \
            == []


async def test_refuses_a_newer_frames_file(tmp_path: Path) -> None:
    path = str(tmp_path / "csms.db")
    with closing(sqlite3.connect(frames_path(path))) as conn:
        conn.execute(f"PRAGMA user_version = {FRAMES_SCHEMA_VERSION + 1}")
    before = set(threading.enumerate())
    with pytest.raises(StoreError, match="newer"):
        await SqliteStore(path).open()
    # the connections it had opened are closed: their threads would keep the process alive
    for thread in set(threading.enumerate()) - before:
        thread.join(timeout=5)
        assert not thread.is_alive(), thread


async def test_closed_store_refuses_calls(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "csms.db"))
    with pytest.raises(StoreError):
        await store.next_transaction_id()
    await store.open()
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StoreError):
        await store.get_station("CP1")


async def test_close_drains_queued_writes(tmp_path: Path) -> None:
    path = str(tmp_path / "csms.db")
    store = SqliteStore(path)
    await store.open()
    writes = [asyncio.ensure_future(store.next_transaction_id()) for _ in range(100)]
    await asyncio.sleep(0)
    await store.close()
    assert sorted(await asyncio.gather(*writes)) == list(range(1, 101))


async def test_failing_write_fails_only_itself(store: SqliteStore) -> None:
    """One bad op in a group commit is rolled back to its savepoint; the others commit."""
    tx_id = await start(store)
    bad = MeterValue("CP1", 1, tx_id, at(1), None)  # type: ignore[arg-type]  # NOT NULL value
    good = [store.append_meter_values([energy(tx_id, str(n), at(n))]) for n in range(2, 40)]
    results = await asyncio.gather(
        *good[:20], store.append_meter_values([bad]), *good[20:], return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], StoreError)
    assert len(await store.list_meter_values(tx_id)) == 38
    tx = await store.get_transaction(tx_id)
    assert tx is not None and tx.last_energy_wh == 39


async def test_joined_meter_writes_keep_call_order_and_other_ops_in_place(
        store: SqliteStore) -> None:
    """Consecutive meter-value writes of one group commit run as one executemany: every row is
    stored, each transaction's register moves to its newest reading whatever the call order, and
    a transaction started between two runs of meter writes gets the readings sent after it."""
    first = await start(store, "CP1")
    writes = [store.append_meter_values([energy(first, str(n), at(n))]) for n in (5, 9, 7)]
    later = asyncio.ensure_future(start(store, "CP2"))
    await asyncio.sleep(0)  # queued between the two runs of meter writes
    writes += [store.append_meter_values([energy(first, "3", at(3))])]
    await asyncio.gather(*writes)
    second = await later
    await asyncio.gather(*(store.append_meter_values(
        [energy(second, str(n), at(n), station="CP2"), energy(first, str(n), at(n))])
        for n in (12, 11)))
    assert len(await store.list_meter_values(first)) == 6
    assert len(await store.list_meter_values(second)) == 2
    tx1, tx2 = await store.get_transaction(first), await store.get_transaction(second)
    assert tx1 is not None and tx1.last_energy_wh == 12
    assert tx2 is not None and tx2.last_energy_wh == 12


async def test_concurrent_writes_share_commits(store: SqliteStore) -> None:
    """Many concurrent writes are group-committed: far fewer commits than writes."""
    commits = 0
    writer = store._writer
    assert writer is not None
    original = writer._conn

    def counting(statement: str) -> None:
        nonlocal commits
        if statement.strip().upper() == "COMMIT":
            commits += 1

    await store._in_thread(writer, lambda raw: raw.set_trace_callback(counting))
    await asyncio.gather(*(store.next_transaction_id() for _ in range(300)))
    await store._in_thread(writer, lambda raw: raw.set_trace_callback(None))
    assert original is writer._conn
    assert 1 <= commits < 30


async def test_a_version_3_database_migrates_keeping_its_transactions(tmp_path: Path) -> None:
    """Schema 4 rebuilds transactions for OCPP 2.0.1: a 1.6 transaction keeps its id, its
    readings and its retry key."""
    path = tmp_path / "csms.db"
    with sqlite3.connect(path) as conn:
        for version in (1, 2, 3):
            for statement in _statements(_MIGRATIONS[version]):
                conn.execute(statement)
        conn.execute("PRAGMA user_version = 3")
        conn.execute("INSERT INTO transactions (transaction_id, station_id, connector_id, id_tag,"
                     " meter_start, started_at, last_energy_wh) VALUES"
                     " (7, 'CP1', 1, 'TAG', 100, '2026-03-01T10:00:00.000000+00:00', 350)")
        conn.execute("UPDATE counters SET value = 7 WHERE name = 'transaction_id'")
    store = SqliteStore(str(path))
    await store.open()
    try:
        tx = await store.get_transaction(7)
        assert tx is not None and (tx.ocpp_version, tx.station_transaction_id, tx.energy_wh) \
            == ("1.6", None, 250)
        again = await store.open_transaction(
            "CP1", 1, "TAG", 100, datetime(2026, 3, 1, 10, tzinfo=UTC))
        assert (again.transaction.transaction_id, again.created) == (7, False)
    finally:
        await store.close()


async def test_seq_nos_schema_4_kept_one_by_one_read_as_ranges(store: SqliteStore) -> None:
    """Schema 4 first stored each seqNo received; they read as ranges and go on from there."""
    await store.record_event(_event("Started", 0))
    await store._write(lambda conn: conn.execute(
        "UPDATE transactions SET seq_nos = '[0, 1, 2, 5]' WHERE station_transaction_id = 'T'"))
    assert (await store.record_event(_event("Updated", 2))).duplicate
    later = await store.record_event(_event("Updated", 3))
    assert later.transaction.seq_nos == [[0, 3], [5, 5]]


def _event(event_type: str, seq_no: int) -> TransactionEvent:
    return TransactionEvent(station_id="CP1", station_transaction_id="T", ocpp_version="2.0.1",
                            event_type=event_type, seq_no=seq_no, timestamp=at(seq_no),
                            connector_id=1, id_tag=None)
