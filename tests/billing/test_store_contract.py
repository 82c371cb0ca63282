"""The billing store contract on SQLite, plus SQLite-specific behaviour (shared file, schema)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from billing.models import JobStatus, OperationStatus, OperationType, PaymentStatus, SessionStatus
from billing.payment import begin_refund, settle_refund
from billing.store.ports import BillingStore
from billing.store.sqlite import (
    _MIGRATIONS,
    SCHEMA_VERSION,
    DuplicateSession,
    SqliteBillingStore,
)
from csms.store.ports import StoreError
from csms.store.sqlite import SCHEMA_VERSION as CHARGING_SCHEMA_VERSION
from csms.store.sqlite import SqliteStore
from tests.billing.store_contract import (
    BillingStoreContract,
    add,
    at,
    make_job,
    make_session,
)

V2_TABLES = {"billing_jobs", "billing_receipts", "billing_counters"}


class TestSqliteBillingStore(BillingStoreContract):
    pass


def test_satisfies_port() -> None:
    store: BillingStore = SqliteBillingStore("unused.db")  # type-checks against the Protocol
    for port in BillingStore.__mro__:  # the composed port and every aggregate's port
        for name in port.__dict__:
            if not name.startswith("_"):
                assert callable(getattr(store, name)), name


async def test_duplicate_is_a_value_error(store: BillingStore) -> None:
    await add(store, 1)
    with pytest.raises(DuplicateSession, match="TAG1"):
        await store.create_session(make_session(2, id_tag="TAG1"))
    with pytest.raises(DuplicateSession, match="S1"):
        await store.create_session(make_session(1, id_tag="OTHER"))
    assert issubclass(DuplicateSession, ValueError)


async def test_schema_wal_and_own_version(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "csms.db"
    store = SqliteBillingStore(str(path))
    await store.open()
    await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        # PRAGMA user_version belongs to the charging store
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
        version = conn.execute("SELECT value FROM billing_meta WHERE key = 'schema_version'")
        assert version.fetchone()[0] == str(SCHEMA_VERSION)
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
    assert all(name.startswith("billing_") for name in tables)
    assert V2_TABLES <= tables


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")
        return {row[0] for row in rows if not row[0].startswith("sqlite_")}


def _version(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        row = conn.execute("SELECT value FROM billing_meta WHERE key = 'schema_version'")
        return str(row.fetchone()[0])


async def test_upgrades_a_v1_database(tmp_path: Path) -> None:
    """A database written by the v1 schema gains the v2 tables on open, data untouched."""
    fresh = tmp_path / "fresh.db"
    store = SqliteBillingStore(str(fresh))
    await store.open()
    await store.close()

    path = tmp_path / "csms.db"
    with sqlite3.connect(path) as conn:  # exactly what a v1 build created
        conn.execute("CREATE TABLE billing_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        for statement in _MIGRATIONS[1]:
            conn.execute(statement)
        conn.execute("INSERT INTO billing_meta VALUES ('schema_version', '1')")
        conn.execute(
            "INSERT INTO billing_sessions (session_id, station_id, connector_id, method, id_tag,"
            " requested_amount, currency, price_per_kwh, fixed_connection_fee, status,"
            " created_at, updated_at, payment_status, authorized_amount, captured_amount)"
            " VALUES ('S1', 'CP1', 1, 'CREDIT_CARD', 'TAG1', 5000, 'BRL', '1.50', '2.00',"
            " 'COMPLETED', '2026-03-01T10:00:01.000000+00:00',"
            " '2026-03-01T10:00:01.000000+00:00', 'CAPTURED', 5000, 1200)"
        )
    assert not V2_TABLES & _tables(path)

    store = SqliteBillingStore(str(path))
    await store.open()
    try:
        assert _version(path) == str(SCHEMA_VERSION) == "8"
        assert _tables(path) == _tables(fresh)
        session = await store.get_session("S1")
        assert session is not None and session.captured_amount == 1200
        op, created = await begin_refund(store, "S1", 200, "S1:R1", 1200)
        assert created and op is not None
        refunded = await settle_refund(store, "S1:R1")
        assert refunded is not None and refunded.payment_status is PaymentStatus.PARTIALLY_REFUNDED
        _, created = await store.add_job(make_job())
        assert created
        receipt = await store.create_receipt("S1", "tok-1", "h", "t", at(5))
        assert receipt.number == 1
    finally:
        await store.close()


async def test_upgrades_a_v2_database(tmp_path: Path) -> None:
    """v3 adds the recorded transaction and the version to sessions already stored."""
    path = tmp_path / "csms.db"
    with sqlite3.connect(path) as conn:  # exactly what a v2 build created
        conn.execute("CREATE TABLE billing_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        for statement in [*_MIGRATIONS[1], *_MIGRATIONS[2]]:
            assert isinstance(statement, str)
            conn.execute(statement)
        conn.execute("INSERT INTO billing_meta VALUES ('schema_version', '2')")
        conn.execute(
            "INSERT INTO billing_sessions (session_id, station_id, connector_id, method, id_tag,"
            " requested_amount, currency, price_per_kwh, fixed_connection_fee, status,"
            " created_at, updated_at, payment_status, transaction_id)"
            " VALUES ('S1', 'CP1', 1, 'CREDIT_CARD', 'TAG1', 5000, 'BRL', '1.50', '2.00',"
            " 'CHARGING', '2026-03-01T10:00:01.000000+00:00',"
            " '2026-03-01T10:00:01.000000+00:00', 'AUTHORIZED', 7)"
        )
    store = SqliteBillingStore(str(path))
    await store.open()
    try:
        assert _version(path) == str(SCHEMA_VERSION)
        session = await store.get_session("S1")
        assert session is not None and session.version == 0 and not session.stop_recorded
        updated = await store.update_session("S1", meter_start=10, meter_stop=1010,
                                             stopped_at=at(9))
        assert updated is not None and updated.delivered_wh == 1000 and updated.version == 1
    finally:
        await store.close()


async def test_upgrades_a_v3_database(tmp_path: Path) -> None:
    """v4 records the stop request; a session an older build left STOPPING gets its request
    time (its last update) so the stop sweep sends it again."""
    path = tmp_path / "csms.db"
    with sqlite3.connect(path) as conn:  # exactly what a v3 build created
        conn.execute("CREATE TABLE billing_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        for target in (1, 2, 3):
            for step in _MIGRATIONS[target]:
                conn.execute(step) if isinstance(step, str) else step(conn)
        conn.execute("INSERT INTO billing_meta VALUES ('schema_version', '3')")
        for sid, tag, status in (("S1", "TAG1", "STOPPING"), ("S2", "TAG2", "CHARGING")):
            conn.execute(
                "INSERT INTO billing_sessions (session_id, station_id, connector_id, method,"
                " id_tag, requested_amount, currency, price_per_kwh, fixed_connection_fee,"
                " status, created_at, updated_at, payment_status, transaction_id) VALUES"
                " (?, 'CP1', 1, 'CREDIT_CARD', ?, 5000, 'BRL', '1.50', '2.00', ?,"
                " '2026-03-01T10:00:01.000000+00:00', '2026-03-01T10:05:00.000000+00:00',"
                " 'AUTHORIZED', 7)", (sid, tag, status))
    store = SqliteBillingStore(str(path))
    await store.open()
    try:
        assert _version(path) == str(SCHEMA_VERSION)
        stopping, charging = await store.get_session("S1"), await store.get_session("S2")
        assert stopping is not None and charging is not None
        assert stopping.stop_requested_at == datetime(2026, 3, 1, 10, 5, tzinfo=UTC)
        assert (stopping.stop_requested_by, stopping.stop_attempts) == (None, 0)
        assert charging.stop_requested_at is None
    finally:
        await store.close()


async def test_upgrades_a_v4_database(tmp_path: Path) -> None:
    """v5 adds the operation's request fingerprint; operations stored before keep NULL."""
    path = tmp_path / "csms.db"
    with sqlite3.connect(path) as conn:  # exactly what a v4 build created
        conn.execute("CREATE TABLE billing_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        for step in [*_MIGRATIONS[1], *_MIGRATIONS[2], *_MIGRATIONS[3], *_MIGRATIONS[4]]:
            conn.execute(step) if isinstance(step, str) else step(conn)
        conn.execute("INSERT INTO billing_meta VALUES ('schema_version', '4')")
        conn.execute(
            "INSERT INTO billing_sessions (session_id, station_id, connector_id, method, id_tag,"
            " requested_amount, currency, price_per_kwh, fixed_connection_fee, status,"
            " created_at, updated_at, payment_status, captured_amount)"
            " VALUES ('S1', 'CP1', 1, 'CREDIT_CARD', 'TAG1', 5000, 'BRL', '1.50', '2.00',"
            " 'COMPLETED', '2026-03-01T10:00:01.000000+00:00',"
            " '2026-03-01T10:00:01.000000+00:00', 'CAPTURED', 1200)"
        )
        conn.execute(
            "INSERT INTO billing_operations (idempotency_key, session_id, seq, type, amount,"
            " status, created_at, updated_at) VALUES ('S1:REFUND:k', 'S1', 1, 'REFUND', 100,"
            " 'SUCCEEDED', '2026-03-01T10:00:02.000000+00:00',"
            " '2026-03-01T10:00:02.000000+00:00')"
        )
    store = SqliteBillingStore(str(path))
    await store.open()
    try:
        assert _version(path) == str(SCHEMA_VERSION)
        old = await store.get_operation("S1:REFUND:k")
        assert old is not None and old.fingerprint is None and old.amount == 100
        new, _ = await store.begin_operation("S1", OperationType.REFUND, 50, "S1:REFUND:n",
                                             fingerprint="sha256:ab")
        assert new is not None and new.fingerprint == "sha256:ab"
    finally:
        await store.close()


async def test_reopening_an_upgraded_database_keeps_everything(tmp_path: Path) -> None:
    """open() on a database created before (v1 downgraded in place) adds the tables once."""
    path = tmp_path / "csms.db"
    store = SqliteBillingStore(str(path))
    await store.open()
    await add(store, 1, payment_status=PaymentStatus.CAPTURED, captured_amount=900)
    await store.begin_operation("S1", OperationType.CAPTURE, 900, "S1:CAPTURE")
    await store.finish_operation("S1:CAPTURE", OperationStatus.SUCCEEDED)
    await store.close()
    with sqlite3.connect(path) as conn:
        for table in V2_TABLES:
            conn.execute(f"DROP TABLE {table}")
        conn.execute("UPDATE billing_meta SET value = '1' WHERE key = 'schema_version'")

    for _ in range(2):  # the upgrade, then a plain reopen
        store = SqliteBillingStore(str(path))
        await store.open()
        try:
            assert _version(path) == str(SCHEMA_VERSION)
            assert V2_TABLES <= _tables(path)
            ops = await store.list_operations("S1")
            assert [(o.type, o.status) for o in ops] == [
                (OperationType.CAPTURE, OperationStatus.SUCCEEDED)
            ]
            await store.add_job(make_job())
            await store.create_receipt("S1", "tok-1", "h", "t", at(5))
        finally:
            await store.close()

    store = SqliteBillingStore(str(path))
    await store.open()
    try:
        jobs = await store.list_jobs(statuses=[JobStatus.PENDING])
        assert [j.job_id for j in jobs] == ["S1:REFUND"]
        receipt = await store.receipt_by_token("tok-1")
        assert receipt is not None and receipt.number == 1
    finally:
        await store.close()


async def test_refuses_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "csms.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE billing_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute(
            "INSERT INTO billing_meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION + 1),)
        )
    with pytest.raises(StoreError, match="newer"):
        await SqliteBillingStore(str(path)).open()


