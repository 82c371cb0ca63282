"""Store port and its adapters (SQLite embedded, MongoDB production)."""

from csms.store.ports import Store, StoreError

__all__ = ["Store", "StoreError"]
