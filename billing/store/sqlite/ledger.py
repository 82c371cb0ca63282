"""The operations ledger: begin (optionally at a session version), finish, settle, reopen."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection
from datetime import datetime
from typing import Any

from billing.models import (
    Operation,
    OperationStatus,
    OperationType,
    PaymentStatus,
    Session,
)
from billing.store.sqlite.base import SqliteConnection
from billing.store.sqlite.rows import (
    _OPERATION_COLUMNS,
    _bump,
    _load_operation,
    _load_session,
    _now,
    _operation,
    _session_changes,
)
from csms.store.sqlite_support import ts


def _step(conn: sqlite3.Connection, key: str, expected: OperationStatus,
          at_version: int | None, session_sets: str, session_params: list[Any],
          op_sets: str, op_params: list[Any]) -> Operation | None:
    """The ledger's one write of two rows (in the caller's transaction): the operation, if it
    is still `expected`, and its session, if still at `at_version` (None: any), version + 1.
    The operation as it was, or None when nothing was written."""
    found = _load_operation(conn, key)
    if found is None or found.status is not expected:
        return None
    now = ts(_now())
    cursor = conn.execute(
        f"UPDATE billing_sessions SET {session_sets}updated_at = ?, version = version + 1"
        " WHERE session_id = ? AND (? IS NULL OR version = ?)",
        (*session_params, now, found.session_id, at_version, at_version),
    )
    if cursor.rowcount != 1:
        return None
    conn.execute(
        f"UPDATE billing_operations SET {op_sets}updated_at = ? WHERE idempotency_key = ?",
        (*op_params, now, key),
    )
    return found


class LedgerTable(SqliteConnection):
    async def begin_operation(
        self,
        session_id: str,
        type: OperationType,
        amount: int,
        idempotency_key: str,
        charge_id: str | None = None,
        *,
        at_version: int | None = None,
        fingerprint: str | None = None,
    ) -> tuple[Operation | None, bool]:
        """Record a PENDING operation (seq = next for the session); an existing key wins.

        With `at_version`: only if the session is still at that version, which the insert
        bumps; (None, False) otherwise. Raises ValueError for an unknown session or an amount
        that is not a non-negative int.
        """
        kind = OperationType(type).value
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise ValueError(f"amount must be a non-negative integer of cents: {amount!r}")

        def op(conn: sqlite3.Connection) -> tuple[Operation | None, bool] | None:
            existing = _load_operation(conn, idempotency_key)
            if existing is not None:
                return existing, False
            found = conn.execute(
                "SELECT version FROM billing_sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
            if found is None:
                return None
            if at_version is not None and found[0] != at_version:
                return None, False
            seq = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM billing_operations WHERE session_id = ?",
                (session_id,),
            ).fetchone()[0]
            now = ts(_now())
            conn.execute(
                f"INSERT INTO billing_operations ({_OPERATION_COLUMNS})"
                " VALUES (?, ?, ?, ?, 'PENDING', ?, ?, ?, NULL, ?, NULL, ?)",
                (session_id, seq, kind, amount, idempotency_key, now, now, charge_id,
                 fingerprint),
            )
            if at_version is not None:
                _bump(conn, session_id, now)
            created = _load_operation(conn, idempotency_key)
            assert created is not None
            return created, True

        result = await self._write(op)
        if result is None:
            raise ValueError(f"unknown session {session_id!r}")
        return result

    async def finish_operation(
        self,
        idempotency_key: str,
        status: OperationStatus,
        *,
        error: str | None = None,
        charge_id: str | None = None,
        raw: dict[str, Any] | None = None,
    ) -> Operation | None:
        """PENDING -> SUCCEEDED/FAILED; a finished operation is returned unchanged; None when
        the key is unknown. `charge_id=None` keeps the charge id recorded at begin.

        `status=PENDING` annotates a still-pending operation (error, charge id, raw context)
        without finishing it: the ledger keeps a retry's context, a given-up job its error;
        `raw=None` then keeps the context. Finishing replaces it (None: cleared).
        """
        final = OperationStatus(status)
        raw_text = None if raw is None else json.dumps(raw)
        keep = final is OperationStatus.PENDING and raw is None

        def op(conn: sqlite3.Connection) -> Operation | None:
            conn.execute(
                "UPDATE billing_operations SET status = ?, error = ?,"
                " charge_id = COALESCE(?, charge_id), raw = CASE WHEN ? THEN raw ELSE ? END,"
                " updated_at = ? WHERE idempotency_key = ? AND status = 'PENDING'",
                (final.value, error, charge_id, keep, raw_text, ts(_now()), idempotency_key),
            )
            return _load_operation(conn, idempotency_key)

        return await self._write(op)

    async def settle_operation(
        self,
        idempotency_key: str,
        *,
        session_version: int,
        changes: dict[str, Any],
        raw: dict[str, Any] | None = None,
    ) -> Session | None:
        """PENDING -> SUCCEEDED (error cleared; `raw` replaces the recorded context when given)
        and, in the same transaction, the session's `changes` (payment_status included, the one
        field besides transition_payment that may set it) with version + 1: both only if the
        operation is PENDING and its session is at `session_version`. The updated session, or
        None when nothing was written."""
        pairs = _session_changes({k: v for k, v in changes.items() if k != "payment_status"})
        if "payment_status" in changes:
            pairs.append(("payment_status", PaymentStatus(changes["payment_status"]).value))
        sets = "".join(f"{name} = ?, " for name, _ in pairs)
        raw_text = None if raw is None else json.dumps(raw)

        def op(conn: sqlite3.Connection) -> Session | None:
            found = _step(
                conn, idempotency_key, OperationStatus.PENDING, session_version,
                sets, [value for _, value in pairs],
                "status = 'SUCCEEDED', error = NULL, raw = COALESCE(?, raw), ", [raw_text],
            )
            return None if found is None else _load_session(
                conn, "session_id = ?", (found.session_id,))

        return await self._write(op)

    async def get_operation(self, idempotency_key: str) -> Operation | None:
        return await self._read(lambda conn: _load_operation(conn, idempotency_key))

    async def list_operations(self, session_id: str) -> list[Operation]:
        def op(conn: sqlite3.Connection) -> list[Operation]:
            rows = conn.execute(
                f"SELECT {_OPERATION_COLUMNS} FROM billing_operations WHERE session_id = ?"
                " ORDER BY seq",
                (session_id,),
            ).fetchall()
            return [_operation(row) for row in rows]

        return await self._read(op)

    async def pending_operations(self, older_than: datetime | None = None) -> list[Operation]:
        """PENDING operations begun at or before `older_than` (all when None), oldest first."""
        sql = f"SELECT {_OPERATION_COLUMNS} FROM billing_operations WHERE status = 'PENDING'"
        params: list[Any] = []
        if older_than is not None:
            sql += " AND created_at <= ?"
            params.append(ts(older_than))
        sql += " ORDER BY created_at, session_id, seq"

        def op(conn: sqlite3.Connection) -> list[Operation]:
            return [_operation(row) for row in conn.execute(sql, params).fetchall()]

        return await self._read(op)

    async def succeeded_total(self, types: Collection[OperationType], since: datetime) -> int:
        """One SUM over the ledger (index billing_operations_settled)."""
        wanted = [OperationType(t).value for t in types]
        if not wanted:
            return 0
        sql = ("SELECT COALESCE(SUM(amount), 0) FROM billing_operations WHERE status = ?"
               f" AND updated_at >= ? AND type IN ({', '.join('?' for _ in wanted)})")
        params = [OperationStatus.SUCCEEDED.value, ts(since), *wanted]
        return int(await self._read(lambda conn: conn.execute(sql, params).fetchone()[0]))

    async def reopen_operation(
        self, idempotency_key: str, *, at_version: int | None = None
    ) -> Operation | None:
        """FAILED -> PENDING (any type; error and raw kept until the next outcome). None when
        the key is unknown, the operation is not FAILED, or (with `at_version`) its session
        is no longer at that version.

        It bumps the session's version: a reopened REFUND holds its share of the refund room
        again, so a refund decided on the older version must decide again."""

        def op(conn: sqlite3.Connection) -> Operation | None:
            found = _step(conn, idempotency_key, OperationStatus.FAILED, at_version, "", [],
                          "status = 'PENDING', ", [])
            return None if found is None else _load_operation(conn, idempotency_key)

        return await self._write(op)
