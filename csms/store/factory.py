"""Pick the store adapter named by `[store] backend`."""

from __future__ import annotations

from csms.settings import StoreSettings
from csms.store.ports import Store


def make_store(settings: StoreSettings) -> Store:
    if settings.backend == "mongodb":
        from csms.store.mongo import MongoStore

        return MongoStore(settings.mongodb_url, settings.mongodb_database,
                          meter_values_ttl_days=settings.meter_values_ttl_days,
                          timeout_s=settings.mongodb_timeout)
    from csms.store.sqlite import SqliteStore

    return SqliteStore(settings.sqlite_path)
