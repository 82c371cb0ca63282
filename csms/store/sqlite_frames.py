"""The SQLite adapter's message log (`FrameLogStore`), mixed into `SqliteStore`.

The log lives in a file of its own beside the main one (`frames_path`), with its own schema
version (PRAGMA user_version of that file, `prepare_frames_file`), one row per station per
flush as `csms.store.frame_rows` describes. A row's frames are one blob (`encode_row`): a JSON
head [[direction, at, UTF-8 length], ...], a newline, then the frame texts back to back. Not a
JSON array of the frames: a frame is JSON text itself, and escaping its quotes made rows ~25%
larger (and a row past half a page takes a page of its own).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from csms.domain import FrameEntry, LoggedFrame
from csms.store.frame_rows import NewestFirst, cut_head, window
from csms.store.ports import StoreError
from csms.store.sqlite_support import dt_req, write_transaction

FRAMES_WAL_LIMIT = 16 * 1024 * 1024  # bytes the frames WAL file keeps after a checkpoint
FRAMES_SCHEMA_VERSION = 1
# A row holds one station's frames of a flush, often 1-4 KB: with 4 KB pages a row past half a
# page takes a page of its own (measured: 156 MB of file for 64 MB of frames, against 89 MB
# with 16 KB pages), and the extra pages cost about 1 us of system CPU per logged frame.
FRAMES_PAGE_SIZE = 16384

# frames file version 1 (before: no version, one `frames` row per frame; migrated to one row
# per frame here, which readers cannot tell from rows written per flush)
_FRAMES_V1 = """
CREATE TABLE frame_rows (
    station_id TEXT NOT NULL,
    last_seq   INTEGER NOT NULL,
    since      INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,
    frames     BLOB NOT NULL
);
CREATE UNIQUE INDEX frame_rows_by_station ON frame_rows (station_id, last_seq);
"""
_FRAMES_FROM_V0 = """
INSERT INTO frame_rows (station_id, last_seq, since, bytes, frames)
SELECT station_id, seq, 0, LENGTH(CAST(frame AS BLOB)),
       CAST(json_array(json_array(direction, at, LENGTH(CAST(frame AS BLOB)))) || char(10)
            || frame AS BLOB)
