"""The store contract on MongoDB (nx-27017 here, a real MongoDB with CSMS_TEST_MONGODB_URL), plus
what only the MongoDB adapter does: indexes, retention, half-done writes, an unreachable or
vanishing server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from csms.domain import SUPERSEDED, utcnow
from csms.store.mongo import MongoStore, _meter_documents
from csms.store.ports import Store, StoreError
from tests.csms.store.contract import StoreContract, at, energy, event, frame, grouped, start
from tests.csms.store.report_contract import ReportStoreContract
from tests.support.mongo import MongoDatabase, start_nx
from tests.support.net import free_port
from tests.support.ports import missing_methods


@pytest_asyncio.fixture
async def store(mongo_database: MongoDatabase) -> AsyncIterator[MongoStore]:
    store = MongoStore(mongo_database.url, mongo_database.name)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


class TestMongoStore(StoreContract):
    pass


class TestMongoReports(ReportStoreContract):
    pass


def test_satisfies_port() -> None:
    store: Store = MongoStore("mongodb://unused", "unused")
    assert missing_methods(store, Store) == []


async def _index_keys(store: MongoStore, collection: str) -> list[list[str]]:
    return [list(index["key"]) async for index in await store.db[collection].list_indexes()]


async def test_indexes_are_created_once_at_open(mongo_database: MongoDatabase) -> None:
    for _ in range(2):  # a second start-up finds them and changes nothing
        store = MongoStore(mongo_database.url, mongo_database.name)
        await store.open()
        try:
            for collection, models in MongoStore.INDEXES.items():
                keys = await _index_keys(store, collection)
                for model in models:
                    assert list(model.document["key"]) in keys, (collection, model.document)
                assert len(keys) == len(models) + 1  # and _id
        finally:
            await store.close()


async def test_meter_value_retention_follows_the_setting(mongo_database: MongoDatabase) -> None:
    async def ttl_seconds(days: int) -> list[int | None]:
        store = MongoStore(mongo_database.url, mongo_database.name, meter_values_ttl_days=days)
        await store.open()
        try:
            return [index.get("expireAfterSeconds")
                    async for index in await store.db.meter_values.list_indexes()
                    if list(index["key"]) == ["received_at"]]
        finally:
            await store.close()

    assert await ttl_seconds(0) == []
    assert await ttl_seconds(7) == [7 * 86400]
    assert await ttl_seconds(30) == [30 * 86400]
    assert await ttl_seconds(0) == []  # 0 keeps them for ever again


async def test_one_document_per_frame_with_all_its_samples(store: MongoStore) -> None:
    tx_id = await start(store, meter=0)
    frame_values = [energy(tx_id, "10", at(1)), energy(tx_id, "230", at(1), unit="V",
                                                       measurand="Voltage")]
    await store.append_meter_values(frame_values)
    docs = [doc async for doc in store.db.meter_values.find({"transaction_id": tx_id})]
    assert len(docs) == 1 and len(docs[0]["samples"]) == 2
    assert await store.list_meter_values(tx_id) == frame_values


async def test_crash_after_readings_before_register(store: MongoStore) -> None:
    """Readings inserted, the process died before the register update: the next frame (or
    the stop's meter reading) moves the register; nothing is lost or counted twice."""
    tx_id = await start(store, meter=0)
    await store.db.meter_values.insert_many(
        _meter_documents([energy(tx_id, "100", at(1))], utcnow()))  # the first write only
    tx = await store.get_transaction(tx_id)
    assert tx is not None and tx.last_energy_wh is None
    await store.append_meter_values([energy(tx_id, "150", at(2))])
    tx = await store.get_transaction(tx_id)
    assert tx is not None and (tx.last_energy_wh, tx.last_energy_at) == (150, at(2))
    assert [v.value for v in await store.list_meter_values(tx_id)] == ["100", "150"]


async def test_crash_after_frame_numbers_before_insert(store: MongoStore) -> None:
    """Sequence numbers taken, frames never inserted: a gap, and the cap still holds."""
    await store.append_frames(grouped([frame("CP1", 1)]), keep=3)
    await store.db.counters.update_one({"_id": "frames:CP1"}, {"$inc": {"value": 5}})
    for n in range(2, 6):
        await store.append_frames(grouped([frame("CP1", n)]), keep=3)
    assert [f.frame for f in await store.list_frames("CP1")] == [
        frame("CP1", n).frame for n in (5, 4, 3)]


async def test_crash_after_frames_before_byte_trim(mongo_database: MongoDatabase) -> None:
    """Frames inserted, the process died before trimming to the byte cap: the next process
    sums the log afresh and its first append trims the oldest."""
    crashed = MongoStore(mongo_database.url, mongo_database.name)
    await crashed.open()
    try:
        for n in range(5):
            await crashed.append_frames(grouped([frame(f"CP{n}", n)]), keep=10)  # no byte cap
    finally:
        await crashed.close()
    size = len(frame("CP0", 0).frame.encode())
    store = MongoStore(mongo_database.url, mongo_database.name)
    await store.open()
    try:
        await store.append_frames(grouped([frame("CP5", 5)]), keep=10, max_bytes=2 * size)
        assert [n for n in range(6) if await store.list_frames(f"CP{n}")] == [4, 5]
    finally:
        await store.close()


async def test_frame_bytes_recounted_after_another_writer(
        store: MongoStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process deleted frames this one counted: once FRAME_BYTES_RECOUNT_S has passed
    the log is summed again, so the cap keeps the frames that fit."""
    size = len(frame("CP0", 0).frame.encode())
    for n in range(3):
        await store.append_frames(grouped([frame(f"CP{n}", n)]), keep=10, max_bytes=3 * size)
    await store.db.frame_rows.delete_many({"station_id": "CP0"})  # behind the count's back
    monkeypatch.setattr("csms.store.mongo_frames.FRAME_BYTES_RECOUNT_S", 0.0)
    await store.append_frames(grouped([frame("CP3", 3)]), keep=10, max_bytes=3 * size)
    assert [n for n in range(4) if await store.list_frames(f"CP{n}")] == [1, 2, 3]


async def test_frame_documents_migrate_to_rows(mongo_database: MongoDatabase) -> None:
    """The old log (one `frames` document per frame) opens as rows showing every frame, also
    after a migration cut short by a crash (one row already moved, its frame not yet deleted);
    numbering goes on from the counters."""
    old = [frame("CP1", n, "out" if n % 2 else "in") for n in range(4, 8)]
    docs = [{"station_id": f.station_id, "seq": seq, "n": seq + 10, "bytes": len(f.frame),
             "direction": f.direction, "frame": f.frame, "at": f.at}
            for seq, f in enumerate(old, start=4)]
    before = MongoStore(mongo_database.url, mongo_database.name)
    await before.open()
    try:
        await before.db.frames.insert_many(docs)
        await before.db.counters.insert_many([{"_id": "frames:CP1", "value": 7},
                                              {"_id": "frames", "value": 17}])
        first = docs[0]
        await before.db.frame_rows.insert_one(
            {"station_id": "CP1", "last_seq": 4, "since": 0, "n": 14, "bytes": first["bytes"],
             "frames": [[first["direction"], first["at"], first["frame"]]]})
    finally:
        await before.close()
    store = MongoStore(mongo_database.url, mongo_database.name)
    await store.open()
    try:
        assert "frames" not in await store.db.list_collection_names()
        assert await store.list_frames("CP1") == old[::-1]
        await store.append_frames(grouped([frame("CP1", 8), frame("CP1", 9)]), keep=5)
        newest = [frame("CP1", 9), frame("CP1", 8), *old[::-1][:3]]
        assert await store.list_frames("CP1") == newest
    finally:
        await store.close()


async def test_supersede_after_a_crash_part_way(store: MongoStore) -> None:
    """Starts that died after their insert and part way through their supersede: the next
    start on the connector stops the rest, at its own start time."""
    first = await start(store, tag="A", when=at(1))
    second, _ = await store._start_transaction("CP1", 1, "B", 1000, at(2))  # died: no stops
    third, _ = await store._start_transaction("CP1", 1, "C", 1000, at(3))  # died after one:
    stop_first = {"meter_stop": 1000, "stopped_at": at(3), "reason": SUPERSEDED,
                  "id_tag": None}
    await store.db.transactions.update_one({"transaction_id": first},
                                           {"$set": {"stop": stop_first}})  # the first write
    assert len(await store.list_transactions(station_id="CP1", active=True)) == 2
    fourth = await store.open_transaction("CP1", 1, "D", 1000, at(4))
    assert sorted((tx.transaction_id, tx.stopped_at) for tx in fourth.superseded) == \
        [(second.transaction_id, at(4)), (third.transaction_id, at(4))]
    active = await store.list_transactions(station_id="CP1", active=True)
    assert [tx.transaction_id for tx in active] == [fourth.transaction.transaction_id]
    retried = await store.open_transaction("CP1", 1, "D", 1000, at(4))
    assert (retried.created, retried.superseded) == (False, [])


async def test_unreachable_server_fails_fast_naming_the_key() -> None:
    """timeout_s bounds the wait (the test's own timeout catches a hang)."""
    store = MongoStore(f"mongodb://127.0.0.1:{free_port()}", "csms", timeout_s=1)
    with pytest.raises(StoreError, match=r"store\.mongodb_url.*within 1 s"):
        await store.open()


@pytest.mark.parametrize("url", ["http://127.0.0.1:1", "mongodb://", "mongodb://h:notaport"])
async def test_bad_url_names_the_key(url: str) -> None:
    with pytest.raises(StoreError, match=r"store\.mongodb_url"):
        await MongoStore(url, "csms", timeout_s=1).open()


async def test_calls_fail_while_the_server_is_down_and_resume(tmp_path: Path) -> None:
    server = start_nx(tmp_path)
    store = MongoStore(server.url, "csms", timeout_s=1)
    try:
        await store.open()
        await store.provision_station("CP1", None)
        server.stop(kill=True)
        with pytest.raises(StoreError):
            await store.get_station("CP1")
        server.start()  # same port, same files
        station = await store.get_station("CP1")
        assert station is not None and station.provisioned
        await store.touch_station("CP1", at(1))
    finally:
        await store.close()
        server.stop()


async def test_a_supersede_moves_the_revision_an_event_writes_over(store: MongoStore) -> None:
    """`record_event` writes a 2.0.1 transaction with the revision it read in the filter. A
    supersede in between must move that revision, or an event read before it would write the
    still-running transaction back over the stop."""
    older = await store.record_event(event("Started", "T-OLD", 0, 0, wh=0))
    key = {"transaction_id": older.transaction.transaction_id}
    read = await store.db.transactions.find_one(key)  # an event's compare-and-set reads...
    newer = await store.record_event(event("Started", "T-NEW", 0, 10, wh=0))
    [stopped] = newer.superseded  # the Started supersedes within record_event
    assert stopped.stop_reason == SUPERSEDED
    stale = await store.db.transactions.find_one_and_update(  # ...and writes after the stop
        {"_id": read["_id"], "rev": read["rev"]}, {"$set": {"stop": None, "rev": read["rev"] + 1}})
    assert stale is None
    after = await store.get_transaction(older.transaction.transaction_id)
    assert after is not None and after.stop_reason == SUPERSEDED
    # and the next event of it applies to the stopped transaction: recorded, frozen
    late = await store.record_event(event("Updated", "T-OLD", 1, 20, wh=500))
    assert not late.transaction.active and late.transaction.stop_reason == SUPERSEDED
