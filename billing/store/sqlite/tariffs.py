"""Station tariff overrides, as decimal strings."""

from __future__ import annotations

import sqlite3

from billing.store.sqlite.base import SqliteConnection
from billing.store.sqlite.rows import _now
from billing.store.values import check_decimal_text
from csms.store.sqlite_support import ts


class TariffTable(SqliteConnection):
    async def station_tariff(self, station_id: str) -> tuple[str, str] | None:
        def op(conn: sqlite3.Connection) -> tuple[str, str] | None:
            row = conn.execute(
                "SELECT price_per_kwh, fixed_connection_fee FROM billing_station_tariffs"
                " WHERE station_id = ?",
                (station_id,),
            ).fetchone()
            return None if row is None else (row[0], row[1])

        return await self._read(op)

    async def set_station_tariff(
        self, station_id: str, price_per_kwh: str, fixed_connection_fee: str
    ) -> None:
        """Upsert a station's override; both values must be non-negative decimal strings."""
        for name, value in (
            ("price_per_kwh", price_per_kwh),
            ("fixed_connection_fee", fixed_connection_fee),
        ):
            check_decimal_text(name, value)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO billing_station_tariffs"
                " (station_id, price_per_kwh, fixed_connection_fee, updated_at)"
                " VALUES (?, ?, ?, ?)"
                " ON CONFLICT (station_id) DO UPDATE SET price_per_kwh = excluded.price_per_kwh,"
                " fixed_connection_fee = excluded.fixed_connection_fee,"
                " updated_at = excluded.updated_at",
                (station_id, price_per_kwh, fixed_connection_fee, ts(_now())),
            )

        await self._write(op)
