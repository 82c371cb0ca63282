"""Typed keys for what the charging core shares through the aiohttp application."""

from __future__ import annotations

from aiohttp import web

from csms.background import TaskSet
from csms.charging import ChargingService
from csms.commands import StationCommands
from csms.metrics import Metrics
from csms.ocpp.hub import Hub
from csms.settings import OcppSettings
from csms.store import Store

OCPP_SETTINGS = web.AppKey("ocpp_settings", OcppSettings)
STORE = web.AppKey("store", Store)
METRICS = web.AppKey("metrics", Metrics)
HUB = web.AppKey("hub", Hub)
CHARGING = web.AppKey("charging", ChargingService)
TASKS = web.AppKey("tasks", TaskSet)
# Commands to a station wherever it is connected: the hub itself, or a cluster node's router.
STATION_COMMANDS = web.AppKey("station_commands", StationCommands)
