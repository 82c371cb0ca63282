"""Billing follows the hub's charging events (the `ChargingHooks` seam of `csms.hooks`)."""

from __future__ import annotations

from collections.abc import Sequence

from billing.service import BillingService
from csms.domain import MeterValue, Transaction
from csms.hooks import Authorization, ChargingHooks


class BillingHooks(ChargingHooks):
    def __init__(self, service: BillingService) -> None:
        self.service = service

    async def authorize(self, station_id: str, id_tag: str, result: Authorization,
                        ) -> Authorization:
        status = await self.service.authorize(station_id, id_tag, result.status)
        return result if status == result.status else result.with_status(status)

    async def transaction_started(self, transaction: Transaction, created: bool,
                                  result: Authorization) -> Authorization:
        status = await self.service.transaction_started(transaction, created, result.status)
        return result if status == result.status else result.with_status(status)

    async def transaction_stopped(self, transaction: Transaction, changed: bool) -> None:
        await self.service.transaction_stopped(transaction)

    async def meter_values(self, transaction: Transaction | None,
                           values: Sequence[MeterValue]) -> None:
        if transaction is not None:
            await self.service.meter_values(transaction)
