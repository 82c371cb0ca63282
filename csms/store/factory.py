"""Pick the store adapter named by `[store] backend`."""

from __future__ import annotations

from csms.config import StoreSettings
from csms.store.base import Store


def make_store(settings: StoreSettings) -> Store:
    if settings.backend == "mongodb":
        from csms.store.mongo import MongoStore

        return MongoStore(settings.mongodb_url, settings.mongodb_database)
    from csms.store.sqlite import SqliteStore

    return SqliteStore(settings.sqlite_path)
