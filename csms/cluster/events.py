"""Live events on Redis: what the charging core publishes (station connected, connector
status, transaction started, meter sample, stopped) and billing's writes (a session, its
payment or a job changed) go out on the cluster channel as small JSON messages
`{"type": "event", "event": ..., "node": ..., ...ids}`, so every node's dashboard (and anything
else that subscribes to `csms:cluster`) follows the whole system live.

Publishing never blocks the station's message loop: events wait in a queue that one task
writes to Redis in batches (a pipeline per batch). Events are hints, not records: one lost
while Redis is away only delays a page's refresh.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from csms.background import stop_if_cancelled
from csms.cluster.bus import CLUSTER_CHANNEL
from csms.events import (
    Authorization,
    ChargingListener,
    ConnectorStatusChanged,
    MeterSample,
    TransactionStarted,
    TransactionStopped,
)

log = logging.getLogger(__name__)

BACKLOG = 10_000  # events kept while Redis is slow; older ones are dropped first
BATCH = 500


class EventRelay(ChargingListener):
    def __init__(self, redis: Redis, node_id: str) -> None:
        self.redis = redis
        self.node_id = node_id
        self._queue: asyncio.Queue[str] = asyncio.Queue(BACKLOG)

    def publish(self, event: str, **ids: Any) -> None:
        message = json.dumps({"type": "event", "event": event, "node": self.node_id, **ids})
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(message)

    def on_change(self, kind: str, session_id: str) -> None:
        """Billing's ObservedStore callback: kind "session" or "job"."""
        self.publish(f"{kind}_changed", sessionId=session_id)

    async def run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < BATCH:
                batch.append(self._queue.get_nowait())
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for message in batch:
                        pipe.publish(CLUSTER_CHANNEL, message)
                    await pipe.execute()
            except RedisError as exc:
                log.warning("live events: %d not published (%s)", len(batch), exc)
                await asyncio.sleep(1)
            stop_if_cancelled()

    # the charging core's events --------------------------------------------------------------
    async def station_connected(self, station_id: str) -> None:
        self.publish("station_connected", stationId=station_id)

    async def station_disconnected(self, station_id: str) -> None:
        self.publish("station_disconnected", stationId=station_id)

    async def connector_status(self, event: ConnectorStatusChanged) -> None:
        self.publish("connector_status", stationId=event.station_id,
                     connectorId=event.connector_id, status=event.status,
                     errorCode=event.error_code)

    async def transaction_started(self, event: TransactionStarted, result: Authorization,
                                  ) -> Authorization:
        self.publish("transaction_started", stationId=event.station_id,
                     connectorId=event.connector_id, transactionId=event.transaction_id)
        return result

    async def meter_sample(self, event: MeterSample) -> None:
        self.publish("meter_sample", stationId=event.station_id,
                     transactionId=event.transaction_id, energyWh=event.energy_wh)

    async def transaction_stopped(self, event: TransactionStopped) -> None:
        self.publish("transaction_stopped", stationId=event.station_id,
                     transactionId=event.transaction_id, energyWh=event.energy_wh,
                     reason=event.reason)
