"""A billing store that says which session a write touched, for whoever watches live.

It wraps any adapter (SQLite, MongoDB) and forwards every call unchanged; after a write that
changed something it calls `on_change(kind, session_id)` with kind "session" (the session, its
payment or its ledger) or "job" (one of its money jobs). The callback must not block: it is
called inside the write's caller (a station's message loop, a job, a request).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, cast

from billing.models import Job, Operation, Receipt, Session
from billing.store.ports import BillingStore

OnChange = Callable[[str, str], None]

# Port methods that write; everything else is forwarded as it is.
WRITES = frozenset({
    "create_session", "transition_session", "update_session", "transition_payment",
    "begin_operation", "finish_operation", "settle_operation", "reopen_operation",
    "add_job", "claim_job", "reschedule_job", "complete_job", "fail_job", "retry_job",
    "defer_job",
    "create_receipt", "mark_receipt_emailed",
})


def _touched(result: Any) -> tuple[str, str] | None:
    """(kind, session id) of what a write returned: a session, an operation, a receipt, a job."""
    if isinstance(result, tuple) and result:
        result = result[0]
    if isinstance(result, Job):
        return "job", result.session_id
    if isinstance(result, Session | Operation | Receipt):
        return "session", result.session_id
    return None


class ObservedStore:
    """Forwards to `inner`; reports the session a write returned (nothing for a no-op)."""

    def __init__(self, inner: BillingStore, on_change: OnChange) -> None:
        self._inner = inner
        self._on_change = on_change

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in WRITES:
            return attr
        return self._reporting(attr, name)

    def _reporting(self, method: Callable[..., Awaitable[Any]], name: str,
                   ) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(method)
        async def write(*args: Any, **kwargs: Any) -> Any:
            result = await method(*args, **kwargs)
            touched = _touched(result)
            if touched is None and name == "mark_receipt_emailed":
                touched = ("session", str(args[0] if args else kwargs["session_id"]))
            if touched is not None:
                self._on_change(*touched)
            return result
        return write


def observed(store: BillingStore, on_change: OnChange | None) -> BillingStore:
    return store if on_change is None else cast(BillingStore, ObservedStore(store, on_change))
