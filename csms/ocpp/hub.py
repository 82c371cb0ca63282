"""The hub: which stations are connected, their connections, calls to them, the frame log.

It implements the `StationCommands` port: each command is built by the connected station's
version (`OcppVersion.remote_start`, ...), so nothing here speaks a particular OCPP version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from aiohttp import WSCloseCode, WSMsgType, web

from csms.background import stop_if_cancelled, wait_cancelled
from csms.charging import ChargingService
from csms.commands import StationNotConnected
from csms.domain import FrameEntry, utcnow
from csms.metrics import Metrics
from csms.ocpp.session import Session
from csms.ocpp.version import OcppVersion, Payload, StationContext
from csms.settings import OcppSettings
from csms.store import Store

log = logging.getLogger(__name__)


class ConnectionClosed(ConnectionError):
    """The station's websocket is closed."""


class StationConnection(Protocol):
    """A station's websocket as the hub and its session use it: the aiohttp adapter below, or
    the lean protocol of `csms.ocpp.websocket`. Each notes on `live` when the station last
    sent a frame (`LiveStation.last_seen`)."""

    live: LiveStation | None

    async def recv(self) -> str:
        """The next text message; raises ConnectionClosed once the connection is closed."""
        ...

    async def send(self, message: str) -> None: ...

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"") -> bool:
        """Start the closing handshake (no-op when closing already)."""
        ...

    @property
    def closed(self) -> bool: ...


class WebSocketConnection:
    """Adapts an aiohttp websocket to the `StationConnection` the hub uses."""

    __slots__ = ("live", "ws")

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.live: LiveStation | None = None

    def _seen(self) -> None:
        if self.live is not None:
            self.live.last_seen = utcnow()

    async def recv(self) -> str:
        while True:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.TEXT:
                self._seen()
                return msg.data
            if msg.type == WSMsgType.BINARY:
                self._seen()
                return msg.data.decode("utf-8", errors="replace")
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                            WSMsgType.ERROR):
                raise ConnectionClosed(str(msg.extra or msg.type))

    async def send(self, message: str) -> None:
        if self.ws.closed:
            raise ConnectionClosed("websocket closed")
        await self.ws.send_str(message)

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"") -> bool:
        return await self.ws.close(code=code, message=message)

    @property
    def closed(self) -> bool:
        return self.ws.closed


@dataclass(slots=True)
class LiveStation:
    """What the hub knows of a connected station beyond the store."""

    session: Session
    socket: StationConnection
    connected_at: datetime
    last_seen: datetime
    # this connection's own id: a presence elsewhere names the connection it replaced
    connection: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def version(self) -> OcppVersion:
        return self.session.version

    @property
    def evse_connectors(self) -> dict[int, dict[int, str]]:
        """2.0.1: each EVSE's connectors and their status on this connection."""
        return self.session.context.evse_connectors

    @property
    def firmware_status(self) -> str | None:
        """Last FirmwareStatusNotification on this connection (in memory only)."""
        return self.session.context.firmware_status

    @property
    def diagnostics_status(self) -> str | None:
        return self.session.context.diagnostics_status


