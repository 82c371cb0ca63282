"""Saved cards: the gateway's reference only, upserted by driver idTag."""

from __future__ import annotations

import sqlite3

from billing.models import (
    SavedCard,
)
from billing.store.sqlite.base import SqliteConnection
from billing.store.sqlite.rows import (
    _CARD_COLUMNS,
    _card,
)
from csms.store.sqlite_support import ts


class SavedCardTable(SqliteConnection):
    async def save_card(self, card: SavedCard) -> None:
        """Upsert by driver_id_tag: the new card replaces the old one entirely."""

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO billing_saved_cards ({_CARD_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (driver_id_tag) DO UPDATE SET"
                " card_reference = excluded.card_reference, email = excluded.email,"
                " cpf = excluded.cpf, created_at = excluded.created_at",
                (
                    card.driver_id_tag,
                    card.card_reference,
                    card.email,
                    card.cpf,
                    ts(card.created_at),
                ),
            )

        await self._write(op)

    async def saved_card(self, driver_id_tag: str) -> SavedCard | None:
        return await self._read(lambda conn: _load_card(conn, driver_id_tag))


def _load_card(conn: sqlite3.Connection, driver_id_tag: str) -> SavedCard | None:
    row = conn.execute(
        f"SELECT {_CARD_COLUMNS} FROM billing_saved_cards WHERE driver_id_tag = ?",
        (driver_id_tag,),
    ).fetchone()
    return None if row is None else _card(row)
