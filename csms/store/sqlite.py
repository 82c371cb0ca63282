"""SQLite adapter of the store port (the embedded default), on aiosqlite.

Writes go through a group-commit writer: every write is a plain synchronous function of a
`sqlite3.Connection`, queued with a future. One writer task takes everything queued, runs it in the
writer connection's thread inside ONE `BEGIN IMMEDIATE` transaction (each op in its own SAVEPOINT,
so a failing op fails only its own caller), commits once and then resolves the futures. A caller
still returns only once its write is durable, but a burst of concurrent writes costs one commit and
one thread round trip. Reads use a second connection (WAL lets it read while the writer writes).

Datetimes are stored as fixed-width ISO-8601 UTC text (microseconds, `+00:00`), so text order is
time order and SQL can compare them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from csms.domain import (
    SUPERSEDED,
    Connector,
    IdTag,
    MeterValue,
    NewestEnergy,
    OrphanStop,
    Station,
    Transaction,
    newest_energy,
    utcnow,
)
from csms.station_transactions import (
    EventOutcome,
    TransactionEvent,
    apply_event,
    new_transaction,
    next_generation,
    seq_ranges,
    supersedes,
    tags_to_read,
)
from csms.store.ports import KEEP, Keep, StartOutcome, StoreError
from csms.store.sqlite_frames import SqliteFrames, frames_path, prepare_frames_file
from csms.store.sqlite_remote_starts import REMOTE_STARTS_SCHEMA, SqliteRemoteStarts
from csms.store.sqlite_reports import REPORTS_SCHEMA, SqliteReports
from csms.store.sqlite_support import (
    connect,
    dt,
    dt_req,
    in_thread,
    ts,
    ts_opt,
    write_transaction,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]

SCHEMA_VERSION = 7
MAX_BATCH = 2000  # ops per group commit; bounds one transaction's size and latency

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS stations (
    id               TEXT PRIMARY KEY,
    password_hash    TEXT,
    vendor           TEXT,
    model            TEXT,
    serial_number    TEXT,
    firmware_version TEXT,
    connected        INTEGER NOT NULL DEFAULT 0,
    last_seen        TEXT,
    last_boot_at     TEXT,
    provisioned      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS connectors (
    station_id        TEXT NOT NULL REFERENCES stations(id) ON DELETE CASCADE,
    connector_id      INTEGER NOT NULL,
    status            TEXT NOT NULL,
    error_code        TEXT NOT NULL,
    info              TEXT,
    vendor_error_code TEXT,
    updated_at        TEXT,
    PRIMARY KEY (station_id, connector_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS id_tags (
    id_tag        TEXT PRIMARY KEY,
    status        TEXT NOT NULL,
    expiry_date   TEXT,
    parent_id_tag TEXT
);
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO counters (name, value) VALUES ('transaction_id', 0);
CREATE TABLE IF NOT EXISTS transactions (
    transaction_id INTEGER PRIMARY KEY,
    station_id     TEXT NOT NULL,
    connector_id   INTEGER NOT NULL,
    id_tag         TEXT NOT NULL,
    meter_start    INTEGER NOT NULL,
    started_at     TEXT NOT NULL,
    reservation_id INTEGER,
    meter_stop     INTEGER,
    stopped_at     TEXT,
    stop_reason    TEXT,
    stop_id_tag    TEXT,
    last_energy_wh INTEGER,
    last_energy_at TEXT,
    session_id     TEXT,
    UNIQUE (station_id, connector_id, id_tag, meter_start, started_at)
);
CREATE INDEX IF NOT EXISTS transactions_station
    ON transactions (station_id, transaction_id);
CREATE INDEX IF NOT EXISTS transactions_active
    ON transactions (station_id, connector_id) WHERE stopped_at IS NULL;
CREATE TABLE IF NOT EXISTS orphan_stops (
    id             INTEGER PRIMARY KEY,
    station_id     TEXT NOT NULL,
    transaction_id INTEGER NOT NULL,
    meter_stop     INTEGER NOT NULL,
    stopped_at     TEXT NOT NULL,
    reason         TEXT,
    id_tag         TEXT,
    received_at    TEXT NOT NULL,
    UNIQUE (station_id, transaction_id, meter_stop, stopped_at)
);
CREATE TABLE IF NOT EXISTS meter_values (
    id             INTEGER PRIMARY KEY,
    station_id     TEXT NOT NULL,
    connector_id   INTEGER NOT NULL,
    transaction_id INTEGER,
    timestamp      TEXT NOT NULL,
    value          TEXT NOT NULL,
    measurand      TEXT,
    unit           TEXT,
    context        TEXT,
    phase          TEXT,
    location       TEXT,
    format         TEXT
);
CREATE INDEX IF NOT EXISTS meter_values_transaction
    ON meter_values (transaction_id, timestamp);
-- seq is a per-station sequence; a station's rows always form one contiguous seq range, so
-- trimming to the newest `keep` is one index range delete.
"""

