"""Sessions with their ledger embedded (`ops.<seq>`): every move one compare-and-set.

The ledger lives in its session's document, so recording an outcome and moving the payment
(`settle_operation`) is one write. Idempotency keys are made unique across sessions by
`billing_op_keys` ({_id: key, session_id}), inserted before the operation is added to the
session: two documents. A crash between the two leaves a key without its operation; the
retry (the same key: ledger.run and the jobs always retry with it) finds the key, sees the
session has no such operation and adds it, so the key is never lost nor used twice.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from billing.models import Operation, OperationStatus, OperationType, PaymentStatus, Session
from billing.models import SessionStatus as S
from billing.store.mongo.base import (
    OP_KEYS,
    SESSIONS,
    BillingConnection,
    now,
    op_doc,
    op_from,
    session_doc,
    session_fields,
    session_from,
)
from billing.store.values import DuplicateSession, check_session_changes, check_session_value
from csms.store.mongo_support import Document, compare_and_set, insert_once, utc_req

# (session, ops) -> (session, ops) to write, or None: nothing to write
Move = Callable[[Session, dict[str, Document]], tuple[Session, dict[str, Document]] | None]


def _apply(session: Session, changes: dict[str, Any], **store_owned: Any) -> Session:
    """`changes` validated as the SQLite adapter validates them, then version + 1."""
    check_session_changes(changes)
    for name, value in {**changes, **store_owned}.items():
        setattr(session, name, value)
    session.version += 1
    session.updated_at = now()
    return session


class SessionCollection(BillingConnection):
    async def _move(self, session_id: str, move: Move) -> tuple[Session, bool] | None:
        """Apply `move` by compare-and-set; (session as stored, written) or None if unknown."""
        wrote = False

        def change(doc: Document) -> Document | None:
            nonlocal wrote
            result = move(session_from(doc), dict(doc.get("ops") or {}))
            wrote = result is not None
            return None if result is None else session_fields(*result)

        doc = await compare_and_set(self._coll(SESSIONS), session_id, change)
        return None if doc is None else (session_from(doc), wrote)

    async def create_session(self, session: Session) -> None:
        for name in session_doc(session):
            check_session_value(name, getattr(session, name))
        doc = {"_id": session.session_id, "rev": 0, "oid": ObjectId(),
               "created_at": session.created_at, **session_fields(session, {})}
        try:
            await self._coll(SESSIONS).insert_one(doc)
        except DuplicateKeyError as exc:
            if await self._coll(SESSIONS).find_one({"_id": session.session_id}) is not None:
                raise DuplicateSession(f"session {session.session_id!r} exists") from exc
            raise DuplicateSession(f"id_tag {session.id_tag!r} already used") from exc

    async def _newest_session(self, query: Document) -> Session | None:
        docs = await self.newest(SESSIONS, query, 1)
        return session_from(docs[0]) if docs else None

    async def get_session(self, session_id: str) -> Session | None:
        doc = await self._coll(SESSIONS).find_one({"_id": session_id})
        return None if doc is None else session_from(doc)

    async def session_by_id_tag(self, id_tag: str) -> Session | None:
        return await self._newest_session({"id_tag": id_tag})

    async def session_by_transaction(self, transaction_id: int) -> Session | None:
        return await self._newest_session({"transaction_id": transaction_id})

    async def session_by_charge(self, charge_id: str) -> Session | None:
        return await self._newest_session({"charge_id": charge_id})

    async def sessions_by_transactions(self, transaction_ids: Collection[int],
                                       ) -> dict[int, Session]:
        wanted = sorted({int(t) for t in transaction_ids})
        if not wanted:
            return {}
        found: dict[int, Session] = {}
        cursor = self._coll(SESSIONS).find({"transaction_id": {"$in": wanted}}).sort(
            [("created_at", ASCENDING), ("oid", ASCENDING)])
        async for doc in cursor:  # oldest first: the newest of a transaction wins
            session = session_from(doc)
            assert session.transaction_id is not None
            found[session.transaction_id] = session
        return found

    async def list_sessions(self, *, statuses: Collection[S] | None = None,
                            station_id: str | None = None,
                            station_ids: Collection[str] | None = None,
                            limit: int = 100) -> list[Session]:
        if (statuses is not None and not statuses) or (station_ids is not None
                                                      and not station_ids):
            return []
        query: Document = {}
        if statuses is not None:
            query["status"] = {"$in": [S(s).value for s in statuses]}
        if station_id is not None and station_ids is not None:
            query["$and"] = [{"station_id": station_id},
                             {"station_id": {"$in": sorted(station_ids)}}]
        elif station_id is not None:
            query["station_id"] = station_id
        elif station_ids is not None:
            query["station_id"] = {"$in": sorted(station_ids)}
        return [session_from(doc) for doc in await self.newest(SESSIONS, query, limit)]

    async def _transition(self, session_id: str, field: str | None, expected: Collection[str],
                          target: Any, changes: dict[str, Any]) -> Session | None:
        check_session_changes(changes)  # a bad change fails even when the status does not match
        wanted = set(expected)

        def move(session: Session, ops: dict[str, Document]) -> Any:
            if field is not None and getattr(session, field).value not in wanted:
                return None
            owned = {} if field is None or target is None else {field: target}
            return _apply(session, changes, **owned), ops

        result = await self._move(session_id, move)
        return result[0] if result is not None and result[1] else None

    async def transition_session(self, session_id: str, expected: Collection[S], target: S,
                                 **changes: Any) -> Session | None:
        return await self._transition(session_id, "status", [S(s).value for s in expected],
                                      S(target), changes)

    async def update_session(self, session_id: str, *,
                             if_status: Collection[S] | None = None,
                             **changes: Any) -> Session | None:
        if if_status is None:
            return await self._transition(session_id, None, (), None, changes)
        return await self._transition(session_id, "status", [S(s).value for s in if_status],
                                      None, changes)

    async def transition_payment(self, session_id: str, expected: Collection[PaymentStatus],
                                 target: PaymentStatus, **changes: Any) -> Session | None:
        return await self._transition(
            session_id, "payment_status", [PaymentStatus(s).value for s in expected],
            PaymentStatus(target), changes)

    # the ledger -------------------------------------------------------------------------------

    async def _owner(self, key: str) -> str | None:
        doc = await self._coll(OP_KEYS).find_one({"_id": key})
        return None if doc is None else doc["session_id"]

    async def begin_operation(self, session_id: str, type: OperationType, amount: int,
                              idempotency_key: str, charge_id: str | None = None, *,
                              at_version: int | None = None,
                              fingerprint: str | None = None,
                              ) -> tuple[Operation | None, bool]:
        kind = OperationType(type)
        if isinstance(amount, bool) or not isinstance(amount, int) or amount < 0:
            raise ValueError(f"amount must be a non-negative integer of cents: {amount!r}")
        if await self.get_session(session_id) is None:
            raise ValueError(f"unknown session {session_id!r}")
        if not await insert_once(self._coll(OP_KEYS),
                                 {"_id": idempotency_key, "session_id": session_id}):
            owner = await self._owner(idempotency_key)
            if owner is not None and owner != session_id:  # the key is another session's
                return await self.get_operation(idempotency_key), False
        created: Operation | None = None

        def move(session: Session, ops: dict[str, Document]) -> Any:
            nonlocal created
            created = None
            if any(op["idempotency_key"] == idempotency_key for op in ops.values()):
                return None  # a retry, or the twin of a concurrent call: the first one wins
            if at_version is not None and session.version != at_version:
                return None
            seq = max((int(s) for s in ops), default=0) + 1
            moment = now()
            created = Operation(session_id, seq, kind, amount, OperationStatus.PENDING,
                                idempotency_key, moment, moment, charge_id=charge_id,
                                fingerprint=fingerprint)
            if at_version is not None:
                session.version += 1
                session.updated_at = moment
            return session, {**ops, str(seq): op_doc(created)}

        await self._move(session_id, move)
        if created is not None:
            return created, True
        return await self.get_operation(idempotency_key), False

    async def _ledger_step(self, key: str, step: Callable[[Session, Operation], Any],
                           ) -> tuple[Session, Operation | None] | None:
        """Apply `step(session, op)` -> (session, op) | None to the operation `key`."""
        session_id = await self._owner(key)
        if session_id is None:
            return None

        def move(session: Session, ops: dict[str, Document]) -> Any:
            found = next((op for op in ops.values() if op["idempotency_key"] == key), None)
            if found is None:
                return None
            result = step(session, op_from(session.session_id, found))
            if result is None:
                return None
            new_session, op = result
            return new_session, {**ops, str(op.seq): op_doc(op)}

        result = await self._move(session_id, move)
        if result is None:
            return None
        session, _ = result
        return session, await self.get_operation(key)

    async def finish_operation(self, idempotency_key: str, status: OperationStatus, *,
                               error: str | None = None, charge_id: str | None = None,
                               raw: dict[str, Any] | None = None) -> Operation | None:
        final = OperationStatus(status)
        keep = final is OperationStatus.PENDING and raw is None  # an annotation keeps context

        def step(session: Session, op: Operation) -> Any:
            if op.status is not OperationStatus.PENDING:
                return None
            op.status, op.error, op.updated_at = final, error, now()
            op.raw = op.raw if keep else raw
            op.charge_id = charge_id if charge_id is not None else op.charge_id
            return session, op

        result = await self._ledger_step(idempotency_key, step)
        return None if result is None else result[1]

    async def settle_operation(self, idempotency_key: str, *, session_version: int,
                               changes: dict[str, Any], raw: dict[str, Any] | None = None,
                               ) -> Session | None:
        rest = {k: v for k, v in changes.items() if k != "payment_status"}
        check_session_changes(rest)
        owned = ({"payment_status": PaymentStatus(changes["payment_status"])}
                 if "payment_status" in changes else {})
        settled = False

        def step(session: Session, op: Operation) -> Any:
            nonlocal settled
            settled = op.status is OperationStatus.PENDING and session.version == session_version
            if not settled:
                return None
            op.status, op.error, op.updated_at = OperationStatus.SUCCEEDED, None, now()
            op.raw = raw if raw is not None else op.raw
            return _apply(session, rest, **owned), op

        result = await self._ledger_step(idempotency_key, step)
        return result[0] if result is not None and settled else None

    async def reopen_operation(self, idempotency_key: str, *, at_version: int | None = None,
                               ) -> Operation | None:
        reopened = False

        def step(session: Session, op: Operation) -> Any:
            nonlocal reopened
            reopened = op.status is OperationStatus.FAILED and (
                at_version is None or session.version == at_version)
            if not reopened:
                return None
            op.status, op.updated_at = OperationStatus.PENDING, now()
            return _apply(session, {}), op

        result = await self._ledger_step(idempotency_key, step)
        return result[1] if result is not None and reopened else None

    async def get_operation(self, idempotency_key: str) -> Operation | None:
        session_id = await self._owner(idempotency_key)
        doc = None if session_id is None else await self._coll(SESSIONS).find_one(
            {"_id": session_id}, {"ops": 1})
        for op in ((doc or {}).get("ops") or {}).values():
            if op["idempotency_key"] == idempotency_key:
                return op_from(session_id or "", op)
        return None  # unknown, or a key whose operation a crash kept from being added

    async def list_operations(self, session_id: str) -> list[Operation]:
        doc = await self._coll(SESSIONS).find_one({"_id": session_id}, {"ops": 1})
        ops = [op_from(session_id, op) for op in ((doc or {}).get("ops") or {}).values()]
        return sorted(ops, key=lambda op: op.seq)

    async def succeeded_total(self, types: Collection[OperationType], since: datetime) -> int:
        """One find over the sessions whose ledger moved since `since` (index op_moved; a
        document written before that copy existed is read when the session changed since),
        summed here: the ledger is a map inside each session's document."""
        wanted = {OperationType(t).value for t in types}
        if not wanted:
            return 0
        query = {"$or": [{"op_moved_at": {"$gte": since}},
                         {"op_moved_at": {"$exists": False},
                          "session.updated_at": {"$gte": since}}]}
        total = 0
        async for doc in self._coll(SESSIONS).find(query, {"ops": 1}):
            for op in (doc.get("ops") or {}).values():
                if op["type"] in wanted and op["status"] == OperationStatus.SUCCEEDED.value \
                        and utc_req(op["updated_at"]) >= since:
                    total += op["amount"]
        return total

    async def pending_operations(self, older_than: datetime | None = None) -> list[Operation]:
        found: list[Operation] = []
        async for doc in self._coll(SESSIONS).find({"pending": {"$gt": 0}}, {"ops": 1}):
            for op in (doc.get("ops") or {}).values():
                operation = op_from(doc["_id"], op)
                if operation.status is OperationStatus.PENDING and (
                        older_than is None or operation.created_at <= older_than):
                    found.append(operation)
        return sorted(found, key=lambda op: (op.created_at, op.session_id, op.seq))
