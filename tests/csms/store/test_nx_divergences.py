"""Where nx-27017 (the MongoDB wire server CI runs) differs from MongoDB, pinned.

Each test asserts nx-27017's behaviour and names the MongoDB behaviour; the adapters keep every
one of these operations out (csms/store/mongo_support.py says how). When a release of nx-27017
fixes one, its test fails here: drop the test, and the adapters may use the operation again.
Skipped against a real MongoDB (CSMS_TEST_MONGODB_URL).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import OperationFailure

from tests.support.mongo import MongoDatabase

T = datetime(2026, 3, 1, 10, 0, 0, 123000, tzinfo=UTC)
AFTER = ReturnDocument.AFTER


@pytest_asyncio.fixture
async def coll(mongo_database: MongoDatabase) -> AsyncIterator[AsyncCollection[Any]]:
    if not mongo_database.server.is_nx:
        pytest.skip("pins nx-27017's divergences; a real MongoDB has none of them")
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_database.url, tz_aware=True,
                                                     tzinfo=UTC)
    try:
        yield client[mongo_database.name]["c"]
    finally:
        await client.close()


async def test_set_scalar_date_is_stored_as_text(coll: AsyncCollection[Any]) -> None:
    """MongoDB keeps a BSON date; we $set dates only inside a whole subdocument."""
    doc = await coll.find_one_and_update({"_id": 1}, {"$set": {"at": T, "sub": {"at": T}}},
                                         upsert=True, return_document=AFTER)
    assert doc["at"] == "2026-03-01 10:00:00.123000"
    assert doc["sub"]["at"] == T


async def test_set_scalar_bool_is_stored_as_int(coll: AsyncCollection[Any]) -> None:
    """MongoDB keeps a boolean; we read booleans with bool()."""
    doc = await coll.find_one_and_update({"_id": 1}, {"$set": {"ok": True, "sub": {"ok": True}}},
                                         upsert=True, return_document=AFTER)
    assert doc["ok"] == 1 and doc["ok"] is not True
    assert doc["sub"]["ok"] is True


async def test_pushed_subdocument_is_stored_as_text(coll: AsyncCollection[Any]) -> None:
    """MongoDB appends the document; we never $push documents."""
    await coll.insert_one({"_id": 1, "items": []})
    doc = await coll.find_one_and_update({"_id": 1}, {"$push": {"items": {"a": 1}}},
                                         return_document=AFTER)
    assert doc["items"] == ['{"a":1}']


async def test_set_on_insert_is_ignored(coll: AsyncCollection[Any]) -> None:
    """MongoDB writes $setOnInsert fields on the insert; we upsert with $inc or insert."""
    doc = await coll.find_one_and_update({"_id": 1}, {"$setOnInsert": {"n": 0}}, upsert=True,
                                         return_document=AFTER)
    assert doc == {"_id": 1}


async def test_max_of_dates_comes_back_as_text(coll: AsyncCollection[Any]) -> None:
    """MongoDB returns the greatest BSON date; we compare dates in a filter instead."""
    await coll.insert_many([{"at": T}, {"at": T.replace(year=2027)}])
    result = [doc async for doc in await coll.aggregate(
        [{"$group": {"_id": None, "latest": {"$max": "$at"}}}])]
    assert not isinstance(result[0]["latest"], datetime)


async def test_replace_turns_an_int_id_into_text(coll: AsyncCollection[Any]) -> None:
    """MongoDB keeps `_id`; we never replace documents."""
    await coll.insert_one({"_id": 1, "a": 1})
    doc = await coll.find_one_and_replace({"_id": 1}, {"a": 2}, return_document=AFTER)
    assert doc["_id"] == "1"


async def test_compound_index_with_id_refuses_inserts(coll: AsyncCollection[Any]) -> None:
    """MongoDB allows `_id` in a compound index; ours index a field of their own instead."""
    await coll.create_indexes([IndexModel([("s", 1), ("_id", -1)])])
    with pytest.raises(OperationFailure, match="_id"):
        await coll.insert_one({"_id": 1, "s": "x"})


async def test_update_one_ignores_the_fields_beside_a_top_level_or(
        coll: AsyncCollection[Any]) -> None:
    """MongoDB updates a document matching every field and the `$or`; nx-27017's update_one
    matches the `$or` alone and updates another document. We name the fields and the `$or`
    in an explicit `$and` (csms/store/mongo.py: `append_meter_values`, `set_connections`)."""
    await coll.insert_many([{"_id": "a", "tx": 1, "energy": {"wh": 1, "at": T}},
                            {"_id": "b", "tx": 2}])
    newer = T.replace(year=2027)
    either = [{"energy": None}, {"energy.at": {"$lt": newer}}]
    await coll.update_one({"tx": 2, "$or": either}, {"$set": {"energy": {"wh": 5, "at": newer}}})
    assert {doc["_id"]: doc.get("energy", {}).get("wh") async for doc in coll.find()} == \
        {"a": 5, "b": None}  # MongoDB: {"a": 1, "b": 5}
    await coll.update_one({"$and": [{"tx": 2}, {"$or": either}]},
                          {"$set": {"energy": {"wh": 6, "at": newer}}})
    assert (await coll.find_one({"_id": "b"}))["energy"]["wh"] == 6