class FrameLog:
    """Per-station log of OCPP frames, buffered in memory and written to the store in batches
    so logging never adds a database round trip to a station's reply."""

    def __init__(self, store: Store, keep: int, flush_interval: float = 1.0, *,
                 max_bytes: int = 0, frame_bytes: int = 8192,
                 heartbeat_interval: float = 0) -> None:
        self.store = store
        self.keep = keep
        self.max_bytes = max_bytes
        self.frame_bytes = frame_bytes
        self.flush_interval = flush_interval
        self.heartbeat_interval = heartbeat_interval
        self._buffer: dict[str, list[FrameEntry]] = {}  # per station, in the order logged
        self._heartbeats: dict[str, float] = {}  # station -> when its last Heartbeat was logged
        self._task: asyncio.Task[None] | None = None

    def logs(self, station_id: str, action: str) -> bool:
        """Whether a call of `action` (and its answer) goes to the log. A Heartbeat is logged
        at most once per `heartbeat_interval` per station: at a closed loop's rate Heartbeats
        were half of the log's rows and a tenth of the hub's CPU, and they tell an operator
        nothing the station's last_seen does not (a failed one is logged all the same)."""
        if action != "Heartbeat" or self.heartbeat_interval <= 0:
            return True
        now = time.monotonic()
        last = self._heartbeats.get(station_id)
        if last is not None and now - last < self.heartbeat_interval:
            return False
        self._heartbeats[station_id] = now
        return True

    def forget(self, station_id: str) -> None:
        """The station disconnected: its next Heartbeat is logged."""
        self._heartbeats.pop(station_id, None)

    def frame(self, station_id: str, direction: str, frame: str) -> None:
        """Buffer a frame, grouped per station as the store writes them (one row per station
        per flush): grouping here and plain tuples saved ~0.5 us per frame against building a
        LoggedFrame and grouping at the flush."""
        if self.keep > 0:
            entry = (direction, utcnow(), self._cut(frame))
            group = self._buffer.get(station_id)
            if group is None:
                self._buffer[station_id] = [entry]
            else:
                group.append(entry)

    def _cut(self, frame: str) -> str:
        """The frame, or its head when it is longer than `frame_bytes` in UTF-8."""
        if len(frame) * 4 <= self.frame_bytes:  # no character takes more than 4 bytes
            return frame
        data = frame.encode()
        if len(data) <= self.frame_bytes:
            return frame
        head = data[:self.frame_bytes - 48].decode("utf-8", "ignore")
        return f"{head}…[truncated: {len(data)} bytes]"

    async def flush(self) -> None:
        batch, self._buffer = self._buffer, {}
        if batch:
            try:
                await self.store.append_frames(batch, self.keep, self.max_bytes)
            except Exception:
                log.exception("could not write %d OCPP frames to the message log",
                              sum(len(group) for group in batch.values()))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            await self.flush()
            stop_if_cancelled()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="frame-log")

    async def stop(self) -> None:
        if self._task is not None:
            await wait_cancelled([self._task])
        await self.flush()


class Presence(Protocol):
    """Where the hub announces its connections beyond this process (`csms.cluster`)."""

    async def claim(self, station_id: str, connection: str, version: OcppVersion) -> None:
        """This process now holds the station; a connection elsewhere is closed."""

    async def release(self, station_id: str, connection: str) -> bool:
        """The connection closed; False when the station is already held by a newer one
        (elsewhere), whose connect must not be undone by this disconnect."""


class LocalPresence:
    """One process: the hub's own table is the whole truth."""

    async def claim(self, station_id: str, connection: str, version: OcppVersion) -> None:
        return None

    async def release(self, station_id: str, connection: str) -> bool:
        return True


