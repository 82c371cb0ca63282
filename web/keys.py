"""App keys for the billing side of the application."""

from __future__ import annotations

from aiohttp import web

from billing.gateways.base import PaymentGateway
from billing.jobs import MoneyJobs
from billing.service import BillingService
from billing.store import BillingStore

BILLING = web.AppKey("billing", BillingService)
BILLING_STORE = web.AppKey("billing_store", BillingStore)
GATEWAY = web.AppKey("gateway", PaymentGateway)
JOBS = web.AppKey("jobs", MoneyJobs)
