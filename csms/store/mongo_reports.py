"""The MongoDB adapter's `ReportStore` (device-model reports), mixed into `MongoStore`.

    station_reports {_id: station id, current: null | {key, request_id, parts, completed_at},
                     pending: null | {key, request_id}}
    report_parts    {key, seq_no, station_id, tbc, generated_at, variables (JSON text)}

A report's parts are kept under a key of their own (operators reuse requestIds), one document
per part, so no report runs into MongoDB's document size limit. Variables are JSON text: what a
station puts in them never becomes a document key. The steps of `add_report_part` are
single-document writes in an order that stays correct after a crash between any two: the
pointer to a new report in progress is written before its parts, a completed report's pointer
is written before the previous report's parts are deleted (a crash leaves parts nobody points
at, which the next report of the station does not read), and `latest_report` reads only the
parts the pointer names. One station's NotifyReports arrive one after another (OCPP-J has one
call in flight per direction), so the pointer's read-then-write does not race.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from csms.device_model import DeviceReport, ReportPart, variables_from_json, variables_to_json
from csms.store.mongo_support import Document, insert_once, utc_req

REPORT_INDEXES: dict[str, list[IndexModel]] = {
    # add_report_part: a repeated part is kept once; latest_report reads a key's parts in order
    "report_parts": [IndexModel([("key", ASCENDING), ("seq_no", ASCENDING)], unique=True,
                                name="key_seq")],
}


class MongoReports:
    db: AsyncDatabase[Document]

    async def add_report_part(self, part: ReportPart, received_at: datetime,
                              ) -> DeviceReport | None:
        pointer = await self.db.station_reports.find_one({"_id": part.station_id}) or {}
        pending = pointer.get("pending")
        if part.seq_no == 0 or not pending or pending["request_id"] != part.request_id:
            stale = pending
            pending = {"key": uuid.uuid4().hex, "request_id": part.request_id}
            await self.db.station_reports.update_one(
                {"_id": part.station_id}, {"$set": {"pending": pending}}, upsert=True)
            if stale:
                await self.db.report_parts.delete_many({"key": stale["key"]})
        await insert_once(self.db.report_parts, {
            "key": pending["key"], "seq_no": part.seq_no, "station_id": part.station_id,
            "tbc": part.tbc, "generated_at": part.generated_at,
            "variables": variables_to_json(part.variables)})
        if part.tbc:
            return None
        kept = await self.db.report_parts.count_documents(
            {"key": pending["key"], "seq_no": {"$lte": part.seq_no}})
        if kept != part.seq_no + 1:
            return None  # a part before the last is missing: the report stays in progress
        current = {"key": pending["key"], "request_id": part.request_id,
                   "parts": part.seq_no + 1, "completed_at": received_at}
        await self.db.station_reports.update_one(
            {"_id": part.station_id}, {"$set": {"current": current, "pending": None}})
        previous = pointer.get("current")
        if previous:
            await self.db.report_parts.delete_many({"key": previous["key"]})
        return await self.latest_report(part.station_id)

    async def latest_report(self, station_id: str) -> DeviceReport | None:
        pointer = await self.db.station_reports.find_one({"_id": station_id}) or {}
        current = pointer.get("current")
        if not current:
            return None
        cursor = self.db.report_parts.find(
            {"key": current["key"], "seq_no": {"$lt": current["parts"]}}).sort("seq_no", 1)
        parts = [doc async for doc in cursor]
        return DeviceReport(
            station_id=station_id, request_id=current["request_id"],
            generated_at=utc_req(parts[0]["generated_at"]),
            completed_at=utc_req(current["completed_at"]), parts=current["parts"],
            variables=[v for doc in parts for v in variables_from_json(doc["variables"])])
