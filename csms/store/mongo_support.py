"""What every MongoDB adapter of ours shares (the charging store here, billing's in
`billing.store.mongo`): the client, error mapping, idempotent indexes, and how values are
written so that both MongoDB and the nx-27017 wire server CI runs against keep their types.

The writing rule. nx-27017 stores a scalar written by an update operator (`$set: {"at": date}`,
`$set: {"ok": True}`) in a text form of its own (a date comes back as a string, a boolean as an
int), and a `$push`ed subdocument as a string; values inside a subdocument written whole by
`$set`, and every value of an inserted document, keep their BSON types. So our adapters write
dates only in inserted documents or inside a subdocument `$set` whole (`{"$set": {"stop":
{..., "at": date}}}`), read booleans with `bool()`, and never `$push` documents, `$setOnInsert`
(nx-27017 ignores it), `$max` dates or replace documents (nx-27017 turns an int `_id` into a
string). A filter that names fields beside a top-level `$or` is written as an explicit
`$and` (nx-27017's update_one matches the `$or` alone). tests/csms/store/test_nx_divergences.py
pins each divergence.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pymongo import AsyncMongoClient, IndexModel, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from csms.store.ports import StoreError

P = ParamSpec("P")
T = TypeVar("T")

Document = dict[str, Any]

DEFAULT_TIMEOUT_S = 5.0


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def as_store_error(exc: PyMongoError) -> StoreError:
    error = StoreError(f"mongodb: {exc}")
    error.__cause__ = exc
    return error


def mongo_errors(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Turn the driver's errors into `StoreError` (the web layer answers 503, OCPP an
    InternalError); the driver reconnects by itself, so the next call may succeed."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await method(*args, **kwargs)
        except PyMongoError as exc:
            raise as_store_error(exc) from exc

    return wrapper


async def connect(url: str, database: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                  ) -> tuple[AsyncMongoClient[Document], AsyncDatabase[Document]]:
    """A client whose every wait is bounded by `timeout_s`, checked with a ping.

    A bad or unreachable `store.mongodb_url` raises `StoreError` naming the key within about
    `timeout_s`, so `csms serve` exits instead of hanging.
    """
    ms = int(timeout_s * 1000)
    try:
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            url, tz_aware=True, tzinfo=UTC, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms,
            socketTimeoutMS=max(ms * 6, 30_000), appname="csms")
    except (PyMongoError, ValueError, TypeError) as exc:
        raise StoreError(f"store.mongodb_url: not a usable MongoDB URL ({redact(url)}): "
                         f"{exc}") from exc
    try:
        await client.admin.command("ping")
    except PyMongoError as exc:
        await client.close()
        raise StoreError(f"store.mongodb_url: cannot reach MongoDB at {redact(url)} "
                         f"within {timeout_s:g} s: {exc}") from exc
    return client, client[database]


async def ensure_indexes(db: AsyncDatabase[Document],
                         indexes: Mapping[str, Sequence[IndexModel]]) -> None:
    """Create every index that is missing (creating an existing one is a no-op)."""
    for collection, models in indexes.items():
        if models:
            await db[collection].create_indexes(list(models))


async def insert_once(collection: AsyncCollection[Document], document: Document) -> bool:
    """Insert; False when a unique index says it is already there (a retry, a race)."""
    try:
        await collection.insert_one(document)
    except DuplicateKeyError:
        return False
    return True


async def next_value(collection: AsyncCollection[Document], name: str, step: int = 1) -> int:
    """Atomically add `step` to the counter document `name` and return its new value.

    The first call creates it (an upsert on `_id`: MongoDB retries a racing upsert itself).
    """
    doc = await collection.find_one_and_update(
        {"_id": name}, {"$inc": {"value": step}}, upsert=True,
        return_document=ReturnDocument.AFTER)
    assert doc is not None
    return int(doc["value"])


def utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def utc_req(value: datetime) -> datetime:
    return value.astimezone(UTC)


async def compare_and_set(collection: AsyncCollection[Document], key: Any,
                          change: Callable[[Document], Document | None],
                          ) -> Document | None:
    """Optimistic concurrency on one document: read it, let `change` decide (it returns the
    fields to `$set`, or None: nothing to write), then write with the revision read in the
    filter (`find_one_and_update({_id, rev})`); a concurrent writer makes the write miss, and
    the decision is taken again on the fresh document.

    This is how a move whose condition reads several fields (a status, a version, a lease) is
    one conditional single-document update on MongoDB and on nx-27017 alike, with the changed
    parts written as whole subdocuments (see the module docstring). Returns the document as
    written, the unchanged document when `change` returned None, or None when it is missing.
    """
    while True:
        doc = await collection.find_one({"_id": key})
        if doc is None:
            return None
        fields = change(doc)
        if fields is None:
            return doc
        rev = doc.get("rev", 0)
        written = await collection.find_one_and_update(
            {"_id": key, "rev": rev}, {"$set": {**fields, "rev": rev + 1}},
            return_document=ReturnDocument.AFTER)
        if written is not None:
            return written


C = TypeVar("C", bound=type)


def store_errors(cls: C) -> C:
    """Class decorator: every public coroutine method (inherited ones too) maps the driver's
    errors to `StoreError`, as `mongo_errors` does for one."""
    for name in dir(cls):
        method = getattr(cls, name)
        if not name.startswith("_") and inspect.iscoroutinefunction(method):
            setattr(cls, name, mongo_errors(method))
    return cls


class MongoConnection:
    """One client and database for an adapter: opened with its indexes, closed once."""

    INDEXES: Mapping[str, Sequence[IndexModel]] = {}

    def __init__(self, url: str, database: str, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                 ) -> None:
        self.url = url
        self.database = database
        self.timeout_s = timeout_s
        self._client: AsyncMongoClient[Document] | None = None
        self._db: AsyncDatabase[Document] | None = None

    async def open(self) -> None:
        if self._db is not None:
            return
        client, db = await connect(self.url, self.database, timeout_s=self.timeout_s)
        try:
            await ensure_indexes(db, self.INDEXES)
            await self._prepare(db)
        except BaseException:
            await client.close()
            raise
        self._client, self._db = client, db

    async def _prepare(self, db: AsyncDatabase[Document]) -> None:
        """What an adapter sets up beyond its indexes (once per open)."""

    async def close(self) -> None:
        client, self._client, self._db = self._client, None, None
        if client is not None:
            await client.close()

    @property
    def db(self) -> AsyncDatabase[Document]:
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    async def newest(self, collection: str, query: Document, limit: int) -> list[Document]:
        """Documents newest first (created_at, then insertion order: `oid`)."""
        if limit <= 0:
            return []  # MongoDB reads limit 0 as "no limit"
        cursor = self.db[collection].find(query).sort(
            [("created_at", -1), ("oid", -1)]).limit(limit)
        return [doc async for doc in cursor]