# user_version -> script bringing the schema to that version
# 2: billing keeps its own transaction -> session mapping; the core knows no money.
_SCHEMA_V2 = "ALTER TABLE transactions DROP COLUMN session_id;"
# 3: a station may carry its own security profile (NULL: the server's ocpp.security_profile).
_SCHEMA_V3 = ("ALTER TABLE stations ADD COLUMN security_profile INTEGER"
              " CHECK (security_profile IN (1, 2, 3));")
# 4: OCPP 2.0.1 transactions: the station's own transaction id (unique per station), the
# version, the remoteStartId, the seqNos received and the time of the meterStart reading. The
# table is rebuilt because 1.6's retry key (a table UNIQUE) must not bind 2.0.1 transactions:
# it becomes a partial index over 1.6 rows only.
_SCHEMA_V4 = """
CREATE TABLE transactions_v4 (
    transaction_id         INTEGER PRIMARY KEY,
    station_id             TEXT NOT NULL,
    connector_id           INTEGER NOT NULL,
    id_tag                 TEXT NOT NULL,
    meter_start            INTEGER NOT NULL,
    started_at             TEXT NOT NULL,
    reservation_id         INTEGER,
    meter_stop             INTEGER,
    stopped_at             TEXT,
    stop_reason            TEXT,
    stop_id_tag            TEXT,
    last_energy_wh         INTEGER,
    last_energy_at         TEXT,
    ocpp_version           TEXT NOT NULL DEFAULT '1.6',
    station_transaction_id TEXT,
    remote_start_id        INTEGER,
    seq_nos                TEXT NOT NULL DEFAULT '[]',
    first_energy_at        TEXT
);
INSERT INTO transactions_v4 (transaction_id, station_id, connector_id, id_tag, meter_start,
    started_at, reservation_id, meter_stop, stopped_at, stop_reason, stop_id_tag,
    last_energy_wh, last_energy_at)
SELECT transaction_id, station_id, connector_id, id_tag, meter_start, started_at,
    reservation_id, meter_stop, stopped_at, stop_reason, stop_id_tag, last_energy_wh,
    last_energy_at FROM transactions;
DROP TABLE transactions;
ALTER TABLE transactions_v4 RENAME TO transactions;
CREATE UNIQUE INDEX transactions_start_key
    ON transactions (station_id, connector_id, id_tag, meter_start, started_at)
    WHERE station_transaction_id IS NULL;
CREATE UNIQUE INDEX transactions_station_key
    ON transactions (station_id, station_transaction_id)
    WHERE station_transaction_id IS NOT NULL;
CREATE INDEX transactions_station ON transactions (station_id, transaction_id);
CREATE INDEX transactions_active
    ON transactions (station_id, connector_id) WHERE stopped_at IS NULL;
"""
# 5: device-model reports (csms.store.sqlite_reports), from branch f-201cmd.
# 6 (branch f-201more): remote starts awaiting their 2.0.1 transaction
# (csms.store.sqlite_remote_starts), and the generation of a 2.0.1 transaction whose id its
# station reused: (station, station transaction id) is unique per generation.
_SCHEMA_V6 = REMOTE_STARTS_SCHEMA + """
ALTER TABLE transactions ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
DROP INDEX transactions_station_key;
CREATE UNIQUE INDEX transactions_station_key
    ON transactions (station_id, station_transaction_id, generation)
    WHERE station_transaction_id IS NOT NULL;
"""
# 7 (issue 15): meter values indexed by transaction alone. Stations' values arrive interleaved,
# so every insert lands at a random place in this index, and its (transaction_id, timestamp)
# keys made it about 40% of a busy hub's meter-value write (6 of 15 us of CPU per MeterValues
# frame, measured with 1000 open transactions); keyed by transaction alone it costs about half
# that. A transaction's values (hundreds, a few thousand) are sorted when read.
_SCHEMA_V7 = """
DROP INDEX IF EXISTS meter_values_transaction;
CREATE INDEX meter_values_by_transaction ON meter_values (transaction_id);
"""
_MIGRATIONS: dict[int, str] = {1: _SCHEMA_V1, 2: _SCHEMA_V2, 3: _SCHEMA_V3, 4: _SCHEMA_V4,
                               5: REPORTS_SCHEMA, 6: _SCHEMA_V6, 7: _SCHEMA_V7}


# conversions ------------------------------------------------------------------------------------


_STATION_COLUMNS = (
    "id, password_hash, vendor, model, serial_number, firmware_version, connected, last_seen,"
    " last_boot_at, provisioned, security_profile"
)
_CONNECTOR_COLUMNS = (
    "station_id, connector_id, status, error_code, info, vendor_error_code, updated_at"
)
_TX_COLUMNS = (
    "transaction_id, station_id, connector_id, id_tag, meter_start, started_at, reservation_id,"
    " meter_stop, stopped_at, stop_reason, stop_id_tag, last_energy_wh, last_energy_at,"
    " ocpp_version, station_transaction_id, remote_start_id, seq_nos, first_energy_at,"
    " generation"
)
_MV_COLUMNS = (
    "station_id, connector_id, transaction_id, timestamp, value, measurand, unit, context, phase,"
    " location, format"
)


