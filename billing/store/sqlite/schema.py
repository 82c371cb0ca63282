"""The billing tables, their migrations (kept in `billing_meta.schema_version`), and the
one-transaction write helper."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

from csms.store.ports import StoreError
from csms.store.sqlite_support import write_transaction

T = TypeVar("T")

SCHEMA_VERSION = 8


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


# v4: the stop request (who asked, when, attempts, last error, next attempt). A session left
# STOPPING by an older build had its stop asked at its last update: the sweep sends it again.
_V4_SESSION_COLUMNS = {
    "stop_requested_by": "TEXT",
    "stop_requested_at": "TEXT",
    "stop_attempts": "INTEGER NOT NULL DEFAULT 0",
    "stop_last_attempt_at": "TEXT",
    "stop_last_error": "TEXT",
    "stop_next_at": "TEXT",
}


def _add_columns(table: str, columns: dict[str, str]) -> Callable[[sqlite3.Connection], None]:
    """A step that adds the columns a table lacks (safe to run again)."""
    def add(conn: sqlite3.Connection) -> None:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, decl in columns.items():
            if name not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")

    return add


# v5: the fingerprint of the request that created an operation (operator refunds: the same
# Idempotency-Key replays only the same amount and reason). Old rows keep NULL.
_V5_OPERATION_COLUMNS = {"fingerprint": "TEXT"}
# v6: the card's last four digits as the gateway reported them (receipts).
_V6_SESSION_COLUMNS = {"card_last4": "TEXT"}
# v7: unattended terminals (CCV): the card's one-way token on a session, the terminal bound to
# each station, and the stops asked at a terminal.
_V7_SESSION_COLUMNS = {"card_fingerprint": "TEXT"}
_SCHEMA_V7 = [
    """
    CREATE TABLE IF NOT EXISTS billing_terminals (
        station_id           TEXT PRIMARY KEY,
        terminal_id          TEXT NOT NULL,
        management_system_id TEXT NOT NULL,
        updated_at           TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS billing_terminal_requests (
        request_id   TEXT PRIMARY KEY,
        station_id   TEXT NOT NULL,
        connector_id INTEGER NOT NULL,
        session_id   TEXT NOT NULL,
        status       TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL,
        reference    TEXT,
        error        TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS billing_terminal_requests_reference"
    " ON billing_terminal_requests (reference) WHERE reference IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS billing_terminal_requests_pending"
    " ON billing_terminal_requests (created_at) WHERE status = 'PENDING'",
]
# v8: our own receive times of a transaction's start and stop (plausibility), and the REVIEW
# deadline. A session left in REVIEW by an older build gets its deadline from the sweep.
_V8_SESSION_COLUMNS = {"seen_started_at": "TEXT", "seen_stopped_at": "TEXT",
                       "review_due_at": "TEXT"}


Migration = str | Callable[[sqlite3.Connection], None]
# schema version -> steps (SQL statements or functions) bringing the tables to that version
_MIGRATIONS: dict[int, list[Migration]] = {
    1: [*_SCHEMA_V1],
    2: [*_SCHEMA_V2],
    3: [_add_columns("billing_sessions", _V3_SESSION_COLUMNS)],
    4: [_add_columns("billing_sessions", _V4_SESSION_COLUMNS),
        "UPDATE billing_sessions SET stop_requested_at = updated_at"
        " WHERE status = 'STOPPING' AND stop_requested_at IS NULL"],
    5: [_add_columns("billing_operations", _V5_OPERATION_COLUMNS)],
    6: [_add_columns("billing_sessions", _V6_SESSION_COLUMNS)],
    7: [_add_columns("billing_sessions", _V7_SESSION_COLUMNS), *_SCHEMA_V7],
    8: [_add_columns("billing_sessions", _V8_SESSION_COLUMNS),
        "CREATE INDEX IF NOT EXISTS billing_operations_settled"
        " ON billing_operations (status, updated_at)"],
}

RECEIPT_COUNTER = "receipt_number"



def _write_tx(conn: sqlite3.Connection, op: Callable[[sqlite3.Connection], T]) -> T:
    """Run `op` inside one BEGIN IMMEDIATE transaction; commit on success, else roll back."""
    with write_transaction(conn):
        return op(conn)


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

