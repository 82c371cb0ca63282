"""Refunds: the unused part of a PIX payment, operator refunds (with an Idempotency-Key), and
operators retrying a failed job. A refund is recorded within what may still be refunded
(`billing.payment.begin_refund`) and run by a REFUND job through the ledger."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from typing import Any

from billing import payment
from billing.errors import BillingError, require_session
from billing.jobs.outbox import MoneyJobs
from billing.ledger import key_for
from billing.models import (
    Job,
    JobKind,
    JobStatus,
    Operation,
    OperationStatus,
    OperationType,
    PaymentStatus,
    Session,
    SessionStatus,
)
from billing.store.ports import BillingStore
from csms.domain import utcnow

log = logging.getLogger(__name__)

S = SessionStatus
P = PaymentStatus


class Refunds:
    def __init__(self, store: BillingStore, jobs: MoneyJobs) -> None:
        self.store = store
        self.jobs = jobs

    async def refund_unused(self, session: Session, amount: int) -> None:
        """Refund the unused or undelivered part of a PIX payment (key `<sid>:REFUND`)."""
        if await self._submit(session, amount, key_for(session.session_id, OperationType.REFUND)) \
                is None:
            log.error("session %s: refund of %s refused: it exceeds what is left to refund",
                      session.session_id, amount)

    async def _submit(self, session: Session, amount: int, key: str,
                      reason: str | None = None, fingerprint: str | None = None,
                      ) -> Operation | None:
        """Record the refund (within what is refundable) with its key, then hand it to the
        job queue. Returns None when it would refund more than was paid; the operation the
        key already names (whatever it asked for) when it exists."""
        op, _ = await payment.begin_refund(self.store, session.session_id, amount, key,
                                           limit=payment.refundable(session),
                                           charge_id=await self._refunded_charge(session),
                                           fingerprint=fingerprint)
        if op is None:
            return None
        if fingerprint is not None and op.fingerprint != fingerprint:
            return op  # another request's: the caller refuses it, nothing to submit
        body: dict[str, Any] = {"operation": key}
        if reason:
            body["reason"] = reason
        await self.jobs.submit(JobKind.REFUND, key, session.session_id, body)
        return op

    async def _refunded_charge(self, session: Session) -> str | None:
        """What a refund names at the gateway: the transaction that took the money. That is
        the capture's own id when the gateway gave the capture one (CCV refunds a capture, not
        the authorisation it captured), else the session's charge (a PIX charge, a Pagar.me
        charge: the same id throughout)."""
        capture = await self.store.get_operation(key_for(session.session_id,
                                                         OperationType.CAPTURE))
        if capture is not None and capture.status == OperationStatus.SUCCEEDED and \
                capture.charge_id:
            return capture.charge_id
        return session.charge_id

    async def operator_refund(self, session_id: str, amount: int, reason: str | None,
                              request_key: str | None = None) -> Operation:
        """An operator refunds (part of) a settled session; never more than was charged minus
        what was already refunded.

        `request_key` (the Idempotency-Key) makes a repeated request idempotent, as Stripe's:
        the same key with the same amount and reason replays the stored refund, also once it
        has settled (the key is looked up before the status checks); with other parameters it
        is a 409 naming the key. The check is on the operation the store returns for the key
        (existing or just created), so two racing requests agree."""
        session = await require_session(self.store, session_id)
        fingerprint = refund_fingerprint(amount, reason)
        key = f"{session_id}:REFUND:{request_key or secrets.token_hex(8)}"
        if request_key:
            existing = await self.store.get_operation(key)
            if existing is not None:
                return _replay(existing, request_key, amount, fingerprint)
        if session.status not in (S.COMPLETED, S.CANCELED, S.FAILED):
            # While a session runs, its own settlement decides what is kept and given back.
            raise BillingError(409, "session_not_settled",
                               f"session is {session.status.value}; refund once it has ended")
        if session.payment_status not in (P.CAPTURED, P.PAID, P.PARTIALLY_REFUNDED):
            raise BillingError(409, "not_refundable",
                               f"payment is {session.payment_status.value}, nothing to refund")
        op = await self._submit(session, amount, key, reason or "operator refund", fingerprint)
        if op is None:
            raise BillingError(422, "refund_exceeds_charged",
                               f"at most {payment.refundable(session) - session.refunded_amount}"
                               " cents can still be refunded")
        if request_key:
            op = _replay(op, request_key, amount, fingerprint)
        log.info("session %s: operator refund of %s (%s)", session_id, amount, reason or "-")
        return op

    async def retry_job(self, job_id: str) -> Job:
        """An operator retries a FAILED job (and its FAILED operation) with the same key."""
        existing = await self.store.get_job(job_id)
        if existing is None:
            raise BillingError(404, "job_not_found", "unknown job")
        if existing.status != JobStatus.FAILED:
            raise BillingError(409, "job_not_failed", f"job is {existing.status.value}")
        key = existing.payload.get("operation")
        # reopen the operation first: the job must never run against a FAILED one
        if key and not await payment.reopen(self.store, key):
            raise BillingError(409, "refund_exceeds_charged",
                               "other refunds have used the room this one needs")
        job = await self.store.retry_job(job_id, utcnow())
        if job is None:
            raise BillingError(409, "job_not_failed", "the job changed meanwhile")
        await self.jobs.sweep()
        return job


def refund_fingerprint(amount: int, reason: str | None) -> str:
    """What an operator refund asked for (the reason as sent, None when omitted), hashed."""
    body = json.dumps({"amount": amount, "reason": reason}, sort_keys=True)
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


def _replay(op: Operation, request_key: str, amount: int, fingerprint: str) -> Operation:
    """The refund an Idempotency-Key names, if it was asked for with the same parameters
    (a refund recorded before fingerprints were kept is compared by amount)."""
    same = op.amount == amount if op.fingerprint is None else op.fingerprint == fingerprint
    if not same:
        raise BillingError(409, "idempotency_key_reused",
                           f"Idempotency-Key {request_key!r} was used for a refund with other "
                           f"parameters ({op.amount} cents); use a new key for a new refund")
    return op
