"""Billing persistence port: sessions (with their payment), the operations ledger, saved cards,
webhook deduplication. Every change is atomic; status moves are compare-and-set."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, Protocol

from billing.models import (
    Job,
    JobStatus,
    Operation,
    OperationStatus,
    OperationType,
    PaymentStatus,
    Receipt,
    SavedCard,
    Session,
    SessionStatus,
)


class BillingStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    # sessions --------------------------------------------------------------------------------
    async def create_session(self, session: Session) -> None:
        """Insert; session_id and id_tag are unique (a duplicate raises a ValueError)."""

    async def get_session(self, session_id: str) -> Session | None: ...

    async def session_by_id_tag(self, id_tag: str) -> Session | None: ...

    async def session_by_transaction(self, transaction_id: int) -> Session | None: ...

    async def session_by_charge(self, charge_id: str) -> Session | None: ...

    async def list_sessions(
        self,
        *,
        statuses: Collection[SessionStatus] | None = None,
        station_id: str | None = None,
        limit: int = 100,
    ) -> list[Session]:
        """Newest first."""

    async def transition_session(
        self,
        session_id: str,
        expected: Collection[SessionStatus],
        target: SessionStatus,
        **changes: Any,
    ) -> Session | None:
        """Set status=target (and `changes`) only if the current status is in `expected`.

        Returns the updated session, or None when the status was not one of `expected`.
        """

    async def update_session(self, session_id: str, **changes: Any) -> Session | None:
        """Set non-status fields (energy, cost, gateway ids, pix data, receipt url...)."""

    async def transition_payment(
        self,
        session_id: str,
        expected: Collection[PaymentStatus],
        target: PaymentStatus,
        **changes: Any,
    ) -> Session | None:
        """Compare-and-set on payment_status (with e.g. captured_amount, refunded_amount)."""

    # operations ledger ---------------------------------------------------------------------
    async def begin_operation(
        self,
        session_id: str,
        type: OperationType,
        amount: int,
        idempotency_key: str,
        charge_id: str | None = None,
    ) -> tuple[Operation, bool]:
        """Record an operation before calling the gateway; returns (operation, created).

        The idempotency key is unique: a second call with the same key returns the first
        operation (whatever its status) and created=False, so a retry reuses key and amount.
        """

    async def finish_operation(
        self,
        idempotency_key: str,
        status: OperationStatus,
        *,
        error: str | None = None,
        charge_id: str | None = None,
        raw: dict[str, Any] | None = None,
    ) -> Operation | None:
        """Move a PENDING operation to SUCCEEDED/FAILED; a finished one is left unchanged and
        returned as it is. With status=PENDING it only annotates a pending operation (e.g. the
        context a retry needs); a finished operation never goes back to PENDING."""

    async def get_operation(self, idempotency_key: str) -> Operation | None: ...

    async def list_operations(self, session_id: str) -> list[Operation]:
        """In the order they were begun."""

    async def pending_operations(self, older_than: datetime | None = None) -> list[Operation]:
        """Operations whose gateway outcome is unknown (for reconciliation)."""

    # saved cards -----------------------------------------------------------------------------
    async def save_card(self, card: SavedCard) -> None:
        """Upsert by driver_id_tag."""

    async def saved_card(self, driver_id_tag: str) -> SavedCard | None: ...

    # tariffs ---------------------------------------------------------------------------------
    async def station_tariff(self, station_id: str) -> tuple[str, str] | None:
        """A station's tariff override as (price_per_kwh, fixed_connection_fee) decimal
        strings, or None for the default tariff."""

    async def set_station_tariff(self, station_id: str, price_per_kwh: str,
                                 fixed_connection_fee: str) -> None: ...

    # webhooks --------------------------------------------------------------------------------
    async def record_webhook(self, gateway: str, event_id: str, body: dict[str, Any]) -> bool:
        """Remember an event id; False when it was seen before (a duplicate delivery)."""

    async def forget_webhook(self, gateway: str, event_id: str) -> None:
        """Drop a remembered event whose handling failed, so the gateway's redelivery of it
        is handled rather than taken for a duplicate."""

    # refunds -----------------------------------------------------------------------------------
    async def begin_refund(self, session_id: str, amount: int, idempotency_key: str,
                           limit: int, charge_id: str | None = None,
                           ) -> tuple[Operation | None, bool]:
        """Record a REFUND operation only if it keeps the session's refunds within `limit`.

        Atomically: if `idempotency_key` exists, return (that operation, False). Otherwise, if
        the amounts of the session's REFUND operations that are not FAILED, plus `amount`,
        exceed `limit`, return (None, False) and record nothing; else insert a PENDING REFUND
        and return (it, True).
        """

    async def settle_refund(self, idempotency_key: str, raw: dict[str, Any] | None = None,
                            ) -> Session | None:
        """Atomically: move the PENDING REFUND operation to SUCCEEDED, add its amount to the
        session's refunded_amount, and set payment_status to REFUNDED when refunded_amount
        reaches what was paid (captured_amount for card methods, authorized_amount for PIX,
        i.e. `max(captured_amount, authorized_amount)` when the payment was PAID) else
        PARTIALLY_REFUNDED. Returns the session, or None when the operation was not PENDING
        (already settled: nothing changes)."""

    async def reopen_operation(self, idempotency_key: str) -> Operation | None:
        """An operator retry: FAILED -> PENDING (error kept until the next outcome). None when
        the operation is not FAILED."""

    # jobs (outbox) -----------------------------------------------------------------------------
    async def add_job(self, job: Job) -> tuple[Job, bool]:
        """Insert if job_id is new; else return the existing job and False."""

    async def get_job(self, job_id: str) -> Job | None: ...

    async def list_jobs(self, *, statuses: Collection[JobStatus] | None = None,
                        session_id: str | None = None, limit: int = 100) -> list[Job]:
        """Newest first."""

    async def claim_job(self, job_id: str, now: datetime, lease_until: datetime,
                        ) -> Job | None:
        """Take a job to run it: PENDING with next_attempt_at <= now, or RUNNING whose lease
        expired (its worker died) -> RUNNING, lease_until set, attempts + 1 (a run that never
        finishes still counts). None otherwise (done, failed, not due, or running elsewhere):
        a duplicate delivery then does nothing."""

    async def reschedule_job(self, job_id: str, *, next_attempt_at: datetime, error: str,
                             ) -> Job | None:
        """RUNNING -> PENDING after a transient failure: last_error, lease cleared,
        next_attempt_at set."""

    async def complete_job(self, job_id: str) -> Job | None:
        """RUNNING -> DONE."""

    async def fail_job(self, job_id: str, error: str) -> Job | None:
        """RUNNING -> FAILED (last_error)."""

    async def retry_job(self, job_id: str, now: datetime) -> Job | None:
        """An operator retry: FAILED -> PENDING, attempts 0, next_attempt_at = now."""

    async def due_jobs(self, now: datetime, limit: int = 100) -> list[Job]:
        """Jobs the sweeper must (re-)enqueue: PENDING with next_attempt_at <= now whose lease
        is empty or expired, and RUNNING whose lease expired. Oldest next_attempt_at first."""

    async def lease_job(self, job_id: str, expected_lease: datetime | None,
                        lease_until: datetime) -> bool:
        """Compare-and-set the lease of a PENDING or RUNNING job (a sweeper about to enqueue
        it); False when another sweeper got there first. A RUNNING job whose lease is
        renewed this way goes back to PENDING (its worker is presumed dead)."""

    # receipts ----------------------------------------------------------------------------------
    async def create_receipt(self, session_id: str, token: str, html: str, text: str,
                             now: datetime, render: Any = None) -> Receipt:
        """Store the session's receipt with the next sequential number (one receipt per
        session: a second call returns the first receipt unchanged) and set the session's
        receipt_url to "/receipts/<token>".

        `render`, when given, is called as `render(number) -> (html, text)` inside the same
        transaction once the number is known, and its output replaces `html`/`text`."""

    async def get_receipt(self, session_id: str) -> Receipt | None: ...

    async def receipt_by_token(self, token: str) -> Receipt | None: ...

    async def mark_receipt_emailed(self, session_id: str, at: datetime) -> None: ...

