"""The billing store contract on MongoDB, plus the two-document writes cut short by a crash."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from billing.models import OperationStatus, OperationType
from billing.store.mongo import RECEIPT_COUNTER, MongoBillingStore
from billing.store.mongo.base import COUNTERS, OP_KEYS
from billing.store.ports import BillingStore
from tests.billing.store_contract import BillingStoreContract, add, at
from tests.support.mongo import MongoDatabase

pytestmark = pytest.mark.mongodb


@pytest.fixture
def store_factory(mongo_database: MongoDatabase) -> Callable[[], MongoBillingStore]:
    return lambda: MongoBillingStore(mongo_database.url, mongo_database.name)


class TestMongoBillingStore(BillingStoreContract):
    pass


def test_satisfies_port() -> None:
    store: BillingStore = MongoBillingStore("mongodb://unused", "unused")
    for port in BillingStore.__mro__:
        for name in port.__dict__:
            if not name.startswith("_"):
                assert callable(getattr(store, name)), name


async def test_crash_after_key_before_operation(store: MongoBillingStore) -> None:
    """The key was recorded, the process died before the operation joined its session: the
    retry with the same key records it once, and the key stays the session's."""
    await add(store, 1)
    await store._coll(OP_KEYS).insert_one({"_id": "S1:CAPTURE", "session_id": "S1"})
    assert await store.get_operation("S1:CAPTURE") is None
    assert await store.pending_operations() == []
    op, created = await store.begin_operation("S1", OperationType.CAPTURE, 1200, "S1:CAPTURE")
    assert created and op is not None and op.amount == 1200
    again, created_again = await store.begin_operation("S1", OperationType.CAPTURE, 999,
                                                       "S1:CAPTURE")
    assert not created_again and again == op
    assert [o.idempotency_key for o in await store.list_operations("S1")] == ["S1:CAPTURE"]
    assert [o.idempotency_key for o in await store.pending_operations()] == ["S1:CAPTURE"]
    finished = await store.finish_operation("S1:CAPTURE", OperationStatus.SUCCEEDED)
    assert finished is not None and finished.status is OperationStatus.SUCCEEDED


async def test_crash_after_receipt_before_counter(store: MongoBillingStore) -> None:
    """Receipt 1 inserted, the process died before the counter followed and before the
    session got its URL: the repeat links it, and the next receipt is 2, not 1 or 3."""
    for n in (1, 2):
        await add(store, n)
    first = await store.create_receipt("S1", "tok1", "<p>1</p>", "1", at(1))
    await store._coll(COUNTERS).update_one({"_id": RECEIPT_COUNTER}, {"$set": {"value": 0}})
    await store.update_session("S1", receipt_url=None)

    again = await store.create_receipt("S1", "tok-other", "x", "x", at(2))
    assert again == first
    session = await store.get_session("S1")
    assert session is not None and session.receipt_url == "/receipts/tok1"

    second = await store.create_receipt("S2", "tok2", "<p>2</p>", "2", at(3))
    assert (first.number, second.number) == (1, 2)


async def test_receipt_numbers_under_concurrency_have_no_gaps(store: MongoBillingStore) -> None:
    import asyncio

    for n in range(1, 13):
        await add(store, n)
    receipts = await asyncio.gather(*(
        store.create_receipt(f"S{n}", f"tok{n}", "h", "t", at(n)) for n in range(1, 13)))
    assert sorted(r.number for r in receipts) == list(range(1, 13))