def _connector(row: sqlite3.Row) -> Connector:
    return Connector(
        connector_id=row["connector_id"],
        status=row["status"],
        error_code=row["error_code"],
        info=row["info"],
        vendor_error_code=row["vendor_error_code"],
        updated_at=dt(row["updated_at"]),
    )


def _station(row: sqlite3.Row, connectors: list[Connector]) -> Station:
    return Station(
        id=row["id"],
        password_hash=row["password_hash"],
        vendor=row["vendor"],
        model=row["model"],
        serial_number=row["serial_number"],
        firmware_version=row["firmware_version"],
        connected=bool(row["connected"]),
        last_seen=dt(row["last_seen"]),
        last_boot_at=dt(row["last_boot_at"]),
        provisioned=bool(row["provisioned"]),
        connectors=connectors,
        security_profile=row["security_profile"],
    )


def _transaction(row: sqlite3.Row) -> Transaction:
    return Transaction(
        transaction_id=row["transaction_id"],
        station_id=row["station_id"],
        connector_id=row["connector_id"],
        id_tag=row["id_tag"],
        meter_start=row["meter_start"],
        started_at=dt_req(row["started_at"]),
        reservation_id=row["reservation_id"],
        meter_stop=row["meter_stop"],
        stopped_at=dt(row["stopped_at"]),
        stop_reason=row["stop_reason"],
        stop_id_tag=row["stop_id_tag"],
        last_energy_wh=row["last_energy_wh"],
        last_energy_at=dt(row["last_energy_at"]),
        ocpp_version=row["ocpp_version"],
        station_transaction_id=row["station_transaction_id"],
        remote_start_id=row["remote_start_id"],
        seq_nos=seq_ranges(json.loads(row["seq_nos"])),
        first_energy_at=dt(row["first_energy_at"]),
        generation=row["generation"],
    )


def _id_tag(row: sqlite3.Row) -> IdTag:
    return IdTag(
        id_tag=row["id_tag"],
        status=row["status"],
        expiry_date=dt(row["expiry_date"]),
        parent_id_tag=row["parent_id_tag"],
    )


# synchronous queries (run in a connection's thread) ------------------------------------------


def _load_station(conn: sqlite3.Connection, station_id: str) -> Station | None:
    row = conn.execute(
        f"SELECT {_STATION_COLUMNS} FROM stations WHERE id = ?", (station_id,)
    ).fetchone()
    if row is None:
        return None
    connectors = [
        _connector(c)
        for c in conn.execute(
            f"SELECT {_CONNECTOR_COLUMNS} FROM connectors WHERE station_id = ?"
            " ORDER BY connector_id",
            (station_id,),
        )
    ]
    return _station(row, connectors)


def _load_transaction(conn: sqlite3.Connection, transaction_id: int) -> Transaction | None:
    row = conn.execute(
        f"SELECT {_TX_COLUMNS} FROM transactions WHERE transaction_id = ?", (transaction_id,)
    ).fetchone()
    return None if row is None else _transaction(row)


def _load_station_transaction(conn: sqlite3.Connection, station_id: str,
                              station_transaction_id: str) -> Transaction | None:
    row = conn.execute(
        f"SELECT {_TX_COLUMNS} FROM transactions WHERE station_id = ?"
        " AND station_transaction_id = ? ORDER BY generation DESC LIMIT 1",
        (station_id, station_transaction_id)
    ).fetchone()
    return None if row is None else _transaction(row)


def _ensure_station(conn: sqlite3.Connection, station_id: str) -> None:
    conn.execute("INSERT OR IGNORE INTO stations (id) VALUES (?)", (station_id,))


def _allocate_transaction_id(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "UPDATE counters SET value = value + 1 WHERE name = 'transaction_id' RETURNING value"
    ).fetchone()
    return int(row[0])


def _start_transaction(conn: sqlite3.Connection, key: tuple[Any, ...],
                       reservation_id: int | None) -> tuple[Transaction, bool]:
    """A 1.6 start under its retry key (station, connector, idTag, meterStart, startedAt as
    text): (the retried start's transaction, False), or (a new transaction, True)."""
    row = conn.execute(
        f"SELECT {_TX_COLUMNS} FROM transactions WHERE station_id = ?"
        " AND connector_id = ? AND id_tag = ? AND meter_start = ? AND started_at = ?"
        " AND station_transaction_id IS NULL",
        key,
    ).fetchone()
    if row is not None:
        return _transaction(row), False
    transaction_id = _allocate_transaction_id(conn)
    row = conn.execute(
        "INSERT INTO transactions (transaction_id, station_id, connector_id, id_tag,"
        " meter_start, started_at, reservation_id) VALUES (?, ?, ?, ?, ?, ?, ?)"
        f" RETURNING {_TX_COLUMNS}",
        (transaction_id, *key, reservation_id),
    ).fetchone()
    return _transaction(row), True


