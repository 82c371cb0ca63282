"""The one connection every billing table module shares: open (with migrations), close, and
reads and writes run in its thread, each write one IMMEDIATE transaction."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiosqlite

from billing.store.sqlite.schema import T, _migrate, _write_tx
from csms.store.ports import StoreError
from csms.store.sqlite_support import connect, in_thread


class SqliteConnection:
    """One aiosqlite connection to the billing tables (WAL)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    async def open(self) -> None:
        """Connect, switch to WAL and create the billing tables if missing (idempotent)."""
        if self._db is not None:
            return
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            db = await connect(self.path)
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: {exc}") from exc
        try:
            await self._in_thread(db, _migrate)
        except BaseException as exc:
            await db.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"sqlite: {exc}") from exc
            raise
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    _in_thread = staticmethod(in_thread)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._db is None:
            raise StoreError("billing store is not open")
        try:
            return await self._in_thread(self._db, fn)
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite: {exc}") from exc

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._run(fn)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._run(lambda conn: _write_tx(conn, fn))

    async def _newest(self, table: str, columns: str, load: Callable[[sqlite3.Row], T],
                      statuses: list[str] | None, match: tuple[str, Any], limit: int,
                      among: tuple[str, list[str] | None] = ("", None)) -> list[T]:
        """Rows of `table`, newest first, filtered by status (None: any; empty: none), by
        one column when its value is not None, and by one column's value being among a
        list (None: any; empty: none)."""
        column, values = among
        if (statuses is not None and not statuses) or (values is not None and not values):
            return []
        where: list[str] = []
        params: list[Any] = []
        if statuses is not None:
            where.append(f"status IN ({', '.join('?' for _ in statuses)})")
            params.extend(statuses)
        if values is not None:  # one JSON parameter: no limit on how many
            where.append(f"{column} IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(values))
        column, value = match
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        params.append(max(limit, 0))
        sql = f"SELECT {columns} FROM {table} {clause} ORDER BY created_at DESC, rowid DESC LIMIT ?"
        return await self._read(lambda conn: [load(row) for row in conn.execute(sql, params)])

