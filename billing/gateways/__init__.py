"""Payment gateway port (`base`) and its adapters: `sandbox` (embedded) and `pagarme` (V5)."""

from billing.gateways.base import (
    GATEWAY_STATUSES,
    Customer,
    GatewayResult,
    GatewayStatus,
    PaymentGateway,
)

__all__ = ["GATEWAY_STATUSES", "Customer", "GatewayResult", "GatewayStatus", "PaymentGateway"]
