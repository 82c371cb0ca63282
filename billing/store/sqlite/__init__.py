"""SQLite adapter of the billing store port (`billing.store.BillingStore`), on aiosqlite.

In production it shares the charging store's file (`data/csms.db`), so every table is prefixed
`billing_` and the schema version lives in `billing_meta` (PRAGMA user_version belongs to the
charging store). It keeps its own connection: WAL lets the charging store's reader run alongside,
and `BEGIN IMMEDIATE` + busy_timeout serialise its writes with the charging store's writer.

Every store call is ONE synchronous function run in the connection's thread: a write runs inside
its own `BEGIN IMMEDIATE ... COMMIT`, so it is atomic, and a caller cancelled while waiting
cannot leave a transaction half done. Billing writes are few, so there is no group commit.

Datetimes are stored as fixed-width ISO-8601 UTC text (microseconds, `+00:00`), so text order
is time order; enums as their string values; `raw` and job payloads as JSON text.

Schema history (kept in `billing_meta.schema_version`; each step only adds):
  1. sessions, operations ledger, saved cards, station tariffs, webhook dedup;
  2. the money-job outbox (`billing_jobs`), receipts (`billing_receipts`) and the named
     counters that number receipts (`billing_counters`);
  3. on sessions: the recorded transaction (meter_start, meter_stop, charging_started_at,
     stopped_at, stop_reason) and `version`, bumped by every session write;
  4. the stop request; 5. operation fingerprints; 6. the card's last four digits;
  7. unattended terminals: `card_fingerprint` on sessions, `billing_terminals` (one per
     station) and `billing_terminal_requests` (stops asked at a terminal).
"""

from __future__ import annotations

import sqlite3

from billing.models import SavedCard, Session
from billing.store.sqlite.cards import SavedCardTable, _load_card
from billing.store.sqlite.jobs import JobTable
from billing.store.sqlite.ledger import LedgerTable
from billing.store.sqlite.receipts import ReceiptTable
from billing.store.sqlite.rows import _load_session
from billing.store.sqlite.schema import _MIGRATIONS, RECEIPT_COUNTER, SCHEMA_VERSION
from billing.store.sqlite.sessions import SessionTable
from billing.store.sqlite.tariffs import TariffTable
from billing.store.sqlite.terminals import TerminalTable
from billing.store.sqlite.webhooks import WebhookTable
from billing.store.values import DuplicateSession

__all__ = [
    "RECEIPT_COUNTER",
    "SCHEMA_VERSION",
    "_MIGRATIONS",
    "DuplicateSession",
    "SqliteBillingStore",
]


class SqliteBillingStore(SessionTable, LedgerTable, JobTable, ReceiptTable, SavedCardTable,
                         TariffTable, WebhookTable, TerminalTable):
    """`BillingStore` on a SQLite file (WAL), one connection, one IMMEDIATE transaction a write:
    one module per aggregate, all sharing `SqliteConnection`."""

    async def session_and_card(self, id_tag: str) -> tuple[Session | None, SavedCard | None]:
        def op(conn: sqlite3.Connection) -> tuple[Session | None, SavedCard | None]:
            session = _load_session(conn, "id_tag = ?", (id_tag,))
            return session, None if session is not None else _load_card(conn, id_tag)

        return await self._read(op)
