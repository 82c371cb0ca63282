"""Typed keys for what the HTTP surfaces share: the whole configuration and billing's parts.

The charging core's keys (store, hub, metrics, ...) live in `csms.keys`.
"""

from __future__ import annotations

from aiohttp import web

from billing.gateways.base import PaymentGateway
from billing.jobs.outbox import MoneyJobs
from billing.service import BillingService
from billing.store.ports import BillingStore
from csms.cluster.node import ClusterNode
from web.settings import Settings
from web.station_port import StationPort

SETTINGS = web.AppKey("settings", Settings)
BILLING = web.AppKey("billing", BillingService)
BILLING_STORE = web.AppKey("billing_store", BillingStore)
GATEWAY = web.AppKey("gateway", PaymentGateway)
JOBS = web.AppKey("jobs", MoneyJobs)
CLUSTER = web.AppKey("cluster", ClusterNode)  # only when cluster.enabled
STATION_PORT = web.AppKey("station_port", StationPort)  # stations' upgrades off the shared port
