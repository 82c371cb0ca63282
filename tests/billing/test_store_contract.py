"""The billing store contract on SQLite, plus SQLite-specific behaviour (shared file, schema)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from billing.models import OperationType, PaymentStatus, SessionStatus
from billing.store import BillingStore
from billing.store_sqlite import SCHEMA_VERSION, DuplicateSession, SqliteBillingStore
from csms.store.base import StoreError
from csms.store.sqlite import SCHEMA_VERSION as CHARGING_SCHEMA_VERSION
from csms.store.sqlite import SqliteStore
from tests.billing.store_contract import BillingStoreContract, add, at, make_session


@pytest.fixture
def store_factory(tmp_path: Path) -> Callable[[], BillingStore]:
    path = str(tmp_path / "csms.db")
    return lambda: SqliteBillingStore(path)


@pytest.fixture
async def store(store_factory: Callable[[], BillingStore]) -> AsyncIterator[BillingStore]:
    store = store_factory()
    await store.open()
    try:
        yield store
    finally:
        await store.close()


class TestSqliteBillingStore(BillingStoreContract):
    pass


def test_satisfies_port() -> None:
    store: BillingStore = SqliteBillingStore("unused.db")  # type-checks against the Protocol
    for name in BillingStore.__dict__:
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
                await charging.start_transaction("CP1", 1, f"T{n}", n, at(n))

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
