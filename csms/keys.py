"""Typed keys for everything shared through the aiohttp application."""

from __future__ import annotations

from aiohttp import web

from csms.background import TaskSet
from csms.charging import ChargingService
from csms.config import Settings
from csms.metrics import Metrics
from csms.ocpp.hub import Hub
from csms.store import Store

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
METRICS = web.AppKey("metrics", Metrics)
HUB = web.AppKey("hub", Hub)
CHARGING = web.AppKey("charging", ChargingService)
TASKS = web.AppKey("tasks", TaskSet)
