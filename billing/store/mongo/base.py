"""The one client every billing collection module shares, and documents <-> billing objects.

Collections are prefixed `billing_` so billing can share the charging store's database. Values
are written as `csms.store.mongo_support` explains: every document that changes keeps what
changes in whole subdocuments (`session`, `ops`, `job`) written by one compare-and-set on the
document's `rev`; the top-level fields beside them are copies for indexes and filters.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection

from billing.models import (
    Job,
    JobKind,
    JobStatus,
    Method,
    Operation,
    OperationStatus,
    OperationType,
    PaymentStatus,
    Receipt,
    Session,
    SessionStatus,
    StopRequester,
)
from csms.store.mongo_support import Document, MongoConnection, utc, utc_req
from csms.store.ports import StoreError

SESSIONS, OP_KEYS, JOBS = "billing_sessions", "billing_op_keys", "billing_jobs"
RECEIPTS, COUNTERS = "billing_receipts", "billing_counters"
CARDS, TARIFFS, WEBHOOKS = "billing_saved_cards", "billing_station_tariffs", "billing_webhooks"
TERMINALS, TERMINAL_REQUESTS = "billing_terminals", "billing_terminal_requests"

# Every index, next to the queries that need it (`_id` serves lookups by session id, job id,
# idempotency key, driver tag and station).
INDEXES: dict[str, list[IndexModel]] = {
    SESSIONS: [
        # create_session: one session per id tag; session_by_id_tag
        IndexModel([("id_tag", ASCENDING)], unique=True, name="id_tag"),
        IndexModel([("transaction_id", ASCENDING)], name="transaction"),  # by_transaction
        IndexModel([("charge_id", ASCENDING)], name="charge"),  # session_by_charge
        # list_sessions(statuses, station_id), newest first
        IndexModel([("created_at", DESCENDING), ("oid", DESCENDING)], name="newest"),
        IndexModel([("station_id", ASCENDING), ("created_at", DESCENDING)], name="by_station"),
        IndexModel([("pending", ASCENDING)], name="pending"),  # pending_operations
        IndexModel([("op_moved_at", ASCENDING)], name="op_moved"),  # succeeded_total
    ],
    JOBS: [
        # due_jobs: by status and due time; list_jobs(session_id) newest first
        IndexModel([("job.status", ASCENDING), ("job.next_attempt_at", ASCENDING)], name="due"),
        IndexModel([("job.session_id", ASCENDING), ("created_at", DESCENDING)],
                   name="by_session"),
    ],
    RECEIPTS: [
        # create_receipt: numbers never repeat (with the counter: never skip); tokens unique
        IndexModel([("number", ASCENDING)], unique=True, name="number"),
        IndexModel([("token", ASCENDING)], unique=True, name="token"),  # receipt_by_token
    ],
    TERMINAL_REQUESTS: [
        IndexModel([("reference", ASCENDING)], name="reference"),  # by_reference (webhooks)
        # pending_terminal_requests, oldest first
        IndexModel([("status", ASCENDING), ("created_at", ASCENDING)], name="pending"),
    ],
    WEBHOOKS: [
        # record_webhook: an event id is handled once per gateway
        IndexModel([("gateway", ASCENDING), ("event_id", ASCENDING)], unique=True,
                   name="event"),
    ],
}


def now() -> datetime:
    """The current time as BSON keeps it (milliseconds), so what a write returns is what a
    read returns."""
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def plain(value: Any) -> Any:
    """A value as BSON stores it: enums by value (aware datetimes and the rest as they are)."""
    return value.value if isinstance(value, Enum) else value


def session_doc(session: Session) -> Document:
    return {f.name: plain(getattr(session, f.name)) for f in dataclasses.fields(Session)}


# Every optional moment of a session (a field added later is simply absent in older documents).
_OPTIONAL_TIMES = tuple(f.name for f in dataclasses.fields(Session)
                        if f.type == "datetime | None")


def session_from(doc: Document) -> Session:
    values = dict(doc["session"])
    for name in ("created_at", "updated_at"):
        values[name] = utc_req(values[name])
    for name in _OPTIONAL_TIMES:
        values[name] = utc(values.get(name))
    if values.get("stop_requested_by") is not None:
        values["stop_requested_by"] = StopRequester(values["stop_requested_by"])
    values["method"] = Method(values["method"])
    values["status"] = SessionStatus(values["status"])
    values["payment_status"] = PaymentStatus(values["payment_status"])
    values["save_card"] = bool(values["save_card"])
    return Session(**values)


def session_fields(session: Session, ops: dict[str, Document]) -> Document:
    """Everything a session write sets: the session, its ledger and the indexed copies."""
    return {"session": session_doc(session), "ops": ops, "status": session.status.value,
            "payment_status": session.payment_status.value, "id_tag": session.id_tag,
            "station_id": session.station_id, "transaction_id": session.transaction_id,
            "charge_id": session.charge_id,
            "pending": sum(op["status"] == OperationStatus.PENDING.value for op in ops.values()),
            # when the ledger last changed (computed here: nx-27017 returns $max of dates as
            # strings), so the money tiles read only sessions whose ledger moved since then
            "op_moved_at": max((op["updated_at"] for op in ops.values()), default=None)}


def op_doc(op: Operation) -> Document:
    return {"seq": op.seq, "type": op.type.value, "amount": op.amount, "status": op.status.value,
            "idempotency_key": op.idempotency_key, "created_at": op.created_at,
            "updated_at": op.updated_at, "error": op.error, "charge_id": op.charge_id,
            "raw": None if op.raw is None else json.dumps(op.raw),  # gateway keys may hold "."
            "fingerprint": op.fingerprint}


def op_from(session_id: str, doc: Document) -> Operation:
    return Operation(session_id=session_id, seq=doc["seq"], type=OperationType(doc["type"]),
                     amount=doc["amount"], status=OperationStatus(doc["status"]),
                     idempotency_key=doc["idempotency_key"],
                     created_at=utc_req(doc["created_at"]),
                     updated_at=utc_req(doc["updated_at"]), error=doc.get("error"),
                     charge_id=doc.get("charge_id"),
                     raw=None if doc.get("raw") is None else json.loads(doc["raw"]),
                     fingerprint=doc.get("fingerprint"))


def job_doc(job: Job) -> Document:
    values = {f.name: plain(getattr(job, f.name)) for f in dataclasses.fields(Job)}
    values["payload"] = json.dumps(job.payload)
    del values["job_id"]
    return values


def job_from(doc: Document) -> Job:
    values = dict(doc["job"])
    return Job(job_id=doc["_id"], kind=JobKind(values["kind"]), session_id=values["session_id"],
               payload=json.loads(values["payload"]), status=JobStatus(values["status"]),
               attempts=values["attempts"], next_attempt_at=utc_req(values["next_attempt_at"]),
               lease_until=utc(values.get("lease_until")),
               created_at=utc_req(values["created_at"]),
               updated_at=utc_req(values["updated_at"]), last_error=values.get("last_error"))


def receipt_from(doc: Document) -> Receipt:
    return Receipt(session_id=doc["_id"], number=doc["number"], token=doc["token"],
                   html=doc["html"], text=doc["text"], created_at=utc_req(doc["created_at"]),
                   emailed_at=utc((doc.get("emailed") or {}).get("at")))


class BillingConnection(MongoConnection):
    """One client for every billing collection."""

    INDEXES = INDEXES

    def _coll(self, name: str) -> AsyncCollection[Document]:
        if self._db is None:
            raise StoreError("billing store is not open")
        return self._db[name]
