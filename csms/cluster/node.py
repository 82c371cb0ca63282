"""One cluster node: its Redis connection, bus, presence, router and event relay, started
and stopped together (web.app opens it in a cleanup context)."""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis

from csms.background import wait_cancelled
from csms.charging import ChargingService
from csms.cluster.bus import Bus
from csms.cluster.events import EventRelay
from csms.cluster.presence import RedisPresence
from csms.cluster.router import Router
from csms.ocpp.endpoint import VERSIONS
from csms.ocpp.hub import Hub
from csms.settings import ClusterSettings, ConfigError
from csms.store import Store

log = logging.getLogger(__name__)


class ClusterNode:
    def __init__(self, settings: ClusterSettings, redis_url: str, node_id: str, hub: Hub,
                 charging: ChargingService, store: Store) -> None:
        self.node_id = node_id
        self.redis = Redis.from_url(redis_url)
        self.bus = Bus(self.redis, node_id)
        self.presence = RedisPresence(self.redis, self.bus, hub, charging, store,
                                      settings.presence_ttl)
        self.router = Router(hub, self.presence, self.bus,
                             {version.name: version for version in VERSIONS},
                             settings.route_margin)
        self.events = EventRelay(self.redis, node_id)
        self._loops: list[asyncio.Task[None]] = []
        hub.presence = self.presence

    async def start(self) -> None:
        try:
            await self.bus.start()
        except TimeoutError:
            await self.stop()
            raise ConfigError("cluster.redis_url: no Redis answered within 10 s "
                              "(default: tasks.redis_url)") from None
        await self.presence.reload()
        self._loops = [asyncio.create_task(self.presence.run(), name="cluster-presence"),
                       asyncio.create_task(self.events.run(), name="cluster-events")]
        log.info("cluster node %s joined", self.node_id)

    async def stop(self) -> None:
        await wait_cancelled(self._loops)
        await self.bus.stop()
        await self.redis.aclose()
