"""SQLite adapter of the billing store port (`billing.store.BillingStore`), on aiosqlite.

In production it shares the charging store's file (`data/csms.db`), so every table is prefixed
`billing_` and the schema version lives in `billing_meta` (PRAGMA user_version belongs to the
charging store). It keeps its own connection: WAL lets the charging store's reader run alongside,
and `BEGIN IMMEDIATE` + busy_timeout serialise its writes with the charging store's writer.

Every store call is ONE synchronous function run in the connection's thread: a write runs inside
its own `BEGIN IMMEDIATE ... COMMIT`, so it is atomic, and a caller cancelled while waiting
cannot leave a transaction half done. Billing writes are few, so there is no group commit.

Datetimes are stored as fixed-width ISO-8601 UTC text (microseconds, `+00:00`), so text order
is time order; enums as their string values; `raw` and job payloads as JSON text.

Schema history (kept in `billing_meta.schema_version`; each step only adds):
  1. sessions, operations ledger, saved cards, station tariffs, webhook dedup;
  2. the money-job outbox (`billing_jobs`), receipts (`billing_receipts`) and the named
     counters that number receipts (`billing_counters`);
  3. on sessions: the recorded transaction (meter_start, meter_stop, charging_started_at,
     stopped_at, stop_reason) and `version`, bumped by every session write.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import types
import typing
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from billing.models import (
    Job,
    JobKind,
    JobStatus,
    Method,
    Operation,
    OperationStatus,
    OperationType,
    PaymentStatus,
    Receipt,
    SavedCard,
    Session,
    SessionStatus,
)
from csms.store.ports import StoreError
from csms.store.sqlite_support import connect, dt, dt_req, in_thread, ts

T = TypeVar("T")

SCHEMA_VERSION = 3


class DuplicateSession(ValueError):
    """create_session: a session with this session_id or id_tag already exists."""


_SCHEMA_V1 = [
    """
    CREATE TABLE IF NOT EXISTS billing_sessions (
        session_id           TEXT PRIMARY KEY,
        station_id           TEXT NOT NULL,
        connector_id         INTEGER NOT NULL,
        method               TEXT NOT NULL,
        id_tag               TEXT NOT NULL UNIQUE,
        requested_amount     INTEGER NOT NULL,
        email                TEXT,
        cpf                  TEXT,
        currency             TEXT NOT NULL,
        price_per_kwh        TEXT NOT NULL,
        fixed_connection_fee TEXT NOT NULL,
        status               TEXT NOT NULL,
        created_at           TEXT NOT NULL,
        updated_at           TEXT NOT NULL,
        save_card            INTEGER NOT NULL DEFAULT 0,
        driver_id_tag        TEXT,
        transaction_id       INTEGER,
        energy_wh            INTEGER NOT NULL DEFAULT 0,
        cost_cents           INTEGER NOT NULL DEFAULT 0,
        starting_at          TEXT,
        ended_at             TEXT,
        failure_reason       TEXT,
        payment_status       TEXT NOT NULL,
        order_id             TEXT,
        charge_id            TEXT,
        authorized_amount    INTEGER NOT NULL DEFAULT 0,
        captured_amount      INTEGER NOT NULL DEFAULT 0,
        refunded_amount      INTEGER NOT NULL DEFAULT 0,
        pix_qr_code          TEXT,
        pix_qr_code_url      TEXT,
        pix_expires_at       TEXT,
        card_reference       TEXT,
        receipt_url          TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS billing_sessions_created ON billing_sessions (created_at)",
    "CREATE INDEX IF NOT EXISTS billing_sessions_station"
    " ON billing_sessions (station_id, created_at)",
    "CREATE INDEX IF NOT EXISTS billing_sessions_status ON billing_sessions (status, created_at)",
    "CREATE INDEX IF NOT EXISTS billing_sessions_transaction"
    " ON billing_sessions (transaction_id) WHERE transaction_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS billing_sessions_charge"
    " ON billing_sessions (charge_id) WHERE charge_id IS NOT NULL",
    """
    CREATE TABLE IF NOT EXISTS billing_operations (
        idempotency_key TEXT PRIMARY KEY,
        session_id      TEXT NOT NULL REFERENCES billing_sessions (session_id),
        seq             INTEGER NOT NULL,
        type            TEXT NOT NULL,
        amount          INTEGER NOT NULL,
        status          TEXT NOT NULL,
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL,
        error           TEXT,
        charge_id       TEXT,
        raw             TEXT,
        UNIQUE (session_id, seq)
    )
    """,
    "CREATE INDEX IF NOT EXISTS billing_operations_pending"
    " ON billing_operations (created_at) WHERE status = 'PENDING'",
    """
    CREATE TABLE IF NOT EXISTS billing_saved_cards (
        driver_id_tag  TEXT PRIMARY KEY,
        card_reference TEXT NOT NULL,
        email          TEXT,
        cpf            TEXT,
        created_at     TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS billing_station_tariffs (
        station_id           TEXT PRIMARY KEY,
        price_per_kwh        TEXT NOT NULL,
        fixed_connection_fee TEXT NOT NULL,
        updated_at           TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS billing_webhooks (
        gateway     TEXT NOT NULL,
        event_id    TEXT NOT NULL,
        body        TEXT NOT NULL,
        received_at TEXT NOT NULL,
        PRIMARY KEY (gateway, event_id)
    ) WITHOUT ROWID
    """,
]