class Hub:
    def __init__(self, settings: OcppSettings, store: Store, service: ChargingService,
                 metrics: Metrics) -> None:
        self.settings = settings
        self.store = store
        self.service = service
        self.metrics = metrics
        self.frames = FrameLog(store, settings.message_log_size,
                               max_bytes=settings.message_log_bytes,
                               frame_bytes=settings.message_log_frame_bytes,
                               heartbeat_interval=settings.message_log_heartbeat_interval)
        self._stations: dict[str, LiveStation] = {}
        self.presence: Presence = LocalPresence()

    # connections ---------------------------------------------------------------------------
    def is_connected(self, station_id: str) -> bool:
        return station_id in self._stations

    def live(self, station_id: str) -> LiveStation | None:
        return self._stations.get(station_id)

    def connected_ids(self) -> list[str]:
        return list(self._stations)

    async def serve(self, station_id: str, socket: StationConnection,
                    version: OcppVersion) -> None:
        """Run one station's connection until it closes; a newer connection replaces it."""
        context = StationContext(station_id)
        session = Session(
            context, socket, version, version.handlers(context, self.service, self.settings),
            metrics=self.metrics, sink=self.frames,
            response_timeout=self.settings.command_timeout)
        now = utcnow()
        previous = self._stations.get(station_id)
        self._stations[station_id] = live = LiveStation(session, socket, now, now)
        socket.live = live
        if previous is not None:
            log.info("%s: new connection replaces the previous one", station_id)
            await previous.socket.close(code=WSCloseCode.POLICY_VIOLATION,
                                    message=b"replaced by a newer connection")
        else:
            self.metrics.connected_stations.inc()
        log.info("%s: connected (OCPP %s)", station_id, version.name)
        try:
            await self.presence.claim(station_id, live.connection, version)
            await self.service.connected(station_id)
            await session.run()
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("%s: connection failed", station_id)
        finally:
            if self._stations.get(station_id) is not None and \
                    self._stations[station_id].session is session:
                del self._stations[station_id]
                self.frames.forget(station_id)
                self.metrics.connected_stations.dec()
                log.info("%s: disconnected", station_id)
                try:
                    if await self.presence.release(station_id, live.connection):
                        await self.service.disconnected(station_id)
                except Exception:
                    log.exception("%s: could not record the disconnect", station_id)
            if not socket.closed:
                await socket.close()

    async def drop(self, station_id: str, connection: str) -> None:
        """The station connected again elsewhere: close this (older) connection, if open."""
        live = self._stations.get(station_id)
        if live is not None and live.connection == connection:
            log.info("%s: connected again on another node; closing this connection", station_id)
            await live.socket.close(code=WSCloseCode.POLICY_VIOLATION,
                                message=b"replaced by a newer connection")

    async def close_all(self) -> None:
        """On shutdown: close every station's websocket with GOING_AWAY."""
        for live in list(self._stations.values()):
            with contextlib.suppress(Exception):
                await live.socket.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    # calls to stations ---------------------------------------------------------------------
    async def call(self, station_id: str, action: str, payload: dict[str, Any],
                   timeout: float | None = None) -> dict[str, Any]:
        """Send an OCPP call (camelCase payload) and return the station's answer.

        Raises StationNotConnected, CommandInvalid, CommandTimeout or CommandRejected.
        """
        live = self._stations.get(station_id)
        if live is None:
            raise StationNotConnected(f"station {station_id} is not connected")
        # A remote start that names its transaction by a remoteStartId (2.0.1) is recorded
        # here, on the node that holds the station, whoever built it: the transaction that
        # names it is linked to its idToken even when its events carry none. Before sending:
        # the station may send the Started before it answers.
        link = live.version.remote_start_link(action, payload)
        if link is not None:
            await self.service.expect_remote_start(station_id, *link)
        answer: dict[str, Any] = {}
        try:
            answer = await live.session.send_call(action, payload, timeout)
        finally:
            if link is not None and answer.get("status") != "Accepted":
                await self.service.forget_remote_start(station_id, link[0])
        return answer

    def _version(self, station_id: str) -> OcppVersion:
        live = self._stations.get(station_id)
        if live is None:
            raise StationNotConnected(f"station {station_id} is not connected")
        return live.version

    async def remote_start(self, station_id: str, connector_id: int, id_tag: str) -> bool:
        """For a station that names its transactions, the remoteStartId is drawn from our
        transaction id counter (positive, never reused, durable); `call` records it, so the
        transaction that names it is linked to `id_tag` even without an idToken."""
        version = self._version(station_id)
        remote_start_id = await self.remote_start_id(version)
        action, payload = version.remote_start(connector_id, id_tag, remote_start_id)
        answer = await self.call(station_id, action, payload)
        return answer.get("status") == "Accepted"

    async def remote_start_id(self, version: OcppVersion) -> int | None:
        """A fresh remoteStartId for a version whose stations name their transactions."""
        if not version.station_owns_transactions:
            return None
        return await self.store.next_transaction_id()

    async def remote_stop(self, station_id: str, transaction_id: int) -> bool:
        """Stop our transaction `transaction_id` (by the station's own id when it has one)."""
        version = self._version(station_id)
        action, payload = await self.remote_stop_call(version, station_id, transaction_id)
        answer = await self.call(station_id, action, payload)
        return answer.get("status") == "Accepted"

    async def remote_stop_call(self, version: OcppVersion, station_id: str,
                               transaction_id: int) -> Payload:
        """The stop call for `version`: by the station's own transaction id when it has one."""
        station_transaction_id = None
        if version.station_owns_transactions:
            tx = await self.store.get_transaction(transaction_id)
            if tx is not None and tx.station_id == station_id:
                station_transaction_id = tx.station_transaction_id
        return version.remote_stop(transaction_id, station_transaction_id)

