"""The MongoDB adapter's message log (`FrameLogStore`), mixed into `MongoStore`.

    frame_rows  {station_id, last_seq, since, n (append order across stations), bytes,
                 frames: [[direction, at, frame], ...]}   one document per station per flush

as `csms.store.frame_rows` describes. Sequence numbers come from counters
(`frames:<station>`, and `frames` for `n`). `append_frames` takes the numbers, inserts, then
trims per station and then in bytes; a crash between them leaves a gap in the numbers, or
frames over a cap until the next append (whose byte count is summed from the collection
afresh) trims them.

Before, the log was one `frames` document per frame; `migrate_frames` moves those into rows of
one frame each (readers cannot tell them from rows written per flush) and drops the collection.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from csms.domain import FrameEntry, LoggedFrame
from csms.store.frame_rows import NewestFirst, cut_head, utf8_len, window
from csms.store.mongo_support import Document, next_value, utc_req

FRAME_COUNTER = "frames"  # append order of rows across stations (`n`)
FRAME_BYTES_RECOUNT_S = 60.0  # sum the log's bytes again after this long (other processes)
OLD_FRAMES = "frames"  # the log's collection before rows (one document per frame)
MIGRATE_BATCH = 1000
DUPLICATE_KEY = 11000

FRAME_INDEXES: dict[str, list[IndexModel]] = {
    "frame_rows": [
        # list_frames newest first; append_frames trims a station by last_seq
        IndexModel([("station_id", ASCENDING), ("last_seq", DESCENDING)], unique=True,
                   name="by_station_seq"),
        # append_frames: the oldest rows go first when the log is over its bytes
        IndexModel([("n", ASCENDING)], name="append_order"),
    ],
}


async def migrate_frames(db: AsyncDatabase[Document]) -> None:
    """Move a `frames` collection (one document per frame) into rows, oldest first. Each
    batch is inserted before its frames are deleted, and a row already there (a migration
    cut short) is kept, so running it again after a crash loses and doubles nothing."""
    if OLD_FRAMES not in await db.list_collection_names():
        return
    while docs := [doc async for doc in db[OLD_FRAMES].find().sort("n", ASCENDING)
                   .limit(MIGRATE_BATCH)]:
        rows = [{"station_id": doc["station_id"], "last_seq": doc["seq"], "since": 0,
                 "n": doc["n"], "bytes": doc["bytes"],
                 "frames": [[doc["direction"], doc["at"], doc["frame"]]]} for doc in docs]
        try:
            await db.frame_rows.insert_many(rows, ordered=False)
        except BulkWriteError as exc:
            if any(error["code"] != DUPLICATE_KEY for error in exc.details["writeErrors"]):
                raise
        await db[OLD_FRAMES].delete_many({"_id": {"$in": [doc["_id"] for doc in docs]}})
    await db.drop_collection(OLD_FRAMES)


class MongoFrames:
    db: AsyncDatabase[Document]
    _frame_bytes: int | None  # bytes of frames in the log, once summed
    _frame_bytes_at: float  # time.monotonic() of that sum
    _frame_since: dict[str, int]  # station -> its `since`, once known in this process

    async def append_frames(self, frames: Mapping[str, Sequence[FrameEntry]], keep: int,
                            max_bytes: int = 0) -> None:
        """Append a row per station; keep at most `keep` newest (by append order) per station,
        and at most `max_bytes` (UTF-8, 0: no limit) in all, the oldest (`n`) going first.

        The byte total is summed from the collection once, then counted as rows come and go
        (and summed again after a failed write, a delete that removed other than what it
        counted, or FRAME_BYTES_RECOUNT_S), so another process's rows skew it only briefly.
        """
        groups = {station_id: group for station_id, group in frames.items() if group}
        try:
            await self._append_rows(groups, keep)
            if max_bytes > 0 and (total := await self._frame_byte_count()) > max_bytes:
                await self._trim_frame_bytes(total - max_bytes)
        except BaseException:
            self._frame_bytes = None  # a write may have half happened: sum again next time
            self._frame_since.clear()
            raise

    async def _append_rows(self, groups: dict[str, Sequence[FrameEntry]], keep: int) -> None:
        await self._frame_byte_count()  # before inserting: the sum must not count them twice
        if not groups:
            return
        if keep <= 0:
            for station_id in groups:
                await self._delete_rows({"station_id": station_id})
            return
        n = await next_value(self.db.counters, FRAME_COUNTER, len(groups)) - len(groups) + 1
        docs: list[Document] = []
        trims: list[Document] = []
        for station_id, group in groups.items():
            last = await next_value(self.db.counters, f"frames:{station_id}", len(group))
            stored, since = window(len(group), last, await self._since(station_id), keep)
            kept = group[-stored:]
            docs.append({"station_id": station_id, "last_seq": last, "since": since, "n": n,
                         "bytes": sum(utf8_len(frame) for _, _, frame in kept),
                         "frames": [[direction, at, frame] for direction, at, frame in kept]})
            n += 1
            self._frame_since[station_id] = since
            if last > keep:  # the rows wholly older than the station's newest `keep`
                trims.append({"station_id": station_id, "last_seq": {"$lt": since}})
        await self.db.frame_rows.insert_many(docs, ordered=False)
        if self._frame_bytes is not None:
            self._frame_bytes += sum(doc["bytes"] for doc in docs)
        if trims:
            await self._delete_rows({"$or": trims})

    async def _since(self, station_id: str) -> int:
        """The station's `since`: known in this process, else its newest row's, else 0."""
        since = self._frame_since.get(station_id)
        if since is None:
            newest = await self.db.frame_rows.find_one(
                {"station_id": station_id}, {"since": 1}, sort=[("last_seq", DESCENDING)])
            since = 0 if newest is None else int(newest["since"])
        return since

    async def _trim_frame_bytes(self, excess: int) -> None:
        """Delete the oldest frames, whichever station sent them, until `excess` bytes went:
        whole rows, then the head of the row where the count stops."""
        cut, straddling = None, None
        cursor = self.db.frame_rows.find({}, {"n": 1, "bytes": 1}).sort("n", ASCENDING)
        async for doc in cursor:
            if doc["bytes"] > excess:
                straddling = doc["_id"]
                break
            excess, cut = excess - doc["bytes"], doc["n"]
            if excess <= 0:
                break
        await cursor.close()
        if cut is not None:
            await self._delete_rows({"n": {"$lte": cut}})
        if straddling is None or excess <= 0:
            return
        row = await self.db.frame_rows.find_one({"_id": straddling})
        if row is None:  # another process trimmed it meanwhile
            return
        frames = row["frames"]
        rest, dropped = cut_head(frames, [utf8_len(frame[2]) for frame in frames], excess)
        if not rest:
            await self._delete_rows({"_id": straddling})
            return
        # conditional on the row as read: another process's cut of it is not cut again
        done = await self.db.frame_rows.update_one(
            {"_id": straddling, "bytes": row["bytes"]},
            {"$set": {"frames": rest, "bytes": row["bytes"] - dropped}})
        if self._frame_bytes is not None:
            self._frame_bytes = self._frame_bytes - dropped if done.modified_count else None

    async def _frame_byte_count(self) -> int:
        """Bytes of frames in the log: counted in this process, summed when unknown or old."""
        now = time.monotonic()
        if self._frame_bytes is None or now - self._frame_bytes_at > FRAME_BYTES_RECOUNT_S:
            self._frame_bytes_at = now
            self._frame_bytes = 0
            async for doc in await self.db.frame_rows.aggregate(
                    [{"$group": {"_id": None, "total": {"$sum": "$bytes"}}}]):
                self._frame_bytes = int(doc["total"])
        return self._frame_bytes

    async def _delete_rows(self, query: Document) -> None:
        """Delete the rows matching `query` and take their bytes off the count."""
        sizes = [doc["bytes"] async for doc in self.db.frame_rows.find(query, {"bytes": 1})]
        if not sizes:
            return
        deleted = (await self.db.frame_rows.delete_many(query)).deleted_count
        if self._frame_bytes is not None:
            # another writer got in between: the bytes removed are not known, sum again
            self._frame_bytes = self._frame_bytes - sum(sizes) if deleted == len(sizes) else None

    async def list_frames(self, station_id: str, limit: int = 100) -> list[LoggedFrame]:
        reader = NewestFirst(station_id, limit, utc_req)
        if reader.full:
            return []
        cursor = self.db.frame_rows.find(
            {"station_id": station_id}, {"last_seq": 1, "since": 1, "frames": 1}).sort(
            "last_seq", DESCENDING)
        async for row in cursor:
            if reader.add(row["last_seq"], row["since"], row["frames"]):
                break
        await cursor.close()
        return reader.frames