# v2 only adds tables, so a v1 database upgrades in place.
_SCHEMA_V2 = [
    """
    CREATE TABLE IF NOT EXISTS billing_jobs (
        job_id          TEXT PRIMARY KEY,
        kind            TEXT NOT NULL,
        session_id      TEXT NOT NULL,
        payload         TEXT NOT NULL,
        status          TEXT NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        lease_until     TEXT,
        created_at      TEXT NOT NULL,
        updated_at      TEXT NOT NULL,
        last_error      TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS billing_jobs_due"
    " ON billing_jobs (next_attempt_at) WHERE status IN ('PENDING', 'RUNNING')",
    "CREATE INDEX IF NOT EXISTS billing_jobs_session ON billing_jobs (session_id, created_at)",
    "CREATE INDEX IF NOT EXISTS billing_jobs_created ON billing_jobs (created_at)",
    """
    CREATE TABLE IF NOT EXISTS billing_receipts (
        session_id TEXT PRIMARY KEY REFERENCES billing_sessions (session_id),
        number     INTEGER NOT NULL UNIQUE,
        token      TEXT NOT NULL UNIQUE,
        html       TEXT NOT NULL,
        text       TEXT NOT NULL,
        created_at TEXT NOT NULL,
        emailed_at TEXT
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS billing_counters (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    )
    """,
]

# v3: what billing records of its transaction (settlement and receipts read no charging data)
# and the session's version, the compare-and-set token every session write bumps. Columns are
# added only when missing, so re-running a step (a database whose version was lowered) is safe.
_V3_SESSION_COLUMNS = {
    "meter_start": "INTEGER",
    "meter_stop": "INTEGER",
    "charging_started_at": "TEXT",
    "stopped_at": "TEXT",
    "stop_reason": "TEXT",
    "version": "INTEGER NOT NULL DEFAULT 0",
}


def _add_session_columns(conn: sqlite3.Connection) -> None:
    present = {row[1] for row in conn.execute("PRAGMA table_info(billing_sessions)")}
    for name, decl in _V3_SESSION_COLUMNS.items():
        if name not in present:
            conn.execute(f"ALTER TABLE billing_sessions ADD COLUMN {name} {decl}")


Migration = str | Callable[[sqlite3.Connection], None]
# schema version -> steps (SQL statements or functions) bringing the tables to that version
_MIGRATIONS: dict[int, list[Migration]] = {1: [*_SCHEMA_V1], 2: [*_SCHEMA_V2],
                                           3: [_add_session_columns]}

RECEIPT_COUNTER = "receipt_number"


# conversions ------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


_SESSION_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Session))
_SESSION_TYPES: dict[str, Any] = typing.get_type_hints(Session)
_SESSION_COLUMNS = ", ".join(_SESSION_FIELDS)
_SESSION_DATETIMES = frozenset(
    name for name, hint in _SESSION_TYPES.items() if datetime in (hint, *typing.get_args(hint))
)
# Fields a caller may never set through changes: the key, the two CAS-guarded statuses (moved
# only by their own transition_*), and what the store owns (timestamps, version).
_PROTECTED_FIELDS = frozenset(
    {"session_id", "status", "payment_status", "created_at", "updated_at", "version"}
)

_OPERATION_COLUMNS = (
    "session_id, seq, type, amount, status, idempotency_key, created_at, updated_at, error,"
    " charge_id, raw"
)
_CARD_COLUMNS = "driver_id_tag, card_reference, email, cpf, created_at"
_JOB_COLUMNS = (
    "job_id, kind, session_id, payload, status, attempts, next_attempt_at, lease_until,"
    " created_at, updated_at, last_error"
)
_RECEIPT_COLUMNS = "session_id, number, token, html, text, created_at, emailed_at"


def _db_value(value: Any) -> Any:
    """A Python value as stored: datetimes as UTC text, enums as their value, bools as 0/1."""
    if isinstance(value, datetime):
        return ts(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bool):
        return int(value)
    return value


def _check_value(name: str, value: Any) -> None:
    """Reject a value that does not fit the Session field's type (floats for cents, etc.)."""
    hint = _SESSION_TYPES[name]
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for kind in allowed:
        if kind is type(None):
            if value is None:
                return
        elif kind is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return
        elif isinstance(kind, type) and issubclass(kind, Enum):
            if isinstance(value, str) and value in kind._value2member_map_:
                return
        elif isinstance(value, kind):
            return
    raise ValueError(f"invalid value for session field {name!r}: {value!r}")


def _check_decimal_text(name: str, value: Any) -> None:
    """A tariff value must be a string holding a finite, non-negative decimal ("1.50")."""
    try:
        amount = Decimal(value) if isinstance(value, str) else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or amount < 0:
        raise ValueError(f"{name} must be a non-negative decimal string: {value!r}")


def _session_changes(changes: dict[str, Any]) -> list[tuple[str, Any]]:
    """Validate `changes` (Session field names and values) and return (column, db value)."""
    unknown = sorted(set(changes) - set(_SESSION_FIELDS))
    if unknown:
        raise ValueError(f"unknown session fields: {', '.join(unknown)}")
    protected = sorted(set(changes) & _PROTECTED_FIELDS)
    if protected:
        raise ValueError(f"session fields not settable here: {', '.join(protected)}")
    for name, value in changes.items():
        _check_value(name, value)
    return [(name, _db_value(value)) for name, value in changes.items()]


def _session(row: sqlite3.Row) -> Session:
    values: dict[str, Any] = {name: row[name] for name in _SESSION_FIELDS}
    for name in _SESSION_DATETIMES:
        values[name] = dt(values[name])
    values["method"] = Method(values["method"])
    values["status"] = SessionStatus(values["status"])
    values["payment_status"] = PaymentStatus(values["payment_status"])
    values["save_card"] = bool(values["save_card"])
    return Session(**values)


def _operation(row: sqlite3.Row) -> Operation:
    return Operation(
        session_id=row["session_id"],
        seq=row["seq"],
        type=OperationType(row["type"]),
        amount=row["amount"],
        status=OperationStatus(row["status"]),
        idempotency_key=row["idempotency_key"],
        created_at=dt_req(row["created_at"]),
        updated_at=dt_req(row["updated_at"]),
        error=row["error"],
        charge_id=row["charge_id"],
        raw=None if row["raw"] is None else json.loads(row["raw"]),
    )


def _card(row: sqlite3.Row) -> SavedCard:
    return SavedCard(
        driver_id_tag=row["driver_id_tag"],
        card_reference=row["card_reference"],
        email=row["email"],
        cpf=row["cpf"],
        created_at=dt_req(row["created_at"]),
    )


def _job(row: sqlite3.Row) -> Job:
    return Job(
        job_id=row["job_id"],
        kind=JobKind(row["kind"]),
        session_id=row["session_id"],
        payload=json.loads(row["payload"]),
        status=JobStatus(row["status"]),
        attempts=row["attempts"],
        next_attempt_at=dt_req(row["next_attempt_at"]),
        lease_until=dt(row["lease_until"]),
        created_at=dt_req(row["created_at"]),
        updated_at=dt_req(row["updated_at"]),
        last_error=row["last_error"],
    )


def _receipt(row: sqlite3.Row) -> Receipt:
    return Receipt(
        session_id=row["session_id"],
        number=row["number"],
        token=row["token"],
        html=row["html"],
        text=row["text"],
        created_at=dt_req(row["created_at"]),
        emailed_at=dt(row["emailed_at"]),
    )


# synchronous helpers (run in the connection's thread) -----------------------------------------


def _write_tx(conn: sqlite3.Connection, op: Callable[[sqlite3.Connection], T]) -> T:
    """Run `op` inside one BEGIN IMMEDIATE transaction; commit on success, else roll back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = op(conn)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    return result


def _load_session(conn: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> Session | None:
    row = conn.execute(
        f"SELECT {_SESSION_COLUMNS} FROM billing_sessions WHERE {where}"
        " ORDER BY created_at DESC, rowid DESC LIMIT 1",
        params,
    ).fetchone()
    return None if row is None else _session(row)


def _bump(conn: sqlite3.Connection, session_id: str, now: str) -> None:
    """A write that changes what a session's money decisions rest on: version + 1."""
    conn.execute(
        "UPDATE billing_sessions SET version = version + 1, updated_at = ? WHERE session_id = ?",
        (now, session_id),
    )


def _load_operation(conn: sqlite3.Connection, key: str) -> Operation | None:
    row = conn.execute(
        f"SELECT {_OPERATION_COLUMNS} FROM billing_operations WHERE idempotency_key = ?", (key,)
    ).fetchone()
    return None if row is None else _operation(row)


def _load_job(conn: sqlite3.Connection, job_id: str) -> Job | None:
    row = conn.execute(
        f"SELECT {_JOB_COLUMNS} FROM billing_jobs WHERE job_id = ?", (job_id,)
    ).fetchone()
    return None if row is None else _job(row)


def _load_receipt(conn: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> Receipt | None:
    row = conn.execute(
        f"SELECT {_RECEIPT_COLUMNS} FROM billing_receipts WHERE {where}", params
    ).fetchone()
    return None if row is None else _receipt(row)


def _migrate(conn: sqlite3.Connection) -> None:
    """Create/upgrade the billing tables to SCHEMA_VERSION (kept in billing_meta)."""

    def op(conn: sqlite3.Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS billing_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        row = conn.execute("SELECT value FROM billing_meta WHERE key = 'schema_version'").fetchone()
        version = 0 if row is None else int(row[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"billing schema version {version} is newer than this build ({SCHEMA_VERSION})"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for step in _MIGRATIONS[target]:
                if isinstance(step, str):
                    conn.execute(step)
                else:
                    step(conn)
        conn.execute(
            "INSERT INTO billing_meta (key, value) VALUES ('schema_version', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(max(version, SCHEMA_VERSION)),),
        )

    _write_tx(conn, op)


class SqliteBillingStore:
    """`BillingStore` on a SQLite file (WAL), one connection, one IMMEDIATE transaction a write."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    # plumbing ---------------------------------------------------------------------------------

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

    # sessions ---------------------------------------------------------------------------------

    async def create_session(self, session: Session) -> None:
        """Insert; raises DuplicateSession when session_id or id_tag is taken, ValueError when
        a field does not fit its type (a float amount, an unknown status...)."""
        for name in _SESSION_FIELDS:
            _check_value(name, getattr(session, name))
        values = [_db_value(getattr(session, name)) for name in _SESSION_FIELDS]
        placeholders = ", ".join("?" for _ in _SESSION_FIELDS)

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

    async def list_sessions(
        self,
        *,
        statuses: Collection[SessionStatus] | None = None,
        station_id: str | None = None,
        limit: int = 100,
    ) -> list[Session]:
        """Newest first (created_at, then insertion order); `statuses` empty matches nothing."""
        return await self._newest(
            "billing_sessions", _SESSION_COLUMNS, _session,
            None if statuses is None else [SessionStatus(s).value for s in statuses],
            ("station_id", station_id), limit)

    async def _newest(self, table: str, columns: str, load: Callable[[sqlite3.Row], T],
                      statuses: list[str] | None, match: tuple[str, Any], limit: int,
                      ) -> list[T]:
        """Rows of `table`, newest first, filtered by status (None: any; empty: none) and by
        one column when its value is not None."""
        if statuses is not None and not statuses:
            return []
        where: list[str] = []
        params: list[Any] = []
        if statuses is not None:
            where.append(f"status IN ({', '.join('?' for _ in statuses)})")
            params.extend(statuses)
        column, value = match
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        params.append(max(limit, 0))
        sql = f"SELECT {columns} FROM {table} {clause} ORDER BY created_at DESC, rowid DESC LIMIT ?"
        return await self._read(lambda conn: [load(row) for row in conn.execute(sql, params)])

    async def _cas(
        self,
        session_id: str,
        column: str | None,
        expected: Collection[str],
        target: str | None,
        changes: dict[str, Any],
    ) -> Session | None:
        """UPDATE the session (status column -> target if it is in `expected`) with changes.

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

    async def update_session(self, session_id: str, **changes: Any) -> Session | None:
        """Set non-status fields; None when the session does not exist."""
        return await self._cas(session_id, None, (), None, changes)

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

    # operations ledger ------------------------------------------------------------------------

    async def begin_operation(
        self,
        session_id: str,
        type: OperationType,
        amount: int,
        idempotency_key: str,
        charge_id: str | None = None,
        *,
        at_version: int | None = None,
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
                " VALUES (?, ?, ?, ?, 'PENDING', ?, ?, ?, NULL, ?, NULL)",
                (session_id, seq, kind, amount, idempotency_key, now, now, charge_id),
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
        without finishing it; billing.service uses it to keep a retry's context.
        """
        final = OperationStatus(status)
        raw_text = None if raw is None else json.dumps(raw)

        def op(conn: sqlite3.Connection) -> Operation | None:
            conn.execute(
                "UPDATE billing_operations SET status = ?, error = ?,"
                " charge_id = COALESCE(?, charge_id), raw = ?, updated_at = ?"
                " WHERE idempotency_key = ? AND status = 'PENDING'",
                (final.value, error, charge_id, raw_text, ts(_now()), idempotency_key),
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
            found = _load_operation(conn, idempotency_key)
            if found is None or found.status is not OperationStatus.PENDING:
                return None
            now = ts(_now())
            cursor = conn.execute(
                f"UPDATE billing_sessions SET {sets}updated_at = ?, version = version + 1"
                " WHERE session_id = ? AND version = ?",
                (*[value for _, value in pairs], now, found.session_id, session_version),
            )
            if cursor.rowcount != 1:
                return None
            conn.execute(
                "UPDATE billing_operations SET status = 'SUCCEEDED', error = NULL,"
                " raw = COALESCE(?, raw), updated_at = ? WHERE idempotency_key = ?",
                (raw_text, now, idempotency_key),
            )
            return _load_session(conn, "session_id = ?", (found.session_id,))

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

    # saved cards ------------------------------------------------------------------------------

    async def save_card(self, card: SavedCard) -> None:
        """Upsert by driver_id_tag: the new card replaces the old one entirely."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO billing_saved_cards ({_CARD_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (driver_id_tag) DO UPDATE SET"
                " card_reference = excluded.card_reference, email = excluded.email,"
                " cpf = excluded.cpf, created_at = excluded.created_at",
                (
                    card.driver_id_tag,
                    card.card_reference,
                    card.email,
                    card.cpf,
                    ts(card.created_at),
                ),
            )

        await self._write(op)

    async def saved_card(self, driver_id_tag: str) -> SavedCard | None:
        def op(conn: sqlite3.Connection) -> SavedCard | None:
            row = conn.execute(
                f"SELECT {_CARD_COLUMNS} FROM billing_saved_cards WHERE driver_id_tag = ?",
                (driver_id_tag,),
            ).fetchone()
            return None if row is None else _card(row)

        return await self._read(op)

    # tariffs ----------------------------------------------------------------------------------

    async def station_tariff(self, station_id: str) -> tuple[str, str] | None:
        def op(conn: sqlite3.Connection) -> tuple[str, str] | None:
            row = conn.execute(
                "SELECT price_per_kwh, fixed_connection_fee FROM billing_station_tariffs"
                " WHERE station_id = ?",
                (station_id,),
            ).fetchone()
            return None if row is None else (row[0], row[1])

        return await self._read(op)

    async def set_station_tariff(
        self, station_id: str, price_per_kwh: str, fixed_connection_fee: str
    ) -> None:
        """Upsert a station's override; both values must be non-negative decimal strings."""
        for name, value in (
            ("price_per_kwh", price_per_kwh),
            ("fixed_connection_fee", fixed_connection_fee),
        ):
            _check_decimal_text(name, value)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO billing_station_tariffs"
                " (station_id, price_per_kwh, fixed_connection_fee, updated_at)"
                " VALUES (?, ?, ?, ?)"
                " ON CONFLICT (station_id) DO UPDATE SET price_per_kwh = excluded.price_per_kwh,"
                " fixed_connection_fee = excluded.fixed_connection_fee,"
                " updated_at = excluded.updated_at",
                (station_id, price_per_kwh, fixed_connection_fee, ts(_now())),
            )

        await self._write(op)

    # webhooks ---------------------------------------------------------------------------------

    async def record_webhook(self, gateway: str, event_id: str, body: dict[str, Any]) -> bool:
        text = json.dumps(body)

        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO billing_webhooks (gateway, event_id, body, received_at)"
                " VALUES (?, ?, ?, ?)",
                (gateway, event_id, text, ts(_now())),
            )
            return cursor.rowcount == 1

        return await self._write(op)

    async def forget_webhook(self, gateway: str, event_id: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM billing_webhooks WHERE gateway = ? AND event_id = ?",
                         (gateway, event_id))

        await self._write(op)

    # refunds ----------------------------------------------------------------------------------

    async def reopen_operation(self, idempotency_key: str) -> Operation | None:
        """FAILED -> PENDING (any type; error and raw kept until the next outcome). None when
        the key is unknown or the operation is not FAILED.

        It bumps the session's version: a reopened REFUND holds its share of the refund room
        again, so a refund decided on the older version must decide again."""

        def op(conn: sqlite3.Connection) -> Operation | None:
            now = ts(_now())
            cursor = conn.execute(
                "UPDATE billing_operations SET status = 'PENDING', updated_at = ?"
                " WHERE idempotency_key = ? AND status = 'FAILED'",
                (now, idempotency_key),
            )
            if cursor.rowcount != 1:
                return None
            reopened = _load_operation(conn, idempotency_key)
            assert reopened is not None
            _bump(conn, reopened.session_id, now)
            return reopened

        return await self._write(op)

    # jobs (outbox) ----------------------------------------------------------------------------

    async def add_job(self, job: Job) -> tuple[Job, bool]:
        """Insert the job as given; an existing job_id wins: (that job, False)."""
        if isinstance(job.attempts, bool) or not isinstance(job.attempts, int) or job.attempts < 0:
            raise ValueError(f"attempts must be a non-negative integer: {job.attempts!r}")
        values = (
            job.job_id,
            JobKind(job.kind).value,
            job.session_id,
            json.dumps(job.payload),
            JobStatus(job.status).value,
            job.attempts,
            ts(job.next_attempt_at),
            None if job.lease_until is None else ts(job.lease_until),
            ts(job.created_at),
            ts(job.updated_at),
            job.last_error,
        )

        def op(conn: sqlite3.Connection) -> tuple[Job, bool]:
            cursor = conn.execute(
                f"INSERT OR IGNORE INTO billing_jobs ({_JOB_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            stored = _load_job(conn, job.job_id)
            assert stored is not None
            return stored, cursor.rowcount == 1

        return await self._write(op)

    async def get_job(self, job_id: str) -> Job | None:
        return await self._read(lambda conn: _load_job(conn, job_id))

    async def list_jobs(
        self,
        *,
        statuses: Collection[JobStatus] | None = None,
        session_id: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Newest first (created_at, then insertion order); `statuses` empty matches nothing."""
        return await self._newest(
            "billing_jobs", _JOB_COLUMNS, _job,
            None if statuses is None else [JobStatus(s).value for s in statuses],
            ("session_id", session_id), limit)

    async def _job_cas(
        self,
        job_id: str,
        sets: str,
        set_params: list[Any],
        where: str,
        where_params: list[Any],
    ) -> Job | None:
        """UPDATE billing_jobs SET `sets`, updated_at WHERE job_id AND `where` (one statement,
        so the check and the change are one compare-and-set); the updated job, or None when
        the row did not match."""
        sql = f"UPDATE billing_jobs SET {sets}, updated_at = ? WHERE job_id = ? AND ({where})"

        def op(conn: sqlite3.Connection) -> Job | None:
            bound = [*set_params, ts(_now()), job_id, *where_params]
            if conn.execute(sql, bound).rowcount != 1:
                return None
            return _load_job(conn, job_id)

        return await self._write(op)

    async def claim_job(self, job_id: str, now: datetime, lease_until: datetime) -> Job | None:
        """-> RUNNING with lease_until, from PENDING with next_attempt_at <= now (whatever its
        delivery lease: the claim is that delivery arriving) or from RUNNING whose lease is
        expired (lease_until <= now, or missing). Each claim counts as an attempt, so a job
        whose runs never finish (they hang, or kill their worker) still runs out of attempts."""
        moment = ts(now)
        return await self._job_cas(
            job_id,
            "status = 'RUNNING', attempts = attempts + 1, lease_until = ?",
            [ts(lease_until)],
            "(status = 'PENDING' AND next_attempt_at <= ?)"
            " OR (status = 'RUNNING' AND (lease_until IS NULL OR lease_until <= ?))",
            [moment, moment],
        )

    async def reschedule_job(
        self, job_id: str, *, next_attempt_at: datetime, error: str
    ) -> Job | None:
        return await self._job_cas(
            job_id,
            "status = 'PENDING', last_error = ?, lease_until = NULL,"
            " next_attempt_at = ?",
            [error, ts(next_attempt_at)],
            "status = 'RUNNING'",
            [],
        )

    async def complete_job(self, job_id: str) -> Job | None:
        """RUNNING -> DONE (lease cleared, last_error kept)."""
        return await self._job_cas(
            job_id,
            "status = 'DONE', lease_until = NULL",
            [],
            "status = 'RUNNING'",
            [],
        )

    async def fail_job(self, job_id: str, error: str) -> Job | None:
        """RUNNING -> FAILED (last_error, lease cleared)."""
        return await self._job_cas(
            job_id,
            "status = 'FAILED', last_error = ?, lease_until = NULL",
            [error],
            "status = 'RUNNING'",
            [],
        )

    async def retry_job(self, job_id: str, now: datetime) -> Job | None:
        """FAILED -> PENDING, attempts 0, next_attempt_at = now, lease cleared (last_error
        kept until the next outcome)."""
        return await self._job_cas(
            job_id,
            "status = 'PENDING', attempts = 0, next_attempt_at = ?, lease_until = NULL",
            [ts(now)],
            "status = 'FAILED'",
            [],
        )

    async def due_jobs(self, now: datetime, limit: int = 100) -> list[Job]:
        """PENDING with next_attempt_at <= now and no live lease, and RUNNING with an expired
        (or missing) lease; a lease is expired when lease_until <= now. Oldest next_attempt_at
        first (then created_at, job_id)."""
        moment = ts(now)

        def op(conn: sqlite3.Connection) -> list[Job]:
            rows = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM billing_jobs WHERE"
                " (status = 'PENDING' AND next_attempt_at <= ?"
                " AND (lease_until IS NULL OR lease_until <= ?))"
                " OR (status = 'RUNNING' AND (lease_until IS NULL OR lease_until <= ?))"
                " ORDER BY next_attempt_at, created_at, job_id LIMIT ?",
                (moment, moment, moment, max(limit, 0)),
            ).fetchall()
            return [_job(row) for row in rows]

        return await self._read(op)

    async def lease_job(
        self, job_id: str, expected_lease: datetime | None, lease_until: datetime
    ) -> bool:
        """Set lease_until (and status PENDING) on a PENDING or RUNNING job whose lease is
        exactly `expected_lease` (None: no lease); False otherwise. Pass the lease as read
        from get_job/due_jobs."""
        expected = None if expected_lease is None else ts(expected_lease)
        job = await self._job_cas(
            job_id,
            "status = 'PENDING', lease_until = ?",
            [ts(lease_until)],
            "status IN ('PENDING', 'RUNNING') AND lease_until IS ?",
            [expected],
        )
        return job is not None

    # receipts ---------------------------------------------------------------------------------

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
