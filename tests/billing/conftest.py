"""Fixtures for billing tests: a customer, the billing store on SQLite, sandbox stores, and a
fake Pagar.me on a real port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from billing.gateways.base import Customer
from billing.gateways.pagarme import PagarmeGateway
from billing.gateways.sandbox import (
    InMemorySandboxChargeStore,
    SandboxChargeStore,
    SandboxGateway,
    SqliteSandboxChargeStore,
)
from billing.store.ports import BillingStore
from billing.store.sqlite import SqliteBillingStore
from tests.support.fake_pagarme import FakePagarme
from tests.support.pagarme import pagarme_settings, start_fake_pagarme


@pytest.fixture
def customer() -> Customer:
    return Customer(name="Ana Souza", email="ana@example.com", document="12345678909")


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


@pytest.fixture(params=["memory", "sqlite"])
async def sandbox_store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[SandboxChargeStore]:
    if request.param == "memory":
        yield InMemorySandboxChargeStore()
        return
    store = SqliteSandboxChargeStore(tmp_path / "sandbox.db")
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def sandbox(sandbox_store: SandboxChargeStore) -> SandboxGateway:
    return SandboxGateway(sandbox_store)


@pytest.fixture
async def fake_pagarme(aiohttp_server) -> AsyncIterator[FakePagarme]:  # type: ignore[no-untyped-def]
    fake = await start_fake_pagarme(aiohttp_server)
    yield fake
    # Whatever a test did, every mutating request must have carried an Idempotency-Key.
    missing = [r for r in fake.mutating_requests() if not r["headers"].get("Idempotency-Key")]
    assert not missing, f"POST/DELETE without Idempotency-Key: {missing}"


@pytest.fixture
async def pagarme(fake_pagarme: FakePagarme) -> AsyncIterator[PagarmeGateway]:
    gateway = PagarmeGateway(pagarme_settings(fake_pagarme))
    yield gateway
    await gateway.aclose()
