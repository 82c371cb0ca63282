"""Stations' connects and disconnects, written to the store in batches off the station's path.

A connect was a durable write (`set_connected`) that the station's connection waited for
before its first frame was read: one of three store writes per station when 10,000 stations
connect, boot and start a transaction (issue 15). The hub now notes each connect and
disconnect here and goes on; one task writes everything noted since its last write in one
store operation (`set_connections`), as soon as there is something to write and the previous
write is done. Under a burst that is one write for many stations; a lone connect is written
at once.

The window, documented and deliberate: the stored `connected` flag and the `last_seen` a
connect or disconnect writes may lag by one write (milliseconds; longer while the store fails,
when the write is retried with a growing delay), and a crash loses what was noted and not yet
written. Nothing on a station's path reads the flag: the operator API and the dashboard show
the hub's own connections (and, in a cluster, presence), a brand-new station's too before its
row is written (`web.operator.routes.find_station`); a restart marks every station
disconnected, and a cluster's sweep records a dead node's stations as disconnected. Order per
station holds: a newer note replaces a pending one and writes run one after another, so a
connect followed by a disconnect never ends stored as connected. A clean stop lets a write
in flight finish, then writes what is pending (`stop`). Across the nodes of a cluster there
is no order between two nodes' writes, as before this writer (a station that moved from node
A to node B may end stored as disconnected if A's write lands last, now within one write
rather than at once); presence, not the stored flag, says where a station is connected.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from csms.background import doubling_delay, stop_if_cancelled, wait_cancelled
from csms.store.ports import StationStore

log = logging.getLogger(__name__)

RETRY_DELAY = 0.5  # seconds after a failed write, doubling per failure in a row
MAX_RETRY_DELAY = 10.0


class ConnectionWriter:
    def __init__(self, store: StationStore) -> None:
        self.store = store
        self._pending: dict[str, tuple[bool, datetime]] = {}
        self._wake = asyncio.Event()
        self._writing = asyncio.Lock()  # one write at a time: a later note never lands first
        self._task: asyncio.Task[None] | None = None

    def note(self, station_id: str, connected: bool, at: datetime) -> None:
        """`station_id` connected (or disconnected) at `at`; written with the next write."""
        self._pending[station_id] = (connected, at)
        self._wake.set()

    async def flush(self) -> bool:
        """Write what is pending; False when the write failed (then it stays pending, behind
        whatever was noted meanwhile)."""
        async with self._writing:
            batch, self._pending = self._pending, {}
            if not batch:
                return True
            try:
                await self.store.set_connections(batch)
            except BaseException as exc:  # failed, or cancelled: kept for the next write
                self._pending = {**batch, **self._pending}  # a newer note wins
                if not isinstance(exc, Exception):
                    raise
                log.exception("could not write the connects and disconnects of %d stations",
                              len(batch))
                return False
            return True

    async def _run(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            if await self.flush():
                failures = 0
            else:
                failures += 1
                await asyncio.sleep(doubling_delay(RETRY_DELAY, failures, MAX_RETRY_DELAY))
                self._wake.set()
            stop_if_cancelled()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="connection-writer")

    async def stop(self) -> None:
        """Stop the task and write what is pending (logged if that fails).

        A write in flight is let finish (or fail) before the task is cancelled: cancelling
        its caller does not stop a write already sent (MongoDB's bulk write on a pooled
        connection), which could then land after the last write below and put an older
        flag back. The stores bound every write (MongoDB by its socket timeout), so this
        wait ends. A task that sleeps before a retry or waits for a note holds no lock and
        is cancelled at once.
        """
        if self._task is not None:
            async with self._writing:
                await wait_cancelled([self._task])
            self._task = None
        await self.flush()