def _supersede_transactions(conn: sqlite3.Connection, newer: Transaction) -> list[Transaction]:
    """Stop every other active transaction on `newer`'s connector as `open_transaction`
    describes; returns them."""
    others = [_transaction(row) for row in conn.execute(
        f"SELECT {_TX_COLUMNS} FROM transactions WHERE station_id = ?"
        " AND connector_id = ? AND stopped_at IS NULL AND transaction_id != ?",
        (newer.station_id, newer.connector_id, newer.transaction_id),
    )]
    ended_by = newer.started_at
    stopped = []
    for tx in others:
        row = conn.execute(
            "UPDATE transactions SET meter_stop = ?, stopped_at = ?, stop_reason = ?"
            f" WHERE transaction_id = ? AND stopped_at IS NULL RETURNING {_TX_COLUMNS}",
            (max(tx.meter_start, tx.last_energy_wh or tx.meter_start),
             ts(max(ended_by, tx.started_at)), SUPERSEDED, tx.transaction_id),
        ).fetchone()
        stopped.append(_transaction(row))
    return stopped


def _load_id_tag(conn: sqlite3.Connection, id_tag: str) -> IdTag | None:
    row = conn.execute(
        "SELECT id_tag, status, expiry_date, parent_id_tag FROM id_tags WHERE id_tag = ?",
        (id_tag,),
    ).fetchone()
    return None if row is None else _id_tag(row)


