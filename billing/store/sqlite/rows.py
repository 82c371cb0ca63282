"""Rows <-> billing objects: conversions, value checks, and loaders run in the connection's
thread."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import types
import typing
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
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
from csms.store.sqlite_support import dt, dt_req, ts

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

