"""Billing persistence port: sessions (with their payment), the operations ledger, saved cards,
webhook deduplication. Every change is atomic; status moves are compare-and-set."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, Protocol

from billing.models import (
    Operation,
    OperationStatus,
    OperationType,
    PaymentStatus,
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
