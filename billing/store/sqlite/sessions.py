"""Sessions with their payment: compare-and-set moves, every write bumping `version`."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from typing import Any

from billing.models import (
    PaymentStatus,
    Session,
    SessionStatus,
)
from billing.store.sqlite.base import SqliteConnection
from billing.store.sqlite.rows import (
    _SESSION_COLUMNS,
    _db_value,
    _load_session,
    _now,
    _session,
    _session_changes,
)
from billing.store.values import SESSION_FIELDS, DuplicateSession, check_session_value
from csms.store.sqlite_support import ts


class SessionTable(SqliteConnection):
    async def create_session(self, session: Session) -> None:
        """Insert; raises DuplicateSession when session_id or id_tag is taken, ValueError when
        a field does not fit its type (a float amount, an unknown status...)."""
        for name in SESSION_FIELDS:
            check_session_value(name, getattr(session, name))
        values = [_db_value(getattr(session, name)) for name in SESSION_FIELDS]
        placeholders = ", ".join("?" for _ in SESSION_FIELDS)

        def op(conn: sqlite3.Connection) -> None:
            try:
                conn.execute(
                    f"INSERT INTO billing_sessions ({_SESSION_COLUMNS}) VALUES ({placeholders})",
                    values,
                )
            except sqlite3.IntegrityError as exc:
                message = str(exc)
                if "billing_sessions.id_tag" in message:
                    raise DuplicateSession(f"id_tag {session.id_tag!r} already used") from exc
                if "billing_sessions.session_id" in message:
                    raise DuplicateSession(f"session {session.session_id!r} exists") from exc
                raise

        await self._write(op)

    async def get_session(self, session_id: str) -> Session | None:
        return await self._read(lambda conn: _load_session(conn, "session_id = ?", (session_id,)))

    async def session_by_id_tag(self, id_tag: str) -> Session | None:
        return await self._read(lambda conn: _load_session(conn, "id_tag = ?", (id_tag,)))

    async def session_by_transaction(self, transaction_id: int) -> Session | None:
        """The newest session bound to this OCPP transaction id."""
        return await self._read(
            lambda conn: _load_session(conn, "transaction_id = ?", (transaction_id,))
        )

    async def session_by_charge(self, charge_id: str) -> Session | None:
        """The newest session holding this gateway charge id."""
        return await self._read(lambda conn: _load_session(conn, "charge_id = ?", (charge_id,)))

    async def sessions_by_transactions(self, transaction_ids: Collection[int],
                                       ) -> dict[int, Session]:
        """The newest session of each transaction id, in one SELECT."""
        wanted = sorted({int(t) for t in transaction_ids})
        if not wanted:
            return {}

        def op(conn: sqlite3.Connection) -> dict[int, Session]:
            found: dict[int, Session] = {}
            for start in range(0, len(wanted), 500):  # SQLite's bound-parameter limit
                part = wanted[start:start + 500]
                rows = conn.execute(
                    f"SELECT {_SESSION_COLUMNS} FROM billing_sessions WHERE transaction_id IN"
                    f" ({', '.join('?' for _ in part)}) ORDER BY created_at, rowid", part,
                ).fetchall()
                for row in rows:  # oldest first: the newest of a transaction wins
                    session = _session(row)
                    assert session.transaction_id is not None
                    found[session.transaction_id] = session
            return found

        return await self._read(op)

    async def list_sessions(
        self,
        *,
        statuses: Collection[SessionStatus] | None = None,
        station_id: str | None = None,
        station_ids: Collection[str] | None = None,
        limit: int = 100,
    ) -> list[Session]:
        """Newest first (created_at, then insertion order); `statuses` or `station_ids`
        empty matches nothing."""
        return await self._newest(
            "billing_sessions", _SESSION_COLUMNS, _session,
            None if statuses is None else [SessionStatus(s).value for s in statuses],
            ("station_id", station_id), limit,
            ("station_id", None if station_ids is None else sorted(station_ids)))

    async def _cas(
        self,
        session_id: str,
        column: str | None,
        expected: Collection[str],
        target: str | None,
        changes: dict[str, Any],
    ) -> Session | None:
        """UPDATE the session with changes, only if its `column` (status or payment_status)
        is in `expected`; the column is set to `target` unless that is None.

        Returns the updated row, or None when no row matched (unknown id or other status).
        """
        pairs = _session_changes(changes)
        sets = [f"{name} = ?" for name, _ in pairs]
        params: list[Any] = [value for _, value in pairs]
        where = "session_id = ?"
        where_params: list[Any] = [session_id]
        if column is not None:
            wanted = list(expected)
            if not wanted:
                return None
            if target is not None:
                sets.insert(0, f"{column} = ?")
                params.insert(0, target)
            where += f" AND {column} IN ({', '.join('?' for _ in wanted)})"
            where_params.extend(wanted)
        sets.append("updated_at = ?, version = version + 1")
        params.append(ts(_now()))
        sql = f"UPDATE billing_sessions SET {', '.join(sets)} WHERE {where}"
        all_params = [*params, *where_params]

        def op(conn: sqlite3.Connection) -> Session | None:
            if conn.execute(sql, all_params).rowcount != 1:
                return None
            return _load_session(conn, "session_id = ?", (session_id,))

        return await self._write(op)

    async def transition_session(
        self,
        session_id: str,
        expected: Collection[SessionStatus],
        target: SessionStatus,
        **changes: Any,
    ) -> Session | None:
        wanted = [SessionStatus(s).value for s in expected]
        return await self._cas(session_id, "status", wanted, SessionStatus(target).value, changes)

    async def update_session(
        self,
        session_id: str,
        *,
        if_status: Collection[SessionStatus] | None = None,
        **changes: Any,
    ) -> Session | None:
        """Set non-status fields; None when the session does not exist or, with `if_status`,
        is not in one of those statuses."""
        if if_status is None:
            return await self._cas(session_id, None, (), None, changes)
        wanted = [SessionStatus(s).value for s in if_status]
        return await self._cas(session_id, "status", wanted, None, changes)

    async def transition_payment(
        self,
        session_id: str,
        expected: Collection[PaymentStatus],
        target: PaymentStatus,
        **changes: Any,
    ) -> Session | None:
        wanted = [PaymentStatus(s).value for s in expected]
        return await self._cas(
            session_id, "payment_status", wanted, PaymentStatus(target).value, changes
        )
