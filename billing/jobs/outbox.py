"""Money jobs: refunds, capture/void retries and receipts, run through an outbox.

This module only submits, claims, runs, sweeps and drains jobs; what a job does lives in
`billing.jobs.handlers` (which moves money only through `billing.ledger`).

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from billing.models import Job, JobKind, JobStatus, OperationStatus
from billing.settings import BillingConfig
from billing.store.ports import BillingStore
from csms.background import stop_if_cancelled
from csms.domain import utcnow

log = logging.getLogger(__name__)

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
Handler = Callable[[Job], Awaitable[Outcome]]


class MoneyJobs:
    """Submits, runs and sweeps money jobs. Lives in `csms serve` (which submits and, with the
    in-process broker, runs) and in `csms worker` (which runs)."""

    def __init__(self, settings: BillingConfig, store: BillingStore) -> None:
        self.settings = settings
        self.store = store
        self.handlers: dict[JobKind, Handler] = {}  # filled by `billing.jobs.handlers`
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
            await self._exhausted(job, error, unknown=True)
            return
        try:
            outcome = await self.handlers[job.kind](job)
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
        await self._exhausted(job, outcome.error or "failed", unknown=outcome.transient)

    def delay(self, attempt: int) -> float:
        """Seconds before attempt `attempt + 1`: the configured schedule with +-20% jitter."""
        delays = self.settings.tasks.retry_delays
        base = delays[min(attempt - 1, len(delays) - 1)]
        return base * random.uniform(0.8, 1.2)

    async def _exhausted(self, job: Job, error: str, *, unknown: bool) -> None:
        """Make a given-up money operation visible with its last error.

        Refused (a final answer, or never sent): FAILED, which holds nothing. Outcome unknown
        (every try timed out or died): the gateway may have carried it out, so it stays PENDING
        and keeps holding its refund room (or the hold it may have captured or voided); the job
        is FAILED, where an operator sees it and retries it with the same key."""
        key = job.payload.get("operation")
        if not key:
            return
        if unknown:
            await self.store.finish_operation(key, OperationStatus.PENDING,
                                              error=f"outcome unknown, gave up: {error}")
        else:
            await self.store.finish_operation(key, OperationStatus.FAILED, error=error)
