"""MongoDB adapter of the billing store port (`billing.store.BillingStore`), on pymongo's
`AsyncMongoClient`: one module per aggregate, all sharing one client (`base.py`).

Persistence and compare-and-set only; the money rules live in `billing.payment` and
`billing.ledger`. Every move is one conditional single-document write. Where an operation
touches two documents the module says how a crash between them stays correct:
`sessions.py` (an idempotency key and its operation) and `receipts.py` (a receipt and the
counter that numbers it without gaps); the money jobs are written before they are enqueued and
found again by the outbox sweeper, exactly as on SQLite.
"""

from __future__ import annotations

from billing.models import SavedCard, Session
from billing.store.mongo.jobs import JobCollection
from billing.store.mongo.receipts import RECEIPT_COUNTER, ReceiptCollection
from billing.store.mongo.small import SmallCollections
from billing.store.mongo.terminals import TerminalCollections
from csms.store.mongo_support import store_errors

__all__ = ["RECEIPT_COUNTER", "MongoBillingStore"]


@store_errors
class MongoBillingStore(ReceiptCollection, JobCollection, SmallCollections,
                        TerminalCollections):
    """`BillingStore` on a MongoDB database (collections prefixed `billing_`)."""

    async def session_and_card(self, id_tag: str) -> tuple[Session | None, SavedCard | None]:
        """Two finds, the card's only when no session holds the idTag."""
        session = await self.session_by_id_tag(id_tag)
        return session, None if session is not None else await self.saved_card(id_tag)
