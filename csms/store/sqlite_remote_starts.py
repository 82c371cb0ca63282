"""The SQLite adapter's `RemoteStartStore`, mixed into `SqliteStore`: remote starts awaiting
the 2.0.1 transaction that names their remoteStartId. Each write is one op of the store's
group commit; recording a link also drops the links that expired."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

from csms.store.sqlite_support import ts

# part of charging schema version 6 (csms.store.sqlite._MIGRATIONS)
REMOTE_STARTS_SCHEMA = """
CREATE TABLE remote_starts (
    station_id      TEXT NOT NULL,
    remote_start_id INTEGER NOT NULL,
    id_tag          TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    PRIMARY KEY (station_id, remote_start_id)
) WITHOUT ROWID;
CREATE INDEX remote_starts_expiry ON remote_starts (expires_at);
"""


class SqliteRemoteStarts:
    _write: Callable[..., Any]
    _read: Callable[..., Any]

    async def expect_remote_start(self, station_id: str, remote_start_id: int, id_tag: str, *,
                                  at: datetime, expires_at: datetime) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM remote_starts WHERE expires_at <= ?", (ts(at),))
            conn.execute(
                "INSERT INTO remote_starts (station_id, remote_start_id, id_tag, expires_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (station_id, remote_start_id) DO UPDATE SET"
                " id_tag = excluded.id_tag, expires_at = excluded.expires_at",
                (station_id, remote_start_id, id_tag, ts(expires_at)))

        await self._write(op)

    async def remote_start_tag(self, station_id: str, remote_start_id: int,
                               at: datetime) -> str | None:
        def op(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT id_tag FROM remote_starts WHERE station_id = ? AND remote_start_id = ?"
                " AND expires_at > ?", (station_id, remote_start_id, ts(at))).fetchone()
            return None if row is None else str(row["id_tag"])

        result: str | None = await self._read(op)
        return result

    async def forget_remote_start(self, station_id: str, remote_start_id: int) -> None:
        await self._write(lambda conn: conn.execute(
            "DELETE FROM remote_starts WHERE station_id = ? AND remote_start_id = ?",
            (station_id, remote_start_id)) and None)
