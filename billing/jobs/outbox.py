"""Money jobs: refunds, capture/void retries and receipts, run through an outbox.

A job is written to the store (with the idempotency key of the gateway operation it
performs) *before* it is enqueued; the task only carries the job id. The worker claims the job
with a lease, runs it, and records the outcome. Retry times live in the outbox too, so a broker
outage, a dead worker or a restart delays a job but never loses it, and a duplicate delivery
finds the job claimed or done and does nothing.

Why not taskiq's SmartRetryMiddleware: it re-kicks a failed task with a `delay` label that no
broker honours without a schedule source and a separate scheduler process, its delay grows
linearly, and a retry held in a worker's memory dies with that worker. The outbox already holds
every job durably, so the retry schedule is a column there and the sweeper enqueues what is due.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from billing.gateways.base import GatewayResult, PaymentGateway
from billing.models import (
    Job,
    JobKind,
    JobStatus,
    Method,
    OperationStatus,
    OperationType,
    PaymentStatus,
    Receipt,
    Session,
    SessionStatus,
)
from billing.receipts import (
    Mailer,
    MailError,
    make_message_id,
    receipt_data_from_session,
    render_receipt,
)
from billing.settings import BillingConfig
from billing.store.ports import BillingStore
from csms.background import stop_if_cancelled
from csms.domain import utcnow
from csms.store import Store

log = logging.getLogger(__name__)

P = PaymentStatus
SETTLED = frozenset({P.CAPTURED, P.REFUNDED, P.PARTIALLY_REFUNDED, P.WAIVED, P.PAID})
ENDED = frozenset({SessionStatus.COMPLETED, SessionStatus.CANCELED, SessionStatus.FAILED})


@dataclass(frozen=True, slots=True)
class Outcome:
    done: bool
    transient: bool = False
    error: str | None = None


DONE = Outcome(True)


def retry(error: str | None) -> Outcome:
    return Outcome(False, transient=True, error=error or "transient failure")


def give_up(error: str | None) -> Outcome:
    return Outcome(False, transient=False, error=error or "failed")


Enqueue = Callable[[str], Awaitable[None]]


class MoneyJobs:
    """Submits, runs and sweeps money jobs. Lives in `csms serve` (which submits and, with the
    in-process broker, runs) and in `csms worker` (which runs)."""

    def __init__(self, settings: BillingConfig, store: BillingStore, charging: Store,
                 gateway: PaymentGateway, mailer: Mailer) -> None:
        self.settings = settings
        self.store = store
        self.charging = charging
        self.gateway = gateway
        self.mailer = mailer
        self.enqueue: Enqueue | None = None  # set once the broker is up
        self._running: set[asyncio.Future[None]] = set()

    # submitting ----------------------------------------------------------------------------
    async def submit(self, kind: JobKind, job_id: str, session_id: str,
                     payload: dict[str, Any] | None = None) -> Job:
        """Write the job to the outbox, then enqueue it. Enqueueing may fail (broker down):
        the job is safe in the store and the sweeper enqueues it once its lease expires."""
        now = utcnow()
        lease = now + timedelta(seconds=self.settings.tasks.lease)
        job, created = await self.store.add_job(Job(
            job_id=job_id, kind=kind, session_id=session_id, payload=payload or {},
            status=JobStatus.PENDING, attempts=0, next_attempt_at=now, lease_until=lease,
            created_at=now, updated_at=now))
        if created:
            await self._kick(job_id)
        return job

    async def _kick(self, job_id: str) -> None:
        if self.enqueue is None:
            return
        try:
            await self.enqueue(job_id)
        except Exception as exc:
            log.warning("job %s: could not enqueue (%s); the sweeper will retry", job_id, exc)

    async def sweep(self) -> int:
        """Enqueue every job that is due: never enqueued (broker was down), due for a retry,
        or delivered to a worker that died. Returns how many were enqueued."""
        now = utcnow()
        lease = now + timedelta(seconds=self.settings.tasks.lease)
        kicked = 0
        for job in await self.store.due_jobs(now):
            if await self.store.lease_job(job.job_id, job.lease_until, lease):
                await self._kick(job.job_id)
                kicked += 1
        return kicked

    async def sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("outbox sweep failed")
            stop_if_cancelled()
            await asyncio.sleep(self.settings.tasks.sweep_interval)

    # running ---------------------------------------------------------------------------------
    async def deliver(self, job_id: str) -> None:
        """What the task does with a delivery: run the job shielded from the receiver being
        cancelled, so a worker asked to stop lets it finish (see `drain`). If the message is
        then never acknowledged, its redelivery finds the job done and does nothing."""
        task = asyncio.ensure_future(self.run(job_id))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        await asyncio.shield(task)

    async def drain(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for jobs in flight; the rest stay leased in the outbox
        and are taken up again once the lease runs out."""
        if self._running:
            log.info("waiting up to %.0fs for %d job(s) in flight", timeout, len(self._running))
            _, pending = await asyncio.wait(set(self._running), timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def run(self, job_id: str) -> None:
        """Run one delivery of a job. Safe to call any number of times for the same id."""
        now = utcnow()
        job = await self.store.claim_job(job_id, now,
                                         now + timedelta(seconds=self.settings.tasks.lease))
        if job is None:
            log.debug("job %s: not claimable (done, failed, not due or running elsewhere)",
                      job_id)
            return
        if job.attempts > self.settings.tasks.max_attempts:  # earlier runs never finished
            error = f"gave up: {job.attempts - 1} runs never finished ({job.last_error or '-'})"
            await self.store.fail_job(job_id, error)
            await self._exhausted(job, error)
            return
        try:
            outcome = await self._handlers[job.kind](self, job)
        except Exception as exc:  # a bug or an outage we did not classify: retry it
            log.exception("job %s (%s) crashed", job_id, job.kind.value)
            outcome = retry(f"{type(exc).__name__}: {exc}")
        if outcome.done:
            await self.store.complete_job(job_id)
            return
        attempt = job.attempts  # this run, counted when it was claimed
        if outcome.transient and attempt < self.settings.tasks.max_attempts:
            delay = self.delay(attempt)
            log.warning("job %s (%s) attempt %d failed: %s; next in %.0fs", job_id,
                        job.kind.value, attempt, outcome.error, delay)
            await self.store.reschedule_job(job_id, next_attempt_at=utcnow() + timedelta(
                seconds=delay), error=outcome.error or "")
            return
        log.error("job %s (%s) gave up after %d attempts: %s", job_id, job.kind.value,
                  attempt, outcome.error)
        await self.store.fail_job(job_id, outcome.error or "failed")
        await self._exhausted(job, outcome.error or "failed")

    def delay(self, attempt: int) -> float:
        """Seconds before attempt `attempt + 1`: the configured schedule with +-20% jitter."""
        delays = self.settings.tasks.retry_delays
        base = delays[min(attempt - 1, len(delays) - 1)]
        return base * random.uniform(0.8, 1.2)

    async def _exhausted(self, job: Job, error: str) -> None:
        """Make a given-up money operation visible as FAILED with its last error."""
        key = job.payload.get("operation")
        if key:
            await self.store.finish_operation(key, OperationStatus.FAILED, error=error)

    # handlers --------------------------------------------------------------------------------
    async def _refund(self, job: Job) -> Outcome:
        op = await self.store.get_operation(job.payload["operation"])
        if op is None:
            return give_up("no such refund operation")
        if op.status == OperationStatus.SUCCEEDED:
            return DONE
        if op.status == OperationStatus.FAILED:  # never act on it: an operator reopens it
            return give_up(op.error or "the refund failed")
        session = await self._session(op.session_id)
        charge_id = op.charge_id or session.charge_id
        if not charge_id:
            return give_up("the session has no gateway charge to refund")
        result = await self.gateway.refund(charge_id=charge_id, amount=op.amount,
                                           idempotency_key=op.idempotency_key)
        if result.transient:
            return retry(result.error)
        if not result.success:
            await self.store.finish_operation(op.idempotency_key, OperationStatus.FAILED,
                                              error=result.error, raw=result.raw)
            return give_up(result.error)
        await self.store.settle_refund(op.idempotency_key, raw=result.raw)
        await self.after_settlement(op.session_id)
        return DONE

    async def _operation(self, job: Job) -> Outcome:
        """Retry a CAPTURE / VOID whose gateway outcome was unknown, with its stored key."""
        op = await self.store.get_operation(job.payload["operation"])
        if op is None:
            return give_up("no such operation")
        session = await self._session(op.session_id)
        if op.status == OperationStatus.SUCCEEDED:
            # done at the gateway; make sure the payment followed (a crash may have come
            # between the two; both steps are compare-and-set)
            await self.apply_success(session.session_id, op.type, op.amount)
            await self.after_settlement(session.session_id)
            return DONE
        if op.status == OperationStatus.FAILED:
            return give_up(op.error or "the gateway refused the operation")
        charge_id = op.charge_id or session.charge_id
        if not charge_id:
            return give_up("the session has no gateway charge")
        result: GatewayResult
        if op.type == OperationType.CAPTURE:
            result = await self.gateway.capture(charge_id=charge_id, amount=op.amount,
                                                idempotency_key=op.idempotency_key)
        elif op.type == OperationType.VOID:
            result = await self.gateway.void(
                charge_id=charge_id,
                amount=op.amount if session.method != Method.PIX else None,
                idempotency_key=op.idempotency_key)
        else:
            return give_up(f"{op.type.value} is not retried by a job")
        if result.transient:
            return retry(result.error)
        status = OperationStatus.SUCCEEDED if result.success else OperationStatus.FAILED
        await self.store.finish_operation(op.idempotency_key, status, error=result.error,
                                          charge_id=result.charge_id or charge_id,
                                          raw=result.raw)
        if not result.success:
            return give_up(result.error)
        await self.apply_success(session.session_id, op.type, op.amount)
        await self.after_settlement(session.session_id)
        return DONE

    async def apply_success(self, session_id: str, type: OperationType, amount: int) -> None:
        """Move the payment after a CAPTURE or VOID succeeded (compare-and-set), whether it
        succeeded in a request, in settlement or in a job."""
        if type == OperationType.CAPTURE:
            await self.store.transition_payment(session_id, {P.AUTHORIZED}, P.CAPTURED,
                                                captured_amount=amount)
        elif type == OperationType.VOID:  # a card hold, or an unpaid PIX charge
            await self.store.transition_payment(session_id, {P.AUTHORIZED, P.PENDING},
                                                P.VOIDED)

    async def _receipt(self, job: Job) -> Outcome:
        session = await self._session(job.session_id)
        receipt = await self.store.get_receipt(session.session_id)
        if receipt is None:
            receipt = await self._make_receipt(session)
        if receipt.emailed_at is not None or not session.email:
            return DONE
        try:
            await self.mailer.send(
                to=session.email,
                subject=f"Charging receipt #{receipt.number:08d} - {session.station_id}",
                html=receipt.html, text=receipt.text,
                message_id=make_message_id(f"receipt-{session.session_id}",
                                           self.settings.mail.from_address))
        except MailError as exc:
            return retry(str(exc)) if exc.transient else give_up(str(exc))
        await self.store.mark_receipt_emailed(session.session_id, utcnow())
        return DONE

    async def _make_receipt(self, session: Session) -> Receipt:
        tx = (await self.charging.get_transaction(session.transaction_id)
              if session.transaction_id is not None else None)
        refunds = [(op.amount, op.updated_at) for op in
                   await self.store.list_operations(session.session_id)
                   if op.type == OperationType.REFUND and op.status == OperationStatus.SUCCEEDED]
        now = utcnow()

        def render(number: int) -> tuple[str, str]:
            data = receipt_data_from_session(
                session, receipt_number=number, issued_at=now,
                operator=self.settings.receipts, refunds=refunds,
                started_at=tx.started_at if tx else session.created_at,
                stopped_at=tx.stopped_at if tx else session.ended_at)
            return render_receipt(data)

        return await self.store.create_receipt(session.session_id, secrets.token_urlsafe(24),
                                               "", "", now, render=render)

    _handlers: dict[JobKind, Callable[[MoneyJobs, Job], Awaitable[Outcome]]] = {
        JobKind.REFUND: _refund,
        JobKind.OPERATION: _operation,
        JobKind.RECEIPT: _receipt,
    }

    # settlement follow-up ----------------------------------------------------------------------
    async def after_settlement(self, session_id: str) -> None:
        """Once a session has ended and its money has settled, its receipt is due."""
        session = await self._session(session_id)
        if session.status not in ENDED or session.payment_status not in SETTLED:
            return
        if session.payment_status == P.PAID and session.status != SessionStatus.COMPLETED:
            return  # a PIX refund is still to come
        pending = [op for op in await self.store.list_operations(session_id)
                   if op.status == OperationStatus.PENDING]
        if pending:
            return  # e.g. the PIX refund of the unused part has not settled yet
        if session.captured_amount == 0 and session.refunded_amount == 0 and \
                session.payment_status != P.WAIVED:
            return  # nothing was charged
        await self.submit(JobKind.RECEIPT, f"receipt:{session_id}", session_id)

    async def _session(self, session_id: str) -> Session:
        session = await self.store.get_session(session_id)
        if session is None:
            raise LookupError(f"unknown session {session_id}")
        return session
