"""Heartbeats' last-seen times, written to the store in batches.

A Heartbeat carries nothing but "I am here": writing its time on every one cost a durable
write per Heartbeat, half the frames of a busy hub (issue 15). The time is noted in memory
and written for all stations at once every `ocpp.last_seen_interval` seconds.

The window, documented and deliberate: the store's `last_seen` may lag a station's latest
Heartbeat by up to that interval, and a crash loses at most that much of it. Nothing is
billed from it; operators see the live time anyway (the hub's `LiveStation.last_seen`, taken
on every frame, overlays the stored one while the station is connected), and connect and
disconnect write `last_seen` with their own batched write (`csms.connection_writer`). Meter
values have their own window, off by default (`csms.meter_window`,
`ocpp.meter_commit_window`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from csms.background import stop_if_cancelled, wait_cancelled
from csms.store import Store

log = logging.getLogger(__name__)


class LastSeenWriter:
    def __init__(self, store: Store, interval: float) -> None:
        self.store = store
        self.interval = interval
        self._pending: dict[str, datetime] = {}
        self._task: asyncio.Task[None] | None = None

    def note(self, station_id: str, at: datetime) -> None:
        """`station_id` was seen at `at`; written with the next batch."""
        self._pending[station_id] = at

    def forget(self, station_id: str) -> None:
        """Drop what is pending for a station whose (dis)connect writes `last_seen` itself."""
        self._pending.pop(station_id, None)

    async def flush(self) -> None:
        batch, self._pending = self._pending, {}
        if batch:
            try:
                await self.store.touch_stations(batch)
            except Exception:
                log.exception("could not write the last-seen time of %d stations", len(batch))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()
            stop_if_cancelled()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="last-seen")

    async def stop(self) -> None:
        if self._task is not None:
            await wait_cancelled([self._task])
            self._task = None
        await self.flush()
