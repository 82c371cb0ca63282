"""The money-job outbox: every status change a compare-and-set on the job row."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection
from datetime import datetime
from typing import Any

from billing.models import (
    Job,
    JobKind,
    JobStatus,
)
from billing.store.sqlite.base import SqliteConnection
from billing.store.sqlite.rows import (
    _JOB_COLUMNS,
    _job,
    _load_job,
    _now,
)
from csms.store.sqlite_support import ts


class JobTable(SqliteConnection):
    async def add_job(self, job: Job) -> tuple[Job, bool]:
        """Insert the job as given; an existing job_id wins: (that job, False)."""
        if isinstance(job.attempts, bool) or not isinstance(job.attempts, int) or job.attempts < 0:
            raise ValueError(f"attempts must be a non-negative integer: {job.attempts!r}")
        values = (
            job.job_id,
            JobKind(job.kind).value,
            job.session_id,
            json.dumps(job.payload),
            JobStatus(job.status).value,
            job.attempts,
            ts(job.next_attempt_at),
            None if job.lease_until is None else ts(job.lease_until),
            ts(job.created_at),
            ts(job.updated_at),
            job.last_error,
        )

        def op(conn: sqlite3.Connection) -> tuple[Job, bool]:
            cursor = conn.execute(
                f"INSERT OR IGNORE INTO billing_jobs ({_JOB_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            stored = _load_job(conn, job.job_id)
            assert stored is not None
            return stored, cursor.rowcount == 1

        return await self._write(op)

    async def get_job(self, job_id: str) -> Job | None:
        return await self._read(lambda conn: _load_job(conn, job_id))

    async def list_jobs(
        self,
        *,
        statuses: Collection[JobStatus] | None = None,
        session_id: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Newest first (created_at, then insertion order); `statuses` empty matches nothing."""
        return await self._newest(
            "billing_jobs", _JOB_COLUMNS, _job,
            None if statuses is None else [JobStatus(s).value for s in statuses],
            ("session_id", session_id), limit)

    async def _job_cas(
        self,
        job_id: str,
        sets: str,
        set_params: list[Any],
        where: str,
        where_params: list[Any],
    ) -> Job | None:
        """UPDATE billing_jobs SET `sets`, updated_at WHERE job_id AND `where` (one statement,
        so the check and the change are one compare-and-set); the updated job, or None when
        the row did not match."""
        sql = f"UPDATE billing_jobs SET {sets}, updated_at = ? WHERE job_id = ? AND ({where})"

        def op(conn: sqlite3.Connection) -> Job | None:
            bound = [*set_params, ts(_now()), job_id, *where_params]
            if conn.execute(sql, bound).rowcount != 1:
                return None
            return _load_job(conn, job_id)

        return await self._write(op)

    async def claim_job(self, job_id: str, now: datetime, lease_until: datetime) -> Job | None:
        """-> RUNNING with lease_until, from PENDING with next_attempt_at <= now (whatever its
        delivery lease: the claim is that delivery arriving) or from RUNNING whose lease is
        expired (lease_until <= now, or missing). Each claim counts as an attempt, so a job
        whose runs never finish (they hang, or kill their worker) still runs out of attempts."""
        moment = ts(now)
        return await self._job_cas(
            job_id,
            "status = 'RUNNING', attempts = attempts + 1, lease_until = ?",
            [ts(lease_until)],
            "(status = 'PENDING' AND next_attempt_at <= ?)"
            " OR (status = 'RUNNING' AND (lease_until IS NULL OR lease_until <= ?))",
            [moment, moment],
        )

    async def reschedule_job(
        self, job_id: str, *, next_attempt_at: datetime, error: str
    ) -> Job | None:
        return await self._job_cas(
            job_id,
            "status = 'PENDING', last_error = ?, lease_until = NULL,"
            " next_attempt_at = ?",
            [error, ts(next_attempt_at)],
            "status = 'RUNNING'",
            [],
        )

    async def complete_job(self, job_id: str) -> Job | None:
        """RUNNING -> DONE (lease cleared, last_error kept)."""
        return await self._job_cas(
            job_id,
            "status = 'DONE', lease_until = NULL",
            [],
            "status = 'RUNNING'",
            [],
        )

    async def fail_job(self, job_id: str, error: str) -> Job | None:
        """RUNNING -> FAILED (last_error, lease cleared)."""
        return await self._job_cas(
            job_id,
            "status = 'FAILED', last_error = ?, lease_until = NULL",
            [error],
            "status = 'RUNNING'",
            [],
        )

    async def retry_job(self, job_id: str, now: datetime) -> Job | None:
        """FAILED -> PENDING, attempts 0, next_attempt_at = now, lease cleared (last_error
        kept until the next outcome)."""
        return await self._job_cas(
            job_id,
            "status = 'PENDING', attempts = 0, next_attempt_at = ?, lease_until = NULL",
            [ts(now)],
            "status = 'FAILED'",
            [],
        )

    async def defer_job(self, job_id: str, *, next_attempt_at: datetime, error: str,
                        ) -> Job | None:
        """FAILED stays FAILED: attempts + 1, last_error, next_attempt_at (the sweep's
        backoff)."""
        return await self._job_cas(
            job_id,
            "attempts = attempts + 1, last_error = ?, next_attempt_at = ?",
            [error, ts(next_attempt_at)],
            "status = 'FAILED'",
            [],
        )

    async def due_jobs(self, now: datetime, limit: int = 100) -> list[Job]:
        """PENDING with next_attempt_at <= now and no live lease, and RUNNING with an expired
        (or missing) lease; a lease is expired when lease_until <= now. Oldest next_attempt_at
        first (then created_at, job_id)."""
        moment = ts(now)

        def op(conn: sqlite3.Connection) -> list[Job]:
            rows = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM billing_jobs WHERE"
                " (status = 'PENDING' AND next_attempt_at <= ?"
                " AND (lease_until IS NULL OR lease_until <= ?))"
                " OR (status = 'RUNNING' AND (lease_until IS NULL OR lease_until <= ?))"
                " ORDER BY next_attempt_at, created_at, job_id LIMIT ?",
                (moment, moment, moment, max(limit, 0)),
            ).fetchall()
            return [_job(row) for row in rows]

        return await self._read(op)

    async def lease_job(
        self, job_id: str, expected_lease: datetime | None, lease_until: datetime
    ) -> bool:
        """Set lease_until (and status PENDING) on a PENDING or RUNNING job whose lease is
        exactly `expected_lease` (None: no lease); False otherwise. Pass the lease as read
        from get_job/due_jobs."""
        expected = None if expected_lease is None else ts(expected_lease)
        job = await self._job_cas(
            job_id,
            "status = 'PENDING', lease_until = ?",
            [ts(lease_until)],
            "status IN ('PENDING', 'RUNNING') AND lease_until IS ?",
            [expected],
        )
        return job is not None