async def test_closed_store_refuses_calls(tmp_path: Path) -> None:
    store = SqliteBillingStore(str(tmp_path / "csms.db"))
    with pytest.raises(StoreError):
        await store.get_session("S1")
    await store.open()
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(StoreError):
        await store.record_webhook("sandbox", "evt", {})


async def test_shares_the_file_with_the_charging_store(tmp_path: Path) -> None:
    """Both stores open one file, in either order, and write to it concurrently."""
    path = str(tmp_path / "csms.db")
    billing = SqliteBillingStore(path)
    await billing.open()
    charging = SqliteStore(path)
    await charging.open()
    try:
        await add(billing, 1, status=SessionStatus.CHARGING)

        async def billing_writes() -> None:
            for n in range(40):
                await billing.begin_operation("S1", OperationType.REFUND, n, f"S1:R{n}")
                await billing.update_session("S1", energy_wh=n)

        async def charging_writes() -> None:
            for n in range(40):
                await charging.open_transaction("CP1", 1, f"T{n}", n, at(n))

        await asyncio.gather(billing_writes(), charging_writes())
        assert len(await billing.list_operations("S1")) == 40
        assert len(await charging.list_transactions(limit=100)) == 40
    finally:
        await charging.close()
        await billing.close()

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == CHARGING_SCHEMA_VERSION

    reopened = SqliteBillingStore(path)  # opening after the charging store's schema exists
    await reopened.open()
    try:
        session = await reopened.get_session("S1")
        assert session is not None and session.energy_wh == 39
        assert session.payment_status is PaymentStatus.PENDING
    finally:
        await reopened.close()