class _MeterValuesWrite:
    """The op of `append_meter_values`: a group commit runs consecutive ones as one op, one
    executemany per statement for the whole run instead of two per call (the closed loop's
    batches are runs of hundreds of these). Its own `__call__` runs it alone, which is what the
    savepoint path does when a run failed, so a bad call still fails alone."""

    __slots__ = ("rows", "updates")

    def __init__(self, rows: list[tuple[Any, ...]], updates: list[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.updates = updates

    def __call__(self, conn: sqlite3.Connection) -> None:
        _insert_meter_values(conn, self.rows, self.updates)


def _coalesced(ops: Sequence[Op]) -> list[tuple[Op, int]]:
    """The ops to run, in order, each with how many of `ops` it stands for: consecutive
    meter-value writes are joined (order kept: rows and register updates run in call order, and
    no other op is moved across them)."""
    runs: list[tuple[Op, int]] = []
    joined: _MeterValuesWrite | None = None
    for op in ops:
        if not isinstance(op, _MeterValuesWrite):
            joined = None
            runs.append((op, 1))
        elif joined is None:
            joined = _MeterValuesWrite(list(op.rows), list(op.updates))
            runs.append((joined, 1))
        else:
            joined.rows.extend(op.rows)
            joined.updates.extend(op.updates)
            runs[-1] = (joined, runs[-1][1] + 1)
    return runs


class _OpFailed(Exception):
    """An op of an optimistic batch failed: the batch is rolled back and run with savepoints."""


def _run_batch(conn: sqlite3.Connection, ops: Sequence[Op]) -> list[tuple[bool, Any]]:
    """Run ops in one transaction and commit once; an op that fails fails alone.

    Optimistic first: the ops run without savepoints (three statements less per op, about a
    third of a one-statement op's cost). If one raises, that whole transaction is rolled back
    (an op may have half-run) and the batch runs again with a savepoint per op, so the failing op
    is undone alone. Ops are functions of the connection only, so running one again after a
    rollback is safe.

    Returns (ok, result-or-exception) per op. Raises if BEGIN or COMMIT fails (then nothing of
    the batch is durable).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        results = []
        for op, count in _coalesced(ops):
            try:
                result = op(conn)
            except Exception as exc:
                raise _OpFailed from exc
            results.extend([result] * count)
        conn.execute("COMMIT")
        return [(True, result) for result in results]
    except _OpFailed as failed:
        conn.rollback()
        if len(ops) == 1:
            return [(False, failed.__cause__)]
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    return _run_batch_savepoints(conn, ops)


def _run_batch_savepoints(conn: sqlite3.Connection, ops: Sequence[Op],
                          ) -> list[tuple[bool, Any]]:
    """`_run_batch` with each op in its own savepoint (ROLLBACK TO undoes a failed one)."""
    outcomes: list[tuple[bool, Any]] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for op in ops:
            conn.execute("SAVEPOINT op")
            try:
                result = op(conn)
            except Exception as exc:
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
                outcomes.append((False, exc))
            else:
                conn.execute("RELEASE op")
                outcomes.append((True, result))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    return outcomes


def _read_snapshot(conn: sqlite3.Connection, op: Op) -> Any:
    """Run a read in one read transaction, so multi-statement reads see one snapshot."""
    conn.execute("BEGIN")
    try:
        return op(conn)
    finally:
        conn.execute("COMMIT")


def _store_error(exc: BaseException) -> BaseException:
    if isinstance(exc, sqlite3.Error):
        error = StoreError(f"sqlite: {exc}")
        error.__cause__ = exc
        return error
    return exc


class SqliteStore(SqliteReports, SqliteRemoteStarts, SqliteFrames):
    """`Store` on a SQLite file, WAL mode, group-committed writes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._queue: asyncio.Queue[tuple[Op, asyncio.Future[Any]] | None] | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._closing = False
        self._frames: aiosqlite.Connection | None = None  # the message log's own file
        self._frame_tops: dict[str, tuple[int, int]] = {}  # station -> (newest seq, since)
        self._frame_bytes: int | None = None  # bytes of frames in the log, once known

    # plumbing ---------------------------------------------------------------------------------

    _in_thread = staticmethod(in_thread)

    async def _connect(self, *, query_only: bool, path: str | None = None,
                       ) -> aiosqlite.Connection:
        return await connect(path or self.path, query_only=query_only)

    async def open(self) -> None:
        if self._writer is not None:
            return
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        writer = await self._connect(query_only=False)
        opened = [writer]  # each runs a thread that keeps the process alive until closed
        try:
            await self._in_thread(writer, _migrate)
            reader = await self._connect(query_only=True)
            opened.append(reader)
            frames = await self._connect(query_only=False, path=frames_path(self.path))
            opened.append(frames)
            await self._in_thread(frames, prepare_frames_file)
        except BaseException as exc:
            for conn in opened:
                await conn.close()
            raise _store_error(exc) from exc
        self._writer, self._reader, self._frames = writer, reader, frames
        self._closing = False
        self._queue = asyncio.Queue()
        self._writer_task = asyncio.create_task(self._write_loop(), name="sqlite-writer")

    async def close(self) -> None:
        if self._writer is None or self._closing:
            return
        self._closing = True
        assert self._queue is not None and self._writer_task is not None
        self._queue.put_nowait(None)  # drains everything queued before it, then stops
        await self._writer_task
        assert self._reader is not None and self._frames is not None
        await self._reader.close()
        await self._frames.close()
        await self._writer.close()
        self._writer = self._reader = self._frames = None
        self._queue = self._writer_task = None

    async def _write_loop(self) -> None:
        assert self._queue is not None and self._writer is not None
        queue, writer = self._queue, self._writer
        stopping = False
        while not stopping:
            item = await queue.get()
            batch: list[tuple[Op, asyncio.Future[Any]]] = []
            while True:
                if item is None:
                    stopping = True
                    break
                batch.append(item)
                if len(batch) >= MAX_BATCH or queue.empty():
                    break
                item = queue.get_nowait()
            if not batch:
                continue
            ops = [op for op, _ in batch]
            try:
                outcomes = await self._in_thread(writer, lambda raw, ops=ops: _run_batch(raw, ops))
            except BaseException as exc:
                log.exception("sqlite group commit of %d writes failed", len(batch))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(_store_error(exc))
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                if future.done():  # caller was cancelled; its write still happened
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(_store_error(value))

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        if self._queue is None or self._closing:
            raise StoreError("store is not open")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((op, future))
        return await future

    async def _frames_op(self, op: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        """Run `op` on the message-log connection in one transaction (its thread serializes)."""
        if self._frames is None or self._closing:
            raise StoreError("store is not open")

        def run(raw: sqlite3.Connection) -> T:
            raw.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = op(raw)
            except BaseException:
                raw.rollback()
                raise
            raw.execute("COMMIT")
            return result

        try:
            return await self._in_thread(self._frames, run)
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: {exc}") from exc

    async def _read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        if self._reader is None or self._closing:
            raise StoreError("store is not open")
        try:
            return await self._in_thread(self._reader, lambda raw: _read_snapshot(raw, op))
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: {exc}") from exc

    # stations ---------------------------------------------------------------------------------

    async def provision_station(self, station_id: str, password_hash: str | None, *,
                                keep_password: bool = False,
                                security_profile: int | Keep | None = KEEP) -> Station:
        keep_profile = security_profile is KEEP
        profile = None if security_profile is KEEP else security_profile

        def op(conn: sqlite3.Connection) -> Station:
            conn.execute(
                "INSERT INTO stations (id, password_hash, security_profile, provisioned)"
                " VALUES (?, ?, ?, 1) ON CONFLICT (id) DO UPDATE SET provisioned = 1,"
                " password_hash ="
                " CASE WHEN ? THEN stations.password_hash ELSE excluded.password_hash END,"
                " security_profile ="
                " CASE WHEN ? THEN stations.security_profile ELSE excluded.security_profile END",
                (station_id, None if keep_password else password_hash, profile, keep_password,
                 keep_profile),
            )
            station = _load_station(conn, station_id)
            assert station is not None
            return station

        return await self._write(op)

    async def get_station(self, station_id: str) -> Station | None:
        return await self._read(lambda conn: _load_station(conn, station_id))

    async def list_stations(self) -> list[Station]:
        def op(conn: sqlite3.Connection) -> list[Station]:
            connectors: dict[str, list[Connector]] = {}
            for row in conn.execute(
                f"SELECT {_CONNECTOR_COLUMNS} FROM connectors ORDER BY station_id, connector_id"
            ):
                connectors.setdefault(row["station_id"], []).append(_connector(row))
            return [
                _station(row, connectors.get(row["id"], []))
                for row in conn.execute(f"SELECT {_STATION_COLUMNS} FROM stations ORDER BY id")
            ]

        return await self._read(op)

    async def register_boot(
        self,
        station_id: str,
        *,
        vendor: str,
        model: str,
        serial_number: str | None,
        firmware_version: str | None,
        at: datetime,
    ) -> None:
        """last_seen moves forward only, as in `set_connections`."""
        row = (station_id, vendor, model, serial_number, firmware_version, ts(at), ts(at))
        await self._write(lambda conn: conn.execute(
            "INSERT INTO stations"
            " (id, vendor, model, serial_number, firmware_version, last_boot_at, last_seen)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET vendor = excluded.vendor,"
            " model = excluded.model, serial_number = excluded.serial_number,"
            " firmware_version = excluded.firmware_version,"
            " last_boot_at = excluded.last_boot_at,"
            " last_seen = CASE WHEN stations.last_seen IS NULL"
            " OR stations.last_seen < excluded.last_seen"
            " THEN excluded.last_seen ELSE stations.last_seen END", row))

    async def set_connected(self, station_id: str, connected: bool, at: datetime) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO stations (id, connected, last_seen) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET"
                " connected = excluded.connected, last_seen = excluded.last_seen",
                (station_id, int(connected), ts(at)),
            )

        await self._write(op)

    async def set_connections(self, states: Mapping[str, tuple[bool, datetime]]) -> None:
        rows = [(station_id, int(connected), ts(at))
                for station_id, (connected, at) in states.items()]
        if rows:
            await self._write(lambda conn: conn.executemany(
                "INSERT INTO stations (id, connected, last_seen) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET connected = excluded.connected,"
                " last_seen = CASE WHEN stations.last_seen IS NULL"
                " OR stations.last_seen < excluded.last_seen"
                " THEN excluded.last_seen ELSE stations.last_seen END", rows))

    async def mark_all_disconnected(self) -> None:
        await self._write(
            lambda conn: conn.execute("UPDATE stations SET connected = 0 WHERE connected != 0")
        )

    async def touch_station(self, station_id: str, at: datetime) -> None:
        """Update last_seen; an unknown station is left unknown (no row is created)."""
        await self._write(
            lambda conn: conn.execute(
                "UPDATE stations SET last_seen = ? WHERE id = ?", (ts(at), station_id)
            )
        )

    async def touch_stations(self, seen: Mapping[str, datetime]) -> None:
        rows = [(ts(at), station_id, ts(at)) for station_id, at in seen.items()]
        if rows:
            await self._write(lambda conn: conn.executemany(
                "UPDATE stations SET last_seen = ? WHERE id = ?"
                " AND (last_seen IS NULL OR last_seen < ?)", rows))

    async def set_connector_status(
        self,
        station_id: str,
        connector_id: int,
        *,
        status: str,
        error_code: str,
        info: str | None = None,
        vendor_error_code: str | None = None,
        at: datetime,
    ) -> None:
        """Upsert one connector's status; creates the station row if unknown."""

        def op(conn: sqlite3.Connection) -> None:
            _ensure_station(conn, station_id)
            conn.execute(
                f"INSERT INTO connectors ({_CONNECTOR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (station_id, connector_id) DO UPDATE SET"
                " status = excluded.status, error_code = excluded.error_code,"
                " info = excluded.info, vendor_error_code = excluded.vendor_error_code,"
                " updated_at = excluded.updated_at",
                (station_id, connector_id, status, error_code, info, vendor_error_code, ts(at)),
            )

        await self._write(op)

    # id tags ----------------------------------------------------------------------------------

    async def upsert_id_tag(self, tag: IdTag) -> IdTag:
        def op(conn: sqlite3.Connection) -> IdTag:
            row = conn.execute(
                "INSERT INTO id_tags (id_tag, status, expiry_date, parent_id_tag)"
                " VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id_tag) DO UPDATE SET status = excluded.status,"
                " expiry_date = excluded.expiry_date, parent_id_tag = excluded.parent_id_tag"
                " RETURNING id_tag, status, expiry_date, parent_id_tag",
                (tag.id_tag, tag.status, ts_opt(tag.expiry_date), tag.parent_id_tag),
            ).fetchone()
            return _id_tag(row)

        return await self._write(op)

    async def get_id_tag(self, id_tag: str) -> IdTag | None:
        return await self._read(lambda conn: _load_id_tag(conn, id_tag))

    async def list_id_tags(self) -> list[IdTag]:
        return await self._read(
            lambda conn: [
                _id_tag(row)
                for row in conn.execute(
                    "SELECT id_tag, status, expiry_date, parent_id_tag FROM id_tags ORDER BY id_tag"
                )
            ]
        )

    # transactions -----------------------------------------------------------------------------

    async def next_transaction_id(self) -> int:
        return await self._write(_allocate_transaction_id)

    async def open_transaction(
        self,
        station_id: str,
        connector_id: int,
        id_tag: str,
        meter_start: int,
        started_at: datetime,
        reservation_id: int | None = None,
    ) -> StartOutcome:
        key = (station_id, connector_id, id_tag, meter_start, ts(started_at))

        def op(conn: sqlite3.Connection) -> StartOutcome:
            transaction, created = _start_transaction(conn, key, reservation_id)
            superseded = _supersede_transactions(conn, transaction) if created else []
            return StartOutcome(transaction, created, superseded, _load_id_tag(conn, id_tag))

        return await self._write(op)

    async def stop_transaction(
        self,
        station_id: str,
        transaction_id: int,
        *,
        meter_stop: int,
        stopped_at: datetime,
        reason: str | None,
        id_tag: str | None,
    ) -> tuple[Transaction | None, bool]:
        """Close a transaction; see `Store.stop_transaction`.

        A transaction that belongs to another station counts as unknown for this station (it is
        recorded as an orphan stop and the other station's transaction is left alone).
        """

        def op(conn: sqlite3.Connection) -> tuple[Transaction | None, bool]:
            changed = conn.execute(
                "UPDATE transactions SET meter_stop = ?, stopped_at = ?, stop_reason = ?,"
                " stop_id_tag = ? WHERE transaction_id = ? AND station_id = ?"
                " AND stopped_at IS NULL",
                (meter_stop, ts(stopped_at), reason, id_tag, transaction_id, station_id),
            ).rowcount
            tx = _load_transaction(conn, transaction_id)
            if tx is not None and tx.station_id == station_id:
                return tx, changed == 1
            inserted = conn.execute(
                "INSERT OR IGNORE INTO orphan_stops (station_id, transaction_id, meter_stop,"
                " stopped_at, reason, id_tag, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    station_id,
                    transaction_id,
                    meter_stop,
                    ts(stopped_at),
                    reason,
                    id_tag,
                    ts(utcnow()),
                ),
            ).rowcount
            return None, inserted == 1

        return await self._write(op)

    async def get_transaction(self, transaction_id: int) -> Transaction | None:
        return await self._read(lambda conn: _load_transaction(conn, transaction_id))

    async def get_station_transaction(self, station_id: str,
                                      station_transaction_id: str) -> Transaction | None:
        return await self._read(
            lambda conn: _load_station_transaction(conn, station_id, station_transaction_id))

    async def record_event(self, event: TransactionEvent) -> EventOutcome:
        def op(conn: sqlite3.Connection) -> EventOutcome:
            newest = _load_station_transaction(conn, event.station_id,
                                               event.station_transaction_id)
            generation = next_generation(newest, event)
            created = generation is not None
            if generation is None:
                assert newest is not None
                tx = newest
            else:
                _ensure_station(conn, event.station_id)
                tx = new_transaction(event, _allocate_transaction_id(conn), generation)
                conn.execute(
                    "INSERT INTO transactions (transaction_id, station_id, connector_id, id_tag,"
                    " meter_start, started_at, ocpp_version, station_transaction_id,"
                    " generation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (tx.transaction_id, tx.station_id, tx.connector_id, tx.id_tag,
                     tx.meter_start, ts(tx.started_at), tx.ocpp_version,
                     tx.station_transaction_id, tx.generation))
            outcome = apply_event(tx, event)
            outcome.created = created
            if not outcome.duplicate:
                conn.execute(
                    "UPDATE transactions SET connector_id = ?, id_tag = ?, meter_start = ?,"
                    " started_at = ?, meter_stop = ?, stopped_at = ?, stop_reason = ?,"
                    " stop_id_tag = ?, last_energy_wh = ?, last_energy_at = ?,"
                    " remote_start_id = ?, seq_nos = ?, first_energy_at = ?"
                    " WHERE transaction_id = ?",
                    (tx.connector_id, tx.id_tag, tx.meter_start, ts(tx.started_at),
                     tx.meter_stop, ts_opt(tx.stopped_at), tx.stop_reason, tx.stop_id_tag,
                     tx.last_energy_wh, ts_opt(tx.last_energy_at), tx.remote_start_id,
                     json.dumps(tx.seq_nos), ts_opt(tx.first_energy_at), tx.transaction_id))
                if event.values:  # in the same commit: a retry after a crash finds them
                    for value in event.values:
                        value.connector_id = tx.connector_id
                        value.transaction_id = tx.transaction_id
                    _insert_meter_values(conn, *_meter_value_rows(event.values))
            if supersedes(outcome, event):
                outcome.superseded = _supersede_transactions(conn, tx)
            outcome.id_tags = {tag: _load_id_tag(conn, tag)
                               for tag in tags_to_read(outcome, event)}
            return outcome

        return await self._write(op)

    async def list_transactions(
        self, *, station_id: str | None = None, active: bool | None = None, limit: int = 100
    ) -> list[Transaction]:
        where: list[str] = []
        params: list[Any] = []
        if station_id is not None:
            where.append("station_id = ?")
            params.append(station_id)
        if active is True:
            where.append("stopped_at IS NULL")
        elif active is False:
            where.append("stopped_at IS NOT NULL")
        sql = f"SELECT {_TX_COLUMNS} FROM transactions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY transaction_id DESC LIMIT ?"
        params.append(max(0, limit))
        return await self._read(
            lambda conn: [_transaction(row) for row in conn.execute(sql, params)]
        )

    async def active_transaction(self, station_id: str, connector_id: int) -> Transaction | None:
        def op(conn: sqlite3.Connection) -> Transaction | None:
            row = conn.execute(
                f"SELECT {_TX_COLUMNS} FROM transactions WHERE station_id = ?"
                " AND connector_id = ? AND stopped_at IS NULL"
                " ORDER BY transaction_id DESC LIMIT 1",
                (station_id, connector_id),
            ).fetchone()
            return None if row is None else _transaction(row)

        return await self._read(op)

    async def list_orphan_stops(self, station_id: str | None = None) -> list[OrphanStop]:
        sql = (
            "SELECT station_id, transaction_id, meter_stop, stopped_at, reason, id_tag,"
            " received_at FROM orphan_stops"
        )
        params: tuple[Any, ...] = ()
        if station_id is not None:
            sql += " WHERE station_id = ?"
            params = (station_id,)
        sql += " ORDER BY id"

        def op(conn: sqlite3.Connection) -> list[OrphanStop]:
            return [
                OrphanStop(
                    station_id=row["station_id"],
                    transaction_id=row["transaction_id"],
                    meter_stop=row["meter_stop"],
                    stopped_at=dt_req(row["stopped_at"]),
                    reason=row["reason"],
                    id_tag=row["id_tag"],
                    received_at=dt(row["received_at"]),
                )
                for row in conn.execute(sql, params)
            ]

        return await self._read(op)

    # meter values -----------------------------------------------------------------------------

    async def append_meter_values(self, values: Sequence[MeterValue],
                                  newest: NewestEnergy | None = None) -> None:
        if not values:
            return
        await self._write(_MeterValuesWrite(*_meter_value_rows(values, newest)))

    async def list_meter_values(self, transaction_id: int) -> list[MeterValue]:
        def op(conn: sqlite3.Connection) -> list[MeterValue]:
            return [
                MeterValue(
                    station_id=row["station_id"],
                    connector_id=row["connector_id"],
                    transaction_id=row["transaction_id"],
                    timestamp=dt_req(row["timestamp"]),
                    value=row["value"],
                    measurand=row["measurand"],
                    unit=row["unit"],
                    context=row["context"],
                    phase=row["phase"],
                    location=row["location"],
                    format=row["format"],
                )
                for row in conn.execute(
                    f"SELECT {_MV_COLUMNS} FROM meter_values WHERE transaction_id = ?"
                    " ORDER BY timestamp, id",
                    (transaction_id,),
                )
            ]

        return await self._read(op)


