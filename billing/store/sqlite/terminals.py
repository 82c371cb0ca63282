"""Payment terminals bound to stations, and the stops asked at a terminal."""

from __future__ import annotations

import sqlite3
from typing import Any

from billing.models import TerminalBinding, TerminalRequest, TerminalRequestStatus
from billing.store.sqlite.base import SqliteConnection
from billing.store.sqlite.rows import _now
from csms.store.sqlite_support import dt_req, ts

_REQUEST_COLUMNS = ("request_id, station_id, connector_id, session_id, status, created_at,"
                    " updated_at, reference, error")


def _binding(row: sqlite3.Row) -> TerminalBinding:
    return TerminalBinding(row["station_id"], row["terminal_id"], row["management_system_id"],
                           dt_req(row["updated_at"]))


def _request(row: sqlite3.Row) -> TerminalRequest:
    return TerminalRequest(
        request_id=row["request_id"], station_id=row["station_id"],
        connector_id=row["connector_id"], session_id=row["session_id"],
        status=TerminalRequestStatus(row["status"]), created_at=dt_req(row["created_at"]),
        updated_at=dt_req(row["updated_at"]), reference=row["reference"], error=row["error"])


def _one_request(conn: sqlite3.Connection, column: str, value: str) -> TerminalRequest | None:
    row = conn.execute(f"SELECT {_REQUEST_COLUMNS} FROM billing_terminal_requests"
                       f" WHERE {column} = ?", (value,)).fetchone()
    return None if row is None else _request(row)


class TerminalTable(SqliteConnection):
    async def bind_terminal(self, station_id: str, terminal_id: str,
                            management_system_id: str) -> TerminalBinding:
        binding = TerminalBinding(station_id, terminal_id, management_system_id, _now())

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO billing_terminals"
                " (station_id, terminal_id, management_system_id, updated_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (station_id) DO UPDATE SET"
                " terminal_id = excluded.terminal_id,"
                " management_system_id = excluded.management_system_id,"
                " updated_at = excluded.updated_at",
                (station_id, terminal_id, management_system_id, ts(binding.updated_at)))

        await self._write(op)
        return binding

    async def station_terminal(self, station_id: str) -> TerminalBinding | None:
        def op(conn: sqlite3.Connection) -> TerminalBinding | None:
            row = conn.execute(
                "SELECT station_id, terminal_id, management_system_id, updated_at"
                " FROM billing_terminals WHERE station_id = ?", (station_id,)).fetchone()
            return None if row is None else _binding(row)

        return await self._read(op)

    async def unbind_terminal(self, station_id: str) -> bool:
        def op(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM billing_terminals WHERE station_id = ?",
                                (station_id,)).rowcount == 1

        return await self._write(op)

    async def create_terminal_request(self, request: TerminalRequest) -> None:
        def op(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    f"INSERT INTO billing_terminal_requests ({_REQUEST_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (request.request_id, request.station_id, request.connector_id,
                     request.session_id, request.status.value, ts(request.created_at),
                     ts(request.updated_at), request.reference, request.error))
            except sqlite3.IntegrityError:
                raise ValueError(f"terminal request {request.request_id} exists") from None

        await self._write(op)

    async def get_terminal_request(self, request_id: str) -> TerminalRequest | None:
        return await self._read(lambda conn: _one_request(conn, "request_id", request_id))

    async def terminal_request_by_reference(self, reference: str) -> TerminalRequest | None:
        return await self._read(lambda conn: _one_request(conn, "reference", reference))

    async def pending_terminal_requests(self, limit: int = 100) -> list[TerminalRequest]:
        def op(conn: sqlite3.Connection) -> list[TerminalRequest]:
            rows = conn.execute(
                f"SELECT {_REQUEST_COLUMNS} FROM billing_terminal_requests"
                " WHERE status = 'PENDING' ORDER BY created_at LIMIT ?", (limit,)).fetchall()
            return [_request(row) for row in rows]

        return await self._read(op)

    async def update_terminal_request(
        self, request_id: str, *, if_status: TerminalRequestStatus | None = None,
        status: TerminalRequestStatus | None = None, reference: str | None = None,
        error: str | None = None,
    ) -> TerminalRequest | None:
        changes: dict[str, Any] = {"status": status.value if status else None,
                                   "reference": reference, "error": error}
        sets = {name: value for name, value in changes.items() if value is not None}
        sets["updated_at"] = ts(_now())

        def op(conn: sqlite3.Connection) -> TerminalRequest | None:
            where, params = "request_id = ?", [request_id]
            if if_status is not None:
                where += " AND status = ?"
                params.append(if_status.value)
            assignments = ", ".join(f"{name} = ?" for name in sets)
            cursor = conn.execute(f"UPDATE billing_terminal_requests SET {assignments}"
                                  f" WHERE {where}", [*sets.values(), *params])
            return _one_request(conn, "request_id", request_id) if cursor.rowcount else None

        return await self._write(op)
