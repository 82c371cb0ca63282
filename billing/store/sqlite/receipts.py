"""Receipts, numbered without gaps by a counter advanced in the inserting transaction."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from billing.models import (
    Receipt,
)
from billing.store.sqlite.base import SqliteConnection
from billing.store.sqlite.rows import (
    _RECEIPT_COLUMNS,
    _load_receipt,
    _now,
)
from billing.store.sqlite.schema import RECEIPT_COUNTER
from csms.store.sqlite_support import ts


class ReceiptTable(SqliteConnection):
    async def create_receipt(
        self,
        session_id: str,
        token: str,
        html: str,
        text: str,
        now: datetime,
        render: Any = None,
    ) -> Receipt:
        """One receipt per session, numbered 1, 2, 3... without gaps (the counter advances in
        the transaction that inserts the receipt; if `render` raises, nothing is stored and
        the number is not used). A second call returns the first receipt unchanged and does
        not call `render`. Raises ValueError for an unknown session or a token that another
        session's receipt already has."""
        created_at = ts(now)

        def op(conn: sqlite3.Connection) -> Receipt | None:
            existing = _load_receipt(conn, "session_id = ?", (session_id,))
            if existing is not None:
                return existing
            found = conn.execute(
                "SELECT 1 FROM billing_sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
            if found is None:
                return None
            row = conn.execute(
                "SELECT value FROM billing_counters WHERE name = ?", (RECEIPT_COUNTER,)
            ).fetchone()
            number = (0 if row is None else row[0]) + 1
            body, plain = (html, text) if render is None else render(number)
            try:
                conn.execute(
                    f"INSERT INTO billing_receipts ({_RECEIPT_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, NULL)",
                    (session_id, number, token, body, plain, created_at),
                )
            except sqlite3.IntegrityError as exc:
                if "billing_receipts.token" in str(exc):
                    raise ValueError(f"receipt token already used: {token!r}") from exc
                raise
            conn.execute(
                "INSERT INTO billing_counters (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (RECEIPT_COUNTER, number),
            )
            conn.execute(
                "UPDATE billing_sessions SET receipt_url = ?, updated_at = ?,"
                " version = version + 1 WHERE session_id = ?",
                (f"/receipts/{token}", ts(_now()), session_id),
            )
            return _load_receipt(conn, "session_id = ?", (session_id,))

        result = await self._write(op)
        if result is None:
            raise ValueError(f"unknown session {session_id!r}")
        return result

    async def get_receipt(self, session_id: str) -> Receipt | None:
        return await self._read(lambda conn: _load_receipt(conn, "session_id = ?", (session_id,)))

    async def receipt_by_token(self, token: str) -> Receipt | None:
        return await self._read(lambda conn: _load_receipt(conn, "token = ?", (token,)))

    async def mark_receipt_emailed(self, session_id: str, at: datetime) -> None:
        """Set emailed_at (a later send overwrites it); nothing when there is no receipt."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE billing_receipts SET emailed_at = ? WHERE session_id = ?",
                (ts(at), session_id),
            )

        await self._write(op)
