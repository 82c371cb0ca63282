"""Refunds: the unused part of a PIX payment, operator refunds (with an Idempotency-Key), and
operators retrying a failed job. A refund is recorded within what may still be refunded
(`billing.payment.begin_refund`) and run by a REFUND job through the ledger."""

from __future__ import annotations

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
                      reason: str | None = None) -> Operation | None:
        """Record the refund (within what is refundable) with its key, then hand it to the
        job queue. Returns None when it would refund more than was paid."""
        op, _ = await payment.begin_refund(self.store, session.session_id, amount, key,
                                           limit=payment.refundable(session),
                                           charge_id=session.charge_id)
        if op is None:
            return None
        body: dict[str, Any] = {"operation": key}
        if reason:
            body["reason"] = reason
        await self.jobs.submit(JobKind.REFUND, key, session.session_id, body)
        return op

    async def operator_refund(self, session_id: str, amount: int, reason: str | None,
                              request_key: str | None = None) -> Operation:
        """An operator refunds (part of) a settled session; never more than was charged minus
        what was already refunded. `request_key` makes a repeated request idempotent."""
        session = await require_session(self.store, session_id)
        if session.status not in (S.COMPLETED, S.CANCELED, S.FAILED):
            # While a session runs, its own settlement decides what is kept and given back.
            raise BillingError(409, "session_not_settled",
                               f"session is {session.status.value}; refund once it has ended")
        if session.payment_status not in (P.CAPTURED, P.PAID, P.PARTIALLY_REFUNDED):
            raise BillingError(409, "not_refundable",
                               f"payment is {session.payment_status.value}, nothing to refund")
        key = f"{session_id}:REFUND:{request_key or secrets.token_hex(8)}"
        op = await self._submit(session, amount, key, reason or "operator refund")
        if op is None:
            raise BillingError(422, "refund_exceeds_charged",
                               f"at most {payment.refundable(session) - session.refunded_amount}"
                               " cents can still be refunded")
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
