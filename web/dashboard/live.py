"""Live updates: domain events in, server-sent events out, one stream per open page.

`LiveFeed` hears the charging core (it is a `ChargingListener`, registered after billing's so a
meter sample reaches it once the session's running cost is stored) and billing's store writes
(`on_change`). Each becomes a (kind, key) change: ("station", station id), ("transaction",
transaction id), ("session", session id), ("job", session id). A page opens `/events?watch=...`
naming what it shows (`session:<id>`, or a bare kind for any), and the stream sends it one SSE
event per kind that changed, with at most one batch per `BATCH` seconds; htmx then fetches the
page again and swaps in the parts marked `hx-trigger="sse:<kind>"`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from aiohttp import web
from aiohttp_sse import sse_response

from csms.events import (
    Authorization,
    ChargingListener,
    ConnectorStatusChanged,
    MeterSample,
    TransactionStarted,
    TransactionStopped,
)

BATCH = 0.25  # seconds one stream gathers changes before it sends them
IDLE = 10.0  # seconds without a change after which a stream checks its reader is still there
KINDS = frozenset({"station", "transaction", "session", "job"})
Change = tuple[str, str]
_CLOSED: Change = ("", "")


class LiveFeed(ChargingListener):
    """Fans every change out to the open streams; never blocks the one who reports it."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Change]] = set()

    def publish(self, kind: str, key: str) -> None:
        for queue in self._queues:
            queue.put_nowait((kind, key))

    on_change = publish  # billing's ObservedStore callback: ("session" | "job", session id)

    def follow(self, message: dict[str, object]) -> None:
        """A live event from any node of a cluster (`csms.cluster.events`)."""
        event = message.get("event")
        if event in ("session_changed", "job_changed"):
            self.publish(str(event).removesuffix("_changed"), str(message.get("sessionId")))
            return
        if "stationId" in message:
            self.publish("station", str(message["stationId"]))
        if "transactionId" in message:
            self.publish("transaction", str(message["transactionId"]))

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[Change]]:
        queue: asyncio.Queue[Change] = asyncio.Queue()
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)

    def close(self) -> None:
        """Server shutdown: every stream ends (an open SSE response would hold it up)."""
        for queue in self._queues:
            queue.put_nowait(_CLOSED)

    # the charging core's events ------------------------------------------------------------
    async def station_connected(self, station_id: str) -> None:
        self.publish("station", station_id)

    async def station_disconnected(self, station_id: str) -> None:
        self.publish("station", station_id)

    async def connector_status(self, event: ConnectorStatusChanged) -> None:
        self.publish("station", event.station_id)

    async def transaction_started(self, event: TransactionStarted, result: Authorization,
                                  ) -> Authorization:
        self.publish("station", event.station_id)
        self.publish("transaction", str(event.transaction_id))
        return result

    async def meter_sample(self, event: MeterSample) -> None:
        self.publish("station", event.station_id)
        self.publish("transaction", str(event.transaction_id))

    async def transaction_stopped(self, event: TransactionStopped) -> None:
        self.publish("station", event.station_id)
        self.publish("transaction", str(event.transaction_id))


def parse_watch(text: str) -> tuple[frozenset[str], frozenset[Change]]:
    """`station,session:abc` -> ({"station"}, {("session", "abc")}); unknown kinds dropped."""
    kinds: set[str] = set()
    keyed: set[Change] = set()
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, sep, key = item.partition(":")
        if kind in KINDS:
            (keyed.add((kind, key)) if sep else kinds.add(kind))
    return frozenset(kinds), frozenset(keyed)


async def events(request: web.Request, feed: LiveFeed) -> web.StreamResponse:
    """GET /events?watch=...: one SSE event named after each kind of change the page shows."""
    kinds, keyed = parse_watch(request.query.get("watch", ""))
    with feed.subscribe() as queue:
        async with sse_response(request) as stream:
            with contextlib.suppress(ConnectionResetError):
                # A change between the page's render and this subscription would be lost:
                # the page fetches its live parts once more now that nothing can be missed.
                for kind in sorted(kinds | {kind for kind, _ in keyed}):
                    await stream.send(kind, event=kind)
                while stream.is_connected():
                    try:
                        batch = [await asyncio.wait_for(queue.get(), IDLE)]
                    except TimeoutError:
                        continue
                    await asyncio.sleep(BATCH)
                    while not queue.empty():
                        batch.append(queue.get_nowait())
                    if _CLOSED in batch:
                        break
                    for kind in sorted({kind for kind, key in batch
                                        if kind in kinds or (kind, key) in keyed}):
                        await stream.send(kind, event=kind)
    return stream
