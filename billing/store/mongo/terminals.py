"""Payment terminals bound to stations (one document per station) and the stops asked at a
terminal (one document per request; every change one conditional update).

Dates are written only in inserted documents or inside a subdocument `$set` whole (the writing
rule of `csms.store.mongo_support`): the binding lives in `terminal`, a request's last change
time in `updated.at`."""

from __future__ import annotations

from typing import Any

from pymongo import ReturnDocument

from billing.models import TerminalBinding, TerminalRequest, TerminalRequestStatus
from billing.store.mongo.base import TERMINAL_REQUESTS, TERMINALS, BillingConnection, now
from csms.store.mongo_support import Document, insert_once, utc_req


def _request(doc: Document) -> TerminalRequest:
    return TerminalRequest(
        request_id=doc["_id"], station_id=doc["station_id"], connector_id=doc["connector_id"],
        session_id=doc["session_id"], status=TerminalRequestStatus(doc["status"]),
        created_at=utc_req(doc["created_at"]), updated_at=utc_req(doc["updated"]["at"]),
        reference=doc.get("reference"), error=doc.get("error"))


class TerminalCollections(BillingConnection):
    async def bind_terminal(self, station_id: str, terminal_id: str,
                            management_system_id: str) -> TerminalBinding:
        binding = TerminalBinding(station_id, terminal_id, management_system_id, now())
        await self._coll(TERMINALS).update_one(
            {"_id": station_id},
            {"$set": {"terminal": {"terminal_id": terminal_id,
                                   "management_system_id": management_system_id,
                                   "updated_at": binding.updated_at}}}, upsert=True)
        return binding

    async def station_terminal(self, station_id: str) -> TerminalBinding | None:
        doc = await self._coll(TERMINALS).find_one({"_id": station_id})
        if doc is None:
            return None
        terminal = doc["terminal"]
        return TerminalBinding(station_id, terminal["terminal_id"],
                               terminal["management_system_id"],
                               utc_req(terminal["updated_at"]))

    async def unbind_terminal(self, station_id: str) -> bool:
        return (await self._coll(TERMINALS).delete_one({"_id": station_id})).deleted_count == 1

    async def create_terminal_request(self, request: TerminalRequest) -> None:
        inserted = await insert_once(self._coll(TERMINAL_REQUESTS), {
            "_id": request.request_id, "station_id": request.station_id,
            "connector_id": request.connector_id, "session_id": request.session_id,
            "status": request.status.value, "created_at": request.created_at,
            "updated": {"at": request.updated_at}, "reference": request.reference,
            "error": request.error})
        if not inserted:
            raise ValueError(f"terminal request {request.request_id} exists")

    async def get_terminal_request(self, request_id: str) -> TerminalRequest | None:
        doc = await self._coll(TERMINAL_REQUESTS).find_one({"_id": request_id})
        return None if doc is None else _request(doc)

    async def terminal_request_by_reference(self, reference: str) -> TerminalRequest | None:
        doc = await self._coll(TERMINAL_REQUESTS).find_one({"reference": reference})
        return None if doc is None else _request(doc)

    async def pending_terminal_requests(self, limit: int = 100) -> list[TerminalRequest]:
        cursor = self._coll(TERMINAL_REQUESTS).find(
            {"status": TerminalRequestStatus.PENDING.value}).sort("created_at", 1).limit(limit)
        return [_request(doc) async for doc in cursor]

    async def update_terminal_request(
        self, request_id: str, *, if_status: TerminalRequestStatus | None = None,
        status: TerminalRequestStatus | None = None, reference: str | None = None,
        error: str | None = None,
    ) -> TerminalRequest | None:
        changes: dict[str, Any] = {"status": status.value if status else None,
                                   "reference": reference, "error": error}
        sets = {name: value for name, value in changes.items() if value is not None}
        sets["updated"] = {"at": now()}
        query: Document = {"_id": request_id}
        if if_status is not None:
            query["status"] = if_status.value
        doc = await self._coll(TERMINAL_REQUESTS).find_one_and_update(
            query, {"$set": sets}, return_document=ReturnDocument.AFTER)
        return None if doc is None else _request(doc)
