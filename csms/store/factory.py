"""Pick the store adapter named by `[store] backend`."""

from __future__ import annotations

from csms.settings import ConfigError, StoreSettings
from csms.store.ports import Store


def make_store(settings: StoreSettings) -> Store:
    if settings.backend == "mongodb":
        raise ConfigError("store.backend: the MongoDB adapter is not available in this "
                          "release; use \"sqlite\"")
    from csms.store.sqlite import SqliteStore

    return SqliteStore(settings.sqlite_path)
