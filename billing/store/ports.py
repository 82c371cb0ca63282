"""Billing persistence ports, one per aggregate, composed into `BillingStore`.

Adapters do persistence and compare-and-set only: which move is allowed, what may be refunded
and what a refund leaves the payment at are decided in `billing.payment`. Every write is
atomic; status moves are compare-and-set; every session write bumps `Session.version`, the
token a decision made in Python hands back to the store ("only if still at version V").

How a MongoDB adapter implements the primitives with single-document conditional updates
(one `update_one`/`find_one_and_update` each, filter = the condition, so check and write are one
step). Sessions are documents with their operations embedded as a map `ops.<seq>` (a `$set` of
a path, not a `$push`), plus an `op_keys` array for the unique key index:
  - transition_session / transition_payment / update_session: filter `{_id, status: {$in}}`
    (or payment_status), `$set` changes, `$inc: {version: 1}`.
  - begin_operation: filter `{_id, op_keys: {$ne: key}}` (+ `version: V` with at_version),
    `$set: {ops.<seq>: op}`, `$addToSet: {op_keys: key}`, `$inc: {version: 1, op_seq: 1}`;
    no match: read the key back (existing wins) or report the version conflict.
  - finish_operation / reopen_operation: filter `{_id, ops.<seq>.status: PENDING|FAILED}`.
  - settle_operation: filter `{_id, version: V, ops.<seq>.status: PENDING}`, one `$set` of
    the operation's status and the session's refunded total and payment status.
  Because the ledger lives in the session's document, none of these spans two documents, so
  a crash leaves either the whole write or none of it. The writes that do span documents keep
  an order that a crash cannot hurt: an operation is recorded before its job (a PENDING
  operation without a job is found by reconciliation, which submits the job); a job is
  written before it is enqueued (the sweeper enqueues it); a gateway outcome is recorded
  before the payment moves (a SUCCEEDED capture or void with the payment not moved yet is
  moved by the job or the sweep; the move is a compare-and-set, so doing it twice is once).
"""

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
    TerminalBinding,
    TerminalRequest,
    TerminalRequestStatus,
)


class SessionStore(Protocol):
    """Sessions with their payment; the compare-and-set moves `billing.payment` applies."""

    async def create_session(self, session: Session) -> None:
        """Insert; session_id and id_tag are unique (a duplicate raises a ValueError)."""

    async def get_session(self, session_id: str) -> Session | None: ...

    async def session_by_id_tag(self, id_tag: str) -> Session | None: ...

    async def session_by_transaction(self, transaction_id: int) -> Session | None: ...

    async def session_by_charge(self, charge_id: str) -> Session | None: ...

    async def sessions_by_transactions(self, transaction_ids: Collection[int],
                                       ) -> dict[int, Session]:
        """The newest session bound to each of these OCPP transaction ids, in one read (ids
        without a session are left out): a list of transactions costs one lookup."""

    async def list_sessions(
        self,
        *,
        statuses: Collection[SessionStatus] | None = None,
        station_id: str | None = None,
        station_ids: Collection[str] | None = None,
        limit: int = 100,
    ) -> list[Session]:
        """Newest first; `station_ids`: at any of these stations (empty matches nothing)."""

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

    async def update_session(
        self,
        session_id: str,
        *,
        if_status: Collection[SessionStatus] | None = None,
        **changes: Any,
    ) -> Session | None:
        """Set non-status fields (energy, cost, gateway ids, pix data, receipt url...).

        With `if_status`, only if the status is still one of those (a compare-and-set on the
        status that leaves it unchanged); None when it is not."""

    async def transition_payment(
        self,
        session_id: str,
        expected: Collection[PaymentStatus],
        target: PaymentStatus,
        **changes: Any,
    ) -> Session | None:
        """Compare-and-set on payment_status (with e.g. captured_amount, refunded_amount)."""


