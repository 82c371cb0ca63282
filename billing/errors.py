"""The refusal every billing entry point may raise."""

from __future__ import annotations


class BillingError(Exception):
    """A refusal the driver API renders as `{"success": false, "error": ...}`."""

    def __init__(self, status: int, code: str, message: str, session_id: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.session_id = session_id