def _meter_value_rows(values: Sequence[MeterValue], newest: NewestEnergy | None = None,
                      ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The meter_values rows of `values`, and each transaction's newest-register update."""
    # The values of one MeterValue share its timestamp object: its text is made once (ts() is
    # ~14,000 instructions; an identity check, unlike the dict of texts it replaced, hashes
    # nothing).
    stamp: datetime | None = None
    text = ""
    rows: list[tuple[Any, ...]] = []
    for v in values:
        if v.timestamp is not stamp:
            stamp = v.timestamp
            text = ts(stamp)
        rows.append((v.station_id, v.connector_id, v.transaction_id, text, v.value,
                     v.measurand, v.unit, v.context, v.phase, v.location, v.format))
    updates: list[tuple[Any, ...]] = []
    if newest is None:
        newest = newest_energy(values)
    for (tx, station), (at, wh) in newest.items():
        at_text = text if at is stamp else ts(at)
        updates.append((wh, at_text, tx, station, at_text))
    return rows, updates


def _insert_meter_values(conn: sqlite3.Connection, rows: list[tuple[Any, ...]],
                         updates: list[tuple[Any, ...]]) -> None:
    conn.executemany(
        f"INSERT INTO meter_values ({_MV_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.executemany(
        "UPDATE transactions SET last_energy_wh = ?, last_energy_at = ?"
        " WHERE transaction_id = ? AND station_id = ?"
        " AND (last_energy_at IS NULL OR last_energy_at < ?)",
        updates)


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to SCHEMA_VERSION (PRAGMA user_version), one transaction per step."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"database schema version {version} is newer than this build ({SCHEMA_VERSION})"
        )
    for target in range(version + 1, SCHEMA_VERSION + 1):
        with write_transaction(conn):
            for statement in _statements(_MIGRATIONS[target]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {target}")


def _statements(script: str) -> list[str]:
    """Split a schema script into statements (executescript would commit implicitly)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
