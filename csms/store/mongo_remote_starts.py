"""The MongoDB adapter's `RemoteStartStore`, mixed into `MongoStore`:

    remote_starts {_id: "<station>\\n<remoteStartId>", link: {id_tag, expires_at}}

The link is one subdocument `$set` whole (an upsert), so its date keeps its type on nx-27017
too; a TTL index on `link.expires_at` lets MongoDB drop expired links, and a read checks the
expiry itself (the TTL monitor runs about once a minute, nx-27017 may not run it at all)."""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from csms.store.mongo_support import Document, utc_req

REMOTE_START_INDEXES: dict[str, list[IndexModel]] = {
    "remote_starts": [IndexModel([("link.expires_at", ASCENDING)], expireAfterSeconds=0,
                                 name="expiry")],
}


def _key(station_id: str, remote_start_id: int) -> str:
    return f"{station_id}\n{remote_start_id}"  # a station id never holds a newline


class MongoRemoteStarts:
    db: AsyncDatabase[Document]

    async def expect_remote_start(self, station_id: str, remote_start_id: int, id_tag: str, *,
                                  at: datetime, expires_at: datetime) -> None:
        await self.db.remote_starts.update_one(
            {"_id": _key(station_id, remote_start_id)},
            {"$set": {"link": {"id_tag": id_tag, "expires_at": expires_at}}}, upsert=True)

    async def remote_start_tag(self, station_id: str, remote_start_id: int,
                               at: datetime) -> str | None:
        doc = await self.db.remote_starts.find_one({"_id": _key(station_id, remote_start_id)})
        link = (doc or {}).get("link")
        if not link or utc_req(link["expires_at"]) <= at:
            return None
        return str(link["id_tag"])

    async def forget_remote_start(self, station_id: str, remote_start_id: int) -> None:
        await self.db.remote_starts.delete_one({"_id": _key(station_id, remote_start_id)})
