"""Calling a payment gateway port with the defaults the gateway tests share."""

from __future__ import annotations

from billing.gateways.base import Customer, GatewayResult, PaymentGateway


async def authorize(gw: PaymentGateway, customer: Customer, key: str = "s1:authorize",
                    **kw: object) -> GatewayResult:
    """A 50.00 card hold for session "s1"; `kw` overrides any argument."""
    args: dict[str, object] = {
        "session_id": "s1",
        "amount": 5000,
        "customer": customer,
        "card_token": "tok_123456789",
        "description": "EV charging",
        "idempotency_key": key,
    }
    args.update(kw)
    return await gw.authorize(**args)  # type: ignore[arg-type]
