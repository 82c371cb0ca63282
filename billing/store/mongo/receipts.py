"""Receipts numbered 1, 2, 3... without gaps, even across a crash.

Numbering touches two documents: the receipt (unique `number`) and the counter
`billing_counters.receipt_number`. An `$inc` before the insert would leave a gap when the process
dies between the two, so the order is the other way round: the receipt is inserted with the
number after the counter, and the counter then follows it (a conditional `$set` that only moves
it forward). A crash after the insert leaves the counter behind: the next receipt's insert hits
the unique number, moves the counter up to it and takes the next one. The counter never passes
an inserted number, and the unique index never lets two receipts share one, so every number
is used once and none is skipped.

The session's `receipt_url` is a third write; a crash before it is repaired by the next
`create_receipt` for that session (the receipt job runs again until it is done).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from billing.models import Receipt, Session
from billing.store.mongo.base import COUNTERS, RECEIPTS, receipt_from
from billing.store.mongo.sessions import SessionCollection, _apply
from csms.store.mongo_support import Document

RECEIPT_COUNTER = "receipt_number"


class ReceiptCollection(SessionCollection):
    async def _advance_counter(self, number: int) -> None:
        await self._coll(COUNTERS).update_one(
            {"_id": RECEIPT_COUNTER, "value": {"$lt": number}}, {"$set": {"value": number}})

    async def create_receipt(self, session_id: str, token: str, html: str, text: str,
                             now: datetime, render: Any = None) -> Receipt:
        if await self.get_session(session_id) is None:
            raise ValueError(f"unknown session {session_id!r}")
        await self._coll(COUNTERS).update_one({"_id": RECEIPT_COUNTER}, {"$inc": {"value": 0}},
                                              upsert=True)
        while (receipt := await self.get_receipt(session_id)) is None:
            counter = await self._coll(COUNTERS).find_one({"_id": RECEIPT_COUNTER})
            number = int((counter or {}).get("value", 0)) + 1
            body, plain = (html, text) if render is None else render(number)
            try:
                await self._coll(RECEIPTS).insert_one({
                    "_id": session_id, "number": number, "token": token, "html": body,
                    "text": plain, "created_at": now, "emailed": None})
            except DuplicateKeyError as exc:
                if await self._coll(RECEIPTS).find_one({"_id": session_id}) is not None:
                    continue  # a concurrent call for this session won
                if await self.receipt_by_token(token) is not None:
                    raise ValueError(f"receipt token already used: {token!r}") from exc
                await self._advance_counter(number)  # a crash left the counter behind
                continue
            await self._advance_counter(number)
        await self._link(session_id, receipt.token)
        return receipt

    async def _link(self, session_id: str, token: str) -> None:
        url = f"/receipts/{token}"

        def move(session: Session, ops: dict[str, Document]) -> Any:
            return None if session.receipt_url == url else (
                _apply(session, {"receipt_url": url}), ops)

        await self._move(session_id, move)

    async def get_receipt(self, session_id: str) -> Receipt | None:
        doc = await self._coll(RECEIPTS).find_one({"_id": session_id})
        return None if doc is None else receipt_from(doc)

    async def receipt_by_token(self, token: str) -> Receipt | None:
        doc = await self._coll(RECEIPTS).find_one({"token": token})
        return None if doc is None else receipt_from(doc)

    async def mark_receipt_emailed(self, session_id: str, at: datetime) -> None:
        await self._coll(RECEIPTS).update_one({"_id": session_id},
                                              {"$set": {"emailed": {"at": at}}})
