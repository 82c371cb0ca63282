"""Rows <-> billing objects: conversions, value checks, and loaders run in the connection's
thread."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from enum import Enum
from typing import Any

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
    StopRequester,
)
from billing.store.values import SESSION_DATETIMES, SESSION_FIELDS, check_session_changes
from csms.store.sqlite_support import dt, dt_req, ts

# conversions ------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


_SESSION_COLUMNS = ", ".join(SESSION_FIELDS)

_OPERATION_COLUMNS = (
    "session_id, seq, type, amount, status, idempotency_key, created_at, updated_at, error,"
    " charge_id, raw, fingerprint"
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


def _session_changes(changes: dict[str, Any]) -> list[tuple[str, Any]]:
    """Check `changes` (Session field names and values) and return (column, db value)."""
    check_session_changes(changes)
    return [(name, _db_value(value)) for name, value in changes.items()]


def _session(row: sqlite3.Row) -> Session:
    values: dict[str, Any] = {name: row[name] for name in SESSION_FIELDS}
    for name in SESSION_DATETIMES:
        values[name] = dt(values[name])
    values["method"] = Method(values["method"])
    values["status"] = SessionStatus(values["status"])
    values["payment_status"] = PaymentStatus(values["payment_status"])
    values["save_card"] = bool(values["save_card"])
    if values["stop_requested_by"] is not None:
        values["stop_requested_by"] = StopRequester(values["stop_requested_by"])
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
        fingerprint=row["fingerprint"],
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