class LedgerStore(Protocol):
    """The append-only operations ledger, one entry per gateway operation and key."""

    async def begin_operation(
        self,
        session_id: str,
        type: OperationType,
        amount: int,
        idempotency_key: str,
        charge_id: str | None = None,
        *,
        at_version: int | None = None,
        fingerprint: str | None = None,
    ) -> tuple[Operation | None, bool]:
        """Record an operation before calling the gateway; returns (operation, created).

        The idempotency key is unique: a second call with the same key returns the first
        operation (whatever its status, with its own `fingerprint`) and created=False, so a
        retry reuses key and amount.
        With `at_version`, insert only if the session is still at that version (the insert
        bumps it); otherwise (None, False).
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
        """Move a PENDING operation to SUCCEEDED/FAILED (`raw` replaces its context; None
        clears it); a finished one is left unchanged and returned as it is. With
        status=PENDING it only annotates a pending operation (the context a retry needs, the
        error of a job that gave up; `raw=None` keeps the context); a finished operation never
        goes back to PENDING."""

    async def settle_operation(
        self,
        idempotency_key: str,
        *,
        session_version: int,
        changes: dict[str, Any],
        raw: dict[str, Any] | None = None,
    ) -> Session | None:
        """Atomically, only if the operation is PENDING and its session is at
        `session_version`: the operation -> SUCCEEDED (error cleared, `raw` replaces the
        context when given) and the session's `changes` (payment_status may be among them)
        with version + 1. The updated session, or None when nothing was written."""

    async def get_operation(self, idempotency_key: str) -> Operation | None: ...

    async def list_operations(self, session_id: str) -> list[Operation]:
        """In the order they were begun."""

    async def pending_operations(self, older_than: datetime | None = None) -> list[Operation]:
        """Operations whose gateway outcome is unknown (for reconciliation)."""

    async def succeeded_total(self, types: Collection[OperationType], since: datetime) -> int:
        """Cents of every SUCCEEDED operation of `types` finished at or after `since`, over
        all sessions, in one aggregate read (the dashboard's money tiles)."""

    async def reopen_operation(self, idempotency_key: str, *, at_version: int | None = None,
                               ) -> Operation | None:
        """An operator retry: FAILED -> PENDING (error kept until the next outcome), bumping the
        session's version (the operation counts again). None when it is not FAILED or, with
        `at_version`, when its session is no longer at that version."""


class JobStore(Protocol):
    """The money-job outbox."""

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

    async def defer_job(self, job_id: str, *, next_attempt_at: datetime, error: str,
                        ) -> Job | None:
        """A FAILED job the reconciliation sweep tried again without success: it stays FAILED
        with attempts + 1, last_error and next_attempt_at (when the sweep may try again: its
        backoff). None when the job is not FAILED."""

    async def due_jobs(self, now: datetime, limit: int = 100) -> list[Job]:
        """Jobs the sweeper must (re-)enqueue: PENDING with next_attempt_at <= now whose lease
        is empty or expired, and RUNNING whose lease expired. Oldest next_attempt_at first."""

    async def lease_job(self, job_id: str, expected_lease: datetime | None,
                        lease_until: datetime) -> bool:
        """Compare-and-set the lease of a PENDING or RUNNING job (a sweeper about to enqueue
        it); False when another sweeper got there first. A RUNNING job whose lease is
        renewed this way goes back to PENDING (its worker is presumed dead)."""


class ReceiptStore(Protocol):
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


class SavedCardStore(Protocol):
    async def save_card(self, card: SavedCard) -> None:
        """Upsert by driver_id_tag."""

    async def saved_card(self, driver_id_tag: str) -> SavedCard | None: ...


class TariffStore(Protocol):
    async def station_tariff(self, station_id: str) -> tuple[str, str] | None:
        """A station's tariff override as (price_per_kwh, fixed_connection_fee) decimal
        strings, or None for the default tariff."""

    async def set_station_tariff(self, station_id: str, price_per_kwh: str,
                                 fixed_connection_fee: str) -> None: ...


class WebhookStore(Protocol):
    async def record_webhook(self, gateway: str, event_id: str, body: dict[str, Any]) -> bool:
        """Remember an event id; False when it was seen before (a duplicate delivery)."""

    async def forget_webhook(self, gateway: str, event_id: str) -> None:
        """Drop a remembered event whose handling failed, so the gateway's redelivery of it
        is handled rather than taken for a duplicate."""


class TerminalStore(Protocol):
    """Payment terminals bound to stations, and the stops asked at them."""

    async def bind_terminal(self, station_id: str, terminal_id: str,
                            management_system_id: str) -> TerminalBinding:
        """Upsert the station's terminal (one per station)."""

    async def station_terminal(self, station_id: str) -> TerminalBinding | None: ...

    async def unbind_terminal(self, station_id: str) -> bool:
        """False when the station had no terminal."""

    async def create_terminal_request(self, request: TerminalRequest) -> None:
        """Insert; request_id is unique (a duplicate raises a ValueError)."""

    async def get_terminal_request(self, request_id: str) -> TerminalRequest | None: ...

    async def terminal_request_by_reference(self, reference: str) -> TerminalRequest | None: ...

    async def pending_terminal_requests(self, limit: int = 100) -> list[TerminalRequest]:
        """PENDING requests, oldest first (reconciliation)."""

    async def update_terminal_request(
        self, request_id: str, *, if_status: TerminalRequestStatus | None = None,
        status: TerminalRequestStatus | None = None, reference: str | None = None,
        error: str | None = None,
    ) -> TerminalRequest | None:
        """Set the given fields (None leaves one unchanged); with `if_status`, only while the
        request is still in that status (a compare-and-set). None when nothing was written."""


class BillingStore(SessionStore, LedgerStore, JobStore, ReceiptStore, SavedCardStore,
                   TariffStore, WebhookStore, TerminalStore, Protocol):
    """Every billing aggregate behind one object (one database, one connection)."""

    async def session_and_card(self, id_tag: str) -> tuple[Session | None, SavedCard | None]:
        """What a started transaction's idTag is billed by: the newest session holding it,
        else the saved card of the driver whose RFID it is (None when a session holds it).
        One read where the backend allows (SQLite: one round trip instead of two)."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...
