"""`BillingService`: the one object the HTTP layer and the process wiring hold.

A thin facade over billing's parts, each with one job: `sessions` (driver start/stop, PIX paid),
`listener` (the charging core's events), `settlement`, `refunds`, `reconciler` (the sweeps),
all moving money through one `ledger` and every status through `billing.payment`.
"""

from __future__ import annotations

from datetime import timedelta

from prometheus_client import CollectorRegistry

from billing.errors import BillingError
from billing.gateways.base import PaymentGateway
from billing.jobs.outbox import MoneyJobs
from billing.ledger import Ledger
from billing.listener import BillingListener
from billing.models import Job, Operation, Session, StopRequester
from billing.plausibility import Plausibility
from billing.reconcile import Reconciler
from billing.refunds import Refunds
from billing.sessions import Sessions, StartRequest
from billing.settings import BillingConfig
from billing.settlement import Settlement, session_tariff
from billing.stops import Stops
from billing.store.ports import BillingStore
from billing.tariffs import Tariff
from billing.terminal import TerminalPayments
from csms.background import TaskSet
from csms.commands import StationCommands
from csms.store import Store

__all__ = ["BillingError", "BillingService", "StartRequest"]


class BillingService:
    def __init__(self, settings: BillingConfig, store: BillingStore, charging: Store,
                 ledger: Ledger, stations: StationCommands, jobs: MoneyJobs,
                 tasks: TaskSet, registry: CollectorRegistry | None = None,
                 terminal_webhook_url: str = "") -> None:
        self.settings = settings
        self.store = store
        self.ledger = ledger
        self.refunds = Refunds(store, jobs)
        self.plausibility = Plausibility(
            settings.billing.max_power_kw, registry,
            timedelta(seconds=settings.billing.receive_time_slack))
        self.settlement = Settlement(store, ledger, self.refunds, jobs, self.plausibility,
                                     timedelta(hours=settings.billing.review_deadline_hours))
        self.stops = Stops(settings, store, stations, tasks)
        self.sessions = Sessions(settings, store, charging, ledger, self.settlement, stations,
                                 self.stops, tasks)
        self.listener = BillingListener(settings, store, ledger, self.sessions, self.settlement,
                                        self.stops, tasks)
        # unattended terminals: `terminal_webhook_url` is where the terminal gateway posts hints
        self.terminal = TerminalPayments(settings, store, ledger, self.sessions,
                                         self.settlement, tasks, terminal_webhook_url)
        self.reconciler = Reconciler(settings, store, charging, ledger, jobs, self.sessions,
                                     self.settlement, self.listener, self.stops, self.terminal)

    @property
    def gateway(self) -> PaymentGateway:
        return self.ledger.gateway

    @gateway.setter
    def gateway(self, gateway: PaymentGateway) -> None:
        self.ledger.gateway = gateway

    session_tariff = staticmethod(session_tariff)

    async def tariff_for(self, station_id: str) -> Tariff:
        return await self.sessions.tariff_for(station_id)

    async def start(self, req: StartRequest) -> Session:
        return await self.sessions.start(req)

    async def stop(self, session_id: str, by: StopRequester = StopRequester.DRIVER) -> Session:
        return await self.sessions.stop(session_id, by)

    async def review(self, session_id: str, capture: int | None) -> Session:
        return await self.settlement.review(session_id, capture)

    async def resend_stops(self) -> None:
        await self.stops.sweep()

    async def expire_start(self, session_id: str) -> None:
        await self.sessions.expire_start(session_id)

    async def charge_changed(self, charge_id: str) -> Session | None:
        return await self.sessions.charge_changed(charge_id)

    async def settle(self, session_id: str) -> Session:
        return await self.settlement.settle(session_id)

    async def operator_refund(self, session_id: str, amount: int, reason: str | None,
                              request_key: str | None = None) -> Operation:
        return await self.refunds.operator_refund(session_id, amount, reason, request_key)

    async def retry_job(self, job_id: str) -> Job:
        return await self.refunds.retry_job(job_id)

    async def reconcile(self) -> None:
        await self.reconciler.reconcile()

    async def get(self, session_id: str) -> Session:
        return await self.sessions.get(session_id)

    async def operations(self, session_id: str) -> list[Operation]:
        return await self.store.list_operations(session_id)
