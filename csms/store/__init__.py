"""Store port and its adapters (SQLite embedded, MongoDB production)."""

from csms.store.ports import KEEP, Keep, Store, StoreError

__all__ = ["KEEP", "Keep", "Store", "StoreError"]
