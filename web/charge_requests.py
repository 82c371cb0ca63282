"""What the two APIs that start charging sessions share (the driver apps' `/charge/*` and the
unattended terminal's `/terminal/*`): the cap on the amount held, and billing's refusals
rendered as API errors."""

from __future__ import annotations

from aiohttp import web

from billing.errors import BillingError
from web.errors import ApiError
from web.keys import SETTINGS


def check_hold_amount(request: web.Request, amount: int) -> None:
    """422 on `amount` when it asks to hold more than `billing.max_hold` cents."""
    max_hold = request.config_dict[SETTINGS].billing.max_hold
    if amount > max_hold:
        raise ApiError(422, "invalid_request", f"amount: at most {max_hold} cents",
                       field="amount")


def billing_refusal(exc: BillingError) -> ApiError:
    """Billing's refusal as the API error a driver app or terminal reads, with its session."""
    extra = {"sessionId": exc.session_id} if exc.session_id else {}
    return ApiError(exc.status, exc.code, exc.message, **extra)
