"""The money-job outbox: every status change one compare-and-set on the job's document."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime

from bson import ObjectId
from pymongo import ASCENDING

from billing.models import Job, JobKind, JobStatus
from billing.store.mongo.base import JOBS, BillingConnection, job_doc, job_from, now
from csms.store.mongo_support import Document, compare_and_set, insert_once

PENDING, RUNNING = JobStatus.PENDING, JobStatus.RUNNING


def _expired(job: Job, moment: datetime) -> bool:
    return job.lease_until is None or job.lease_until <= moment


class JobCollection(BillingConnection):
    async def add_job(self, job: Job) -> tuple[Job, bool]:
        if isinstance(job.attempts, bool) or not isinstance(job.attempts, int) or job.attempts < 0:
            raise ValueError(f"attempts must be a non-negative integer: {job.attempts!r}")
        JobKind(job.kind), JobStatus(job.status)
        created = await insert_once(self._coll(JOBS), {
            "_id": job.job_id, "rev": 0, "oid": ObjectId(), "created_at": job.created_at,
            "job": job_doc(job)})
        stored = await self.get_job(job.job_id)
        assert stored is not None
        return stored, created

    async def get_job(self, job_id: str) -> Job | None:
        doc = await self._coll(JOBS).find_one({"_id": job_id})
        return None if doc is None else job_from(doc)

    async def list_jobs(self, *, statuses: Collection[JobStatus] | None = None,
                        session_id: str | None = None, limit: int = 100) -> list[Job]:
        if statuses is not None and not statuses:
            return []
        query: Document = {}
        if statuses is not None:
            query["job.status"] = {"$in": [JobStatus(s).value for s in statuses]}
        if session_id is not None:
            query["job.session_id"] = session_id
        return [job_from(doc) for doc in await self.newest(JOBS, query, limit)]

    async def _job_move(self, job_id: str, move: Callable[[Job], Job | None]) -> Job | None:
        """Apply `move` (None: the job is not in a state it applies to) by compare-and-set."""
        moved = False

        def change(doc: Document) -> Document | None:
            nonlocal moved
            job = move(job_from(doc))
            moved = job is not None
            if job is None:
                return None
            job.updated_at = now()
            return {"job": job_doc(job)}

        doc = await compare_and_set(self._coll(JOBS), job_id, change)
        return job_from(doc) if doc is not None and moved else None

    async def claim_job(self, job_id: str, now: datetime, lease_until: datetime) -> Job | None:
        def move(job: Job) -> Job | None:
            due = job.status is PENDING and job.next_attempt_at <= now
            if not (due or (job.status is RUNNING and _expired(job, now))):
                return None
            job.status, job.attempts, job.lease_until = RUNNING, job.attempts + 1, lease_until
            return job

        return await self._job_move(job_id, move)

    async def reschedule_job(self, job_id: str, *, next_attempt_at: datetime, error: str,
                             ) -> Job | None:
        def move(job: Job) -> Job | None:
            if job.status is not RUNNING:
                return None
            job.status, job.last_error, job.lease_until = PENDING, error, None
            job.next_attempt_at = next_attempt_at
            return job

        return await self._job_move(job_id, move)

    async def _finish(self, job_id: str, status: JobStatus, error: str | None) -> Job | None:
        def move(job: Job) -> Job | None:
            if job.status is not RUNNING:
                return None
            job.status, job.lease_until = status, None
            job.last_error = error if error is not None else job.last_error
            return job

        return await self._job_move(job_id, move)

    async def complete_job(self, job_id: str) -> Job | None:
        return await self._finish(job_id, JobStatus.DONE, None)

    async def fail_job(self, job_id: str, error: str) -> Job | None:
        return await self._finish(job_id, JobStatus.FAILED, error)

    async def retry_job(self, job_id: str, now: datetime) -> Job | None:
        def move(job: Job) -> Job | None:
            if job.status is not JobStatus.FAILED:
                return None
            job.status, job.attempts, job.next_attempt_at, job.lease_until = PENDING, 0, now, None
            return job

        return await self._job_move(job_id, move)

    async def defer_job(self, job_id: str, *, next_attempt_at: datetime, error: str,
                        ) -> Job | None:
        def move(job: Job) -> Job | None:
            if job.status is not JobStatus.FAILED:
                return None
            job.attempts, job.last_error = job.attempts + 1, error
            job.next_attempt_at = next_attempt_at
            return job

        return await self._job_move(job_id, move)

    async def due_jobs(self, now: datetime, limit: int = 100) -> list[Job]:
        if limit <= 0:
            return []
        free = [{"job.lease_until": None}, {"job.lease_until": {"$lte": now}}]
        query = {"$or": [
            {"job.status": PENDING.value, "job.next_attempt_at": {"$lte": now}, "$or": free},
            {"job.status": RUNNING.value, "$or": free}]}
        cursor = self._coll(JOBS).find(query).sort(
            [("job.next_attempt_at", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)])
        return [job_from(doc) async for doc in cursor.limit(limit)]

    async def lease_job(self, job_id: str, expected_lease: datetime | None,
                        lease_until: datetime) -> bool:
        def move(job: Job) -> Job | None:
            if job.status not in (PENDING, RUNNING) or job.lease_until != expected_lease:
                return None
            job.status, job.lease_until = PENDING, lease_until
            return job

        return await self._job_move(job_id, move) is not None
