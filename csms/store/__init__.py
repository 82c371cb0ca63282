"""Store port and its adapters (SQLite embedded, MongoDB production)."""

from csms.store.base import Store, StoreError

__all__ = ["Store", "StoreError"]
