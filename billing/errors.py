"""The refusal every billing entry point may raise."""

from __future__ import annotations

from billing.models import Session
from billing.store.ports import SessionStore


class BillingError(Exception):
    """A refusal the driver API renders as `{"success": false, "error": ...}`."""

    def __init__(self, status: int, code: str, message: str, session_id: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.session_id = session_id


async def require_session(store: SessionStore, session_id: str) -> Session:
    """The session, or the 404 every entry point answers for an unknown one."""
    session = await store.get_session(session_id)
    if session is None:
        raise BillingError(404, "session_not_found", "unknown session")
    return session
