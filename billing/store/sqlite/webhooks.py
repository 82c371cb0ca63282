"""Webhook deduplication by (gateway, event id)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from billing.store.sqlite.base import SqliteConnection
from billing.store.sqlite.rows import _now
from csms.store.sqlite_support import ts


class WebhookTable(SqliteConnection):
    async def record_webhook(self, gateway: str, event_id: str, body: dict[str, Any]) -> bool:
        text = json.dumps(body)

        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO billing_webhooks (gateway, event_id, body, received_at)"
                " VALUES (?, ?, ?, ?)",
                (gateway, event_id, text, ts(_now())),
            )
            return cursor.rowcount == 1

        return await self._write(op)

    async def forget_webhook(self, gateway: str, event_id: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM billing_webhooks WHERE gateway = ? AND event_id = ?",
                         (gateway, event_id))

        await self._write(op)