FROM frames ORDER BY rowid;
DROP TABLE frames;
"""


def frames_path(path: str) -> str:
    """The message log lives in its own file beside the main one (`csms.db` ->
    `csms-frames.db`): SQLite has one writer per file, and thousands of logged frames per
    second must not make meter values and transactions wait for the write lock."""
    main = Path(path)
    return str(main.with_name(f"{main.stem}-frames{main.suffix}"))


def prepare_frames_file(conn: sqlite3.Connection) -> None:
    """Bring the frames file to FRAMES_SCHEMA_VERSION, keeping the frames it holds."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > FRAMES_SCHEMA_VERSION:
        raise StoreError(f"message log schema version {version} is newer than this build"
                         f" ({FRAMES_SCHEMA_VERSION})")
    if version < 1:
        with write_transaction(conn):
            # another process opening the same file may have migrated it meanwhile
            if conn.execute("PRAGMA user_version").fetchone()[0] < 1:
                script = _FRAMES_V1
                if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                                " AND name = 'frames'").fetchone():
                    script += _FRAMES_FROM_V0
                for statement in _statements(script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {FRAMES_SCHEMA_VERSION}")
        _set_page_size(conn)
    # a burst of large frames must not leave a WAL file of hundreds of MB behind
    conn.execute(f"PRAGMA journal_size_limit = {FRAMES_WAL_LIMIT}")


def _set_page_size(conn: sqlite3.Connection) -> None:
    """FRAMES_PAGE_SIZE, set by VACUUM, which WAL mode does not allow. When another
    connection holds the file the mode stays WAL and the page size as it was (slower, still
    correct)."""
    if conn.execute("PRAGMA page_size").fetchone()[0] == FRAMES_PAGE_SIZE:
        return
    if conn.execute("PRAGMA journal_mode = DELETE").fetchone()[0] == "delete":
        conn.execute(f"PRAGMA page_size = {FRAMES_PAGE_SIZE}")
        conn.execute("VACUUM")
    conn.execute("PRAGMA journal_mode = WAL")


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def encode_row(frames: Sequence[FrameEntry]) -> tuple[bytes, int]:
    """A row's frames as stored, and the bytes of their texts. orjson writes the head's
    datetimes (RFC 3339) in C and never a raw newline, so the first one ends the head."""
    texts = [frame.encode() for _, _, frame in frames]
    head = orjson.dumps(
        [(direction, at, len(text))
         for (direction, at, _), text in zip(frames, texts, strict=True)],
        option=orjson.OPT_NAIVE_UTC)
    body = b"".join(texts)
    return b"%b\n%b" % (head, body), len(body)


def decode_row(data: bytes) -> list[tuple[str, str, str]]:
    """A stored row's frames, oldest first: (direction, at as text, frame)."""
    end = data.index(b"\n")
    frames = []
    start = end + 1
    for direction, at, size in orjson.loads(data[:end]):
        frames.append((direction, at, data[start:start + size].decode()))
        start += size
    return frames


def cut_row(data: bytes, excess: int) -> tuple[bytes, int]:
    """The row without its oldest frames, dropped until `excess` bytes went, and the bytes
    dropped (b"" when none is left)."""
    end = data.index(b"\n")
    head = orjson.loads(data[:end])
    rest, dropped = cut_head(head, [size for _, _, size in head], excess)
    if not rest:
        return b"", dropped
    return b"%b\n%b" % (orjson.dumps(rest), data[end + 1 + dropped:]), dropped


class SqliteFrames:
    _frames_op: Callable[..., Any]
    _frame_tops: dict[str, tuple[int, int]]  # station -> (newest seq, since), once known
    _frame_bytes: int | None  # bytes of frames in the log, once known

    async def append_frames(self, frames: Mapping[str, Sequence[FrameEntry]], keep: int,
                            max_bytes: int = 0) -> None:
        """Append a row per station; keep at most `keep` newest (by append order) per station,
        and at most `max_bytes` in all (0: no limit), counted as rows come and go.

        keep <= 0 stores nothing and clears the log of the stations named in `frames`.
        """
        groups = {station_id: group for station_id, group in frames.items() if group}
        if not groups:
            return
        tops = self._frame_tops

        def op(conn: sqlite3.Connection) -> None:
            if self._frame_bytes is None:
                self._frame_bytes = conn.execute(
                    "SELECT COALESCE(SUM(bytes), 0) FROM frame_rows").fetchone()[0]
            rows: list[tuple[str, int, int, int, bytes]] = []
            trims: list[tuple[str, int]] = []
            for station_id, group in groups.items():
                if keep <= 0:
                    self._delete(conn, "station_id = ?", (station_id,))
                    tops.pop(station_id, None)
                    continue
                top = tops.get(station_id)
                if top is None:  # first frames of this station since start: ask the table
                    top = conn.execute(
                        "SELECT last_seq, since FROM frame_rows WHERE station_id = ?"
                        " ORDER BY last_seq DESC LIMIT 1", (station_id,)).fetchone() or (0, 0)
                last = top[0] + len(group)
                stored, since = window(len(group), last, top[1], keep)
                data, size = encode_row(group[-stored:])
                rows.append((station_id, last, since, size, data))
                if last > keep:
                    trims.append((station_id, since))
                tops[station_id] = (last, since)
            conn.executemany("INSERT INTO frame_rows (station_id, last_seq, since, bytes, frames)"
                             " VALUES (?, ?, ?, ?, ?)", rows)
            self._frame_bytes += sum(row[3] for row in rows)
            for trim in trims:  # the rows wholly older than the station's newest `keep`
                self._delete(conn, "station_id = ? AND last_seq < ?", trim)
            if max_bytes > 0 and self._frame_bytes > max_bytes:
                self._trim_bytes(conn, self._frame_bytes - max_bytes)

        try:
            await self._frames_op(op, write=True)
        except BaseException:
            # the batch rolled back: the cached tops and byte count may be off
            tops.clear()
            self._frame_bytes = None
            raise

    def _delete(self, conn: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> None:
        assert self._frame_bytes is not None
        self._frame_bytes -= sum(row[0] for row in conn.execute(
            f"DELETE FROM frame_rows WHERE {where} RETURNING bytes", params))

    def _trim_bytes(self, conn: sqlite3.Connection, excess: int) -> None:
        """Delete the oldest frames, whoever sent them, until `excess` bytes went: whole rows,
        then the head of the row where the count stops."""
        assert self._frame_bytes is not None
        cut, straddling = 0, None
        for rowid, size in conn.execute("SELECT rowid, bytes FROM frame_rows ORDER BY rowid"):
            if size > excess:
                straddling = rowid
                break
            excess, cut = excess - size, rowid
            if excess <= 0:
                break
        if cut:
            self._delete(conn, "rowid <= ?", (cut,))
        if straddling is None or excess <= 0:
            return
        rest, dropped = cut_row(conn.execute("SELECT frames FROM frame_rows WHERE rowid = ?",
                                         (straddling,)).fetchone()[0], excess)
        if not rest:
            self._delete(conn, "rowid = ?", (straddling,))
            return
        conn.execute("UPDATE frame_rows SET frames = ?, bytes = bytes - ? WHERE rowid = ?",
                     (rest, dropped, straddling))
        self._frame_bytes -= dropped

    async def list_frames(self, station_id: str, limit: int = 100) -> list[LoggedFrame]:
        def op(conn: sqlite3.Connection) -> list[LoggedFrame]:
            reader = NewestFirst(station_id, limit, dt_req)
            if reader.full:
                return []
            for last_seq, since, data in conn.execute(
                    "SELECT last_seq, since, frames FROM frame_rows WHERE station_id = ?"
                    " ORDER BY last_seq DESC", (station_id,)):
                if reader.add(last_seq, since, decode_row(data)):
                    break
            return reader.frames

        return await self._frames_op(op, write=False)
