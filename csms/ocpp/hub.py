"""The hub: which stations are connected, their connections, calls to them, the frame log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from csms.background import stop_if_cancelled
from csms.charging import ChargingService
from csms.commands import StationNotConnected
from csms.domain import LoggedFrame, utcnow
from csms.metrics import Metrics
from csms.ocpp.v16 import StationChargePoint
from csms.settings import OcppSettings
from csms.store import Store

log = logging.getLogger(__name__)


class ConnectionClosed(ConnectionError):
    """The station's websocket is closed."""


class WebSocketConnection:
    """Adapts an aiohttp websocket to the `recv`/`send` pair the `ocpp` library expects."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    async def recv(self) -> str:
        while True:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.TEXT:
                return msg.data
            if msg.type == WSMsgType.BINARY:
                return msg.data.decode("utf-8", errors="replace")
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                            WSMsgType.ERROR):
                raise ConnectionClosed(str(msg.extra or msg.type))

    async def send(self, message: str) -> None:
        if self.ws.closed:
            raise ConnectionClosed("websocket closed")
        await self.ws.send_str(message)


@dataclass(slots=True)
class LiveStation:
    """What the hub knows of a connected station beyond the store."""

    charge_point: StationChargePoint
    ws: web.WebSocketResponse
    connected_at: datetime
    last_seen: datetime


class FrameLog:
    """Per-station log of OCPP frames, buffered in memory and written to the store in batches
    so logging never adds a database round trip to a station's reply."""

    def __init__(self, store: Store, keep: int, flush_interval: float = 1.0) -> None:
        self.store = store
        self.keep = keep
        self.flush_interval = flush_interval
        self._buffer: list[LoggedFrame] = []
        self._task: asyncio.Task[None] | None = None

    def frame(self, station_id: str, direction: str, frame: str) -> None:
        if self.keep > 0:
            self._buffer.append(LoggedFrame(station_id, direction, frame, utcnow()))

    async def flush(self) -> None:
        batch, self._buffer = self._buffer, []
        if batch:
            try:
                await self.store.append_frames(batch, self.keep)
            except Exception:
                log.exception("could not write %d OCPP frames to the message log", len(batch))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            await self.flush()
            stop_if_cancelled()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="frame-log")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()


class Hub:
    def __init__(self, settings: OcppSettings, store: Store, service: ChargingService,
                 metrics: Metrics) -> None:
        self.settings = settings
        self.store = store
        self.service = service
        self.metrics = metrics
        self.frames = FrameLog(store, settings.message_log_size)
        self._stations: dict[str, LiveStation] = {}

    # connections ---------------------------------------------------------------------------
    def is_connected(self, station_id: str) -> bool:
        return station_id in self._stations

    def live(self, station_id: str) -> LiveStation | None:
        return self._stations.get(station_id)

    def connected_ids(self) -> list[str]:
        return list(self._stations)

    async def serve(self, station_id: str, ws: web.WebSocketResponse) -> None:
        """Run one station's connection until it closes; a newer connection replaces it."""
        charge_point = StationChargePoint(
            station_id, _Touching(WebSocketConnection(ws), self, station_id),
            service=self.service, metrics=self.metrics, sink=self.frames,
            heartbeat_interval=self.settings.heartbeat_interval,
            response_timeout=self.settings.command_timeout)
        now = utcnow()
        previous = self._stations.get(station_id)
        self._stations[station_id] = LiveStation(charge_point, ws, now, now)
        if previous is not None:
            log.info("%s: new connection replaces the previous one", station_id)
            await previous.ws.close(code=WSCloseCode.POLICY_VIOLATION,
                                    message=b"replaced by a newer connection")
        else:
            self.metrics.connected_stations.inc()
        log.info("%s: connected", station_id)
        try:
            await self.service.connected(station_id)
            await charge_point.start()
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("%s: connection failed", station_id)
        finally:
            if self._stations.get(station_id) is not None and \
                    self._stations[station_id].charge_point is charge_point:
                del self._stations[station_id]
                self.metrics.connected_stations.dec()
                log.info("%s: disconnected", station_id)
                try:
                    await self.service.disconnected(station_id)
                except Exception:
                    log.exception("%s: could not record the disconnect", station_id)
            if not ws.closed:
                await ws.close()

    def seen(self, station_id: str) -> None:
        live = self._stations.get(station_id)
        if live is not None:
            live.last_seen = utcnow()

    async def close_all(self) -> None:
        """On shutdown: close every station's websocket with GOING_AWAY."""
        for live in list(self._stations.values()):
            with contextlib.suppress(Exception):
                await live.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")

    # calls to stations ---------------------------------------------------------------------
    async def call(self, station_id: str, action: str, payload: dict[str, Any],
                   timeout: float | None = None) -> dict[str, Any]:
        """Send an OCPP call (camelCase payload) and return the station's answer.

        Raises StationNotConnected, CommandInvalid, CommandTimeout or CommandRejected.
        """
        live = self._stations.get(station_id)
        if live is None:
            raise StationNotConnected(f"station {station_id} is not connected")
        return await live.charge_point.send_call(action, payload, timeout)

    async def remote_start(self, station_id: str, connector_id: int, id_tag: str) -> bool:
        answer = await self.call(station_id, "RemoteStartTransaction",
                                 {"connectorId": connector_id, "idTag": id_tag})
        return answer.get("status") == "Accepted"

    async def remote_stop(self, station_id: str, transaction_id: int) -> bool:
        answer = await self.call(station_id, "RemoteStopTransaction",
                                 {"transactionId": transaction_id})
        return answer.get("status") == "Accepted"


class _Touching:
    """Connection wrapper that records `last_seen` in memory on every received frame."""

    def __init__(self, inner: WebSocketConnection, hub: Hub, station_id: str) -> None:
        self.inner = inner
        self.hub = hub
        self.station_id = station_id

    async def recv(self) -> str:
        raw = await self.inner.recv()
        self.hub.seen(self.station_id)
        return raw

    async def send(self, message: str) -> None:
        await self.inner.send(message)
