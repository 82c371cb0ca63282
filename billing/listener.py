"""Billing follows the charging core's events (the `ChargingListener` seam of `csms.events`)."""

from __future__ import annotations

from billing.service import BillingService
from csms.events import (
    Authorization,
    ChargingListener,
    MeterSample,
    TransactionStarted,
    TransactionStopped,
)


class BillingListener(ChargingListener):
    def __init__(self, service: BillingService) -> None:
        self.service = service

    async def authorize(self, station_id: str, id_tag: str, result: Authorization,
                        ) -> Authorization:
        return result.with_status(await self.service.authorize(station_id, id_tag,
                                                               result.status))

    async def transaction_started(self, event: TransactionStarted, result: Authorization,
                                  ) -> Authorization:
        return result.with_status(await self.service.transaction_started(event, result.status))

    async def meter_sample(self, event: MeterSample) -> None:
        await self.service.meter_sample(event)

    async def transaction_stopped(self, event: TransactionStopped) -> None:
        await self.service.transaction_stopped(event)
