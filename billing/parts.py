"""Billing's parts made from the configuration: its store, the gateway and the money jobs.

Both processes that move money build them here: `csms serve` (`web.app`) and `csms worker`
(`billing.worker`). They are opened and closed together.
"""

from __future__ import annotations

from dataclasses import dataclass

from billing.gateways.base import PaymentGateway
from billing.gateways.ccv import CcvGateway
from billing.gateways.pagarme import PagarmeGateway
from billing.gateways.sandbox import SandboxGateway, SqliteSandboxChargeStore
from billing.jobs.handlers import JobHandlers
from billing.jobs.outbox import MoneyJobs
from billing.ledger import Ledger, TerminalPaymentGateway
from billing.receipts import make_mailer
from billing.settings import BillingConfig
from billing.store.observed import OnChange, observed
from billing.store.ports import BillingStore
from billing.store.sqlite import SqliteBillingStore


def make_gateway(settings: BillingConfig) -> PaymentGateway:
    if settings.billing.gateway == "pagarme":
        return PagarmeGateway(settings.billing.pagarme)
    return SandboxGateway(SqliteSandboxChargeStore(settings.billing.sandbox_path))


def make_terminal_gateway(settings: BillingConfig) -> TerminalPaymentGateway | None:
    """CCV for terminal sessions whenever `[billing.ccv]` has an API key (app sessions keep
    the app gateway)."""
    ccv = settings.billing.ccv
    return CcvGateway(ccv, settings.billing.currency) if ccv.configured else None


def make_billing_store(settings: BillingConfig) -> BillingStore:
    store = settings.store
    if store.backend == "mongodb":
        from billing.store.mongo import MongoBillingStore

        return MongoBillingStore(store.mongodb_url, store.mongodb_database,
                                 timeout_s=store.mongodb_timeout)
    return SqliteBillingStore(store.sqlite_path)


@dataclass(slots=True)
class BillingParts:
    store: BillingStore
    gateway: PaymentGateway
    jobs: MoneyJobs
    ledger: Ledger  # the one pathway to the gateway, shared by requests and job handlers
    terminal: TerminalPaymentGateway | None = None  # CCV, for TERMINAL sessions

    @classmethod
    def from_settings(cls, settings: BillingConfig,
                      on_change: OnChange | None = None) -> BillingParts:
        """`on_change(kind, session_id)` hears every write (the dashboard's live view)."""
        store = observed(make_billing_store(settings), on_change)
        gateway = make_gateway(settings)
        terminal = make_terminal_gateway(settings)
        jobs = MoneyJobs(settings, store)
        ledger = Ledger(store, gateway, jobs, settings.billing.gateway_attempts, terminal)
        JobHandlers(settings, store, jobs, ledger, make_mailer(settings.mail))
        return cls(store, gateway, jobs, ledger, terminal)

    async def open(self) -> None:
        await self.store.open()
        await self.gateway.open()
        if self.terminal is not None:
            await self.terminal.open()

    async def close(self) -> None:
        if self.terminal is not None:
            await self.terminal.close()
        await self.gateway.close()
        await self.store.close()
