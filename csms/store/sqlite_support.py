"""What every SQLite adapter of ours shares: how a connection is opened, how a function runs
in its thread, and how datetimes are stored."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TypeVar

import aiosqlite

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000
# Pages in the WAL before a commit checkpoints it into the database (SQLite's default: 1000).
# The hub commits every group of meter values; at 10,000 pages (a WAL of up to ~40 MB) the
# pages rewritten between checkpoints (the tail of meter_values, its index, the registers) are
# copied back once instead of ten times: -1 to -1.5 us of ~12 us of writer CPU per MeterValues
# frame (docs/performance.md, rounds five and six).
WAL_AUTOCHECKPOINT_PAGES = 10_000


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One BEGIN IMMEDIATE transaction around the block: committed when it ends, rolled back
    when it raises (anything, cancellation included)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise


async def connect(path: str, *, query_only: bool = False) -> aiosqlite.Connection:
    """A connection in autocommit mode (we issue BEGIN ourselves), WAL, NORMAL sync; a writing
    one checkpoints every `WAL_AUTOCHECKPOINT_PAGES`."""
    conn = await aiosqlite.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.row_factory = sqlite3.Row

    def setup(raw: sqlite3.Connection) -> None:
        raw.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        raw.execute("PRAGMA journal_mode = WAL")
        raw.execute("PRAGMA synchronous = NORMAL")
        raw.execute("PRAGMA foreign_keys = ON")
        if query_only:
            raw.execute("PRAGMA query_only = ON")
        else:
            raw.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")

    try:
        await in_thread(conn, setup)
    except BaseException:
        await conn.close()
        raise
    return conn


async def in_thread(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run `fn(raw_connection)` in the connection's own thread: one round trip, one unit.

    aiosqlite has no public API for this; `_execute` and `_conn` are what every aiosqlite
    method itself uses (stable since 0.1x).
    """
    return await conn._execute(lambda: fn(conn._conn))


# "YYYY-MM-DD" per date ordinal, for the days `ts` has met (cleared when it holds MAX_DAYS: a
# hub meets today's, and hostile timestamps could name any day)
_DAYS: dict[int, str] = {}
MAX_DAYS = 1024
_TWO_DIGITS = tuple(f"{n:02d}" for n in range(60))


def ts(moment: datetime) -> str:
    """Fixed-width UTC text (so text order is time order); naive datetimes are taken as UTC.

    `isoformat(timespec="microseconds")`'s text, built from the day's text (made once per day)
    and two-digit strings: the C isoformat was ~14,000 instructions, once per stored
    MeterValue and per register update; this is ~7,000 (round six of issue 15).
    `tests/csms/store/test_timestamp_text.py` holds it equal to isoformat."""
    if moment.tzinfo is not UTC:  # the common case is UTC already: no astimezone
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
    ordinal = moment.toordinal()
    day = _DAYS.get(ordinal)
    if day is None:
        if len(_DAYS) >= MAX_DAYS:
            _DAYS.clear()
        day = _DAYS[ordinal] = moment.date().isoformat()
    two = _TWO_DIGITS
    return f"{day}T{two[moment.hour]}:{two[moment.minute]}:{two[moment.second]}" \
        f".{moment.microsecond:06d}+00:00"


def ts_opt(moment: datetime | None) -> str | None:
    return None if moment is None else ts(moment)


def dt(text: str | None) -> datetime | None:
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def dt_req(text: str) -> datetime:
    moment = dt(text)
    assert moment is not None
    return moment
