"""The listening port, shared by aiohttp and the lean station websocket.

Every connection starts at a small door protocol that reads the head of its first request. A
clean websocket upgrade to `/ocpp/{stationId}` is taken here: admitted by the same rules as
aiohttp's route (`csms.ocpp.endpoint.admit`), answered with our own 101, and served by
`csms.ocpp.websocket.StationSocket` for the rest of its life. Anything else (the API, the
dashboard, a malformed or unusual upgrade, an upgrade on a reused keep-alive connection) is
handed, bytes and all, to aiohttp's request handler, which answers as it always did: its
`/ocpp/{stationId}` route serves those upgrades too.

Why: aiohttp keeps a request, its handler, parser and the middleware coroutines alive for a
websocket's whole life, about 16 KB per connection, and its per-frame path costs more than the
station protocol needs (issue 15, docs/performance.md "Round four"). HTTP parsing stays
aiohttp's for everything but the one request line and headers of a station's upgrade.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

from aiohttp import web
from multidict import CIMultiDict

from csms.metrics import Metrics
from csms.ocpp.endpoint import (
    DEFAULT_VERSION,
    MAX_MESSAGE_BYTES,
    Refusal,
    Upgrade,
    admit,
    refused_subprotocol,
)
from csms.ocpp.hub import Hub
from csms.ocpp.version import OcppVersion
from csms.ocpp.websocket import CLOSE_TIMEOUT, StationSocket, handshake_response, valid_key
from csms.settings import OcppSettings
from csms.store import Store, StoreError
from web.errors import error_code, error_response

log = logging.getLogger(__name__)

_PREFIX = b"GET /ocpp/"
# aiohttp's own limits on a request head (its line and field size, its header count): a head
# beyond them goes to aiohttp, which refuses it as it does any other
MAX_HEAD = 8190
MAX_HEADERS = 128
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE = re.compile(r"[\t\x20-\x7e]*")  # no control characters (NUL, a bare CR, ...)
# headers aiohttp refuses to see twice (its parser's SINGLETON_HEADERS)
_SINGLETONS = ("Content-Length", "Content-Location", "Content-Range", "Content-Type", "ETag",
               "Host", "Max-Forwards", "Server", "Transfer-Encoding", "User-Agent")


@dataclass(frozen=True, slots=True)
class StationUpgrade:
    station_id: str
    key: str
    headers: CIMultiDict[str]


def _tokens(value: str) -> set[str]:
    return {token.strip().lower() for token in value.split(",")}


def parse_upgrade(head: bytes) -> StationUpgrade | None:
    """A clean websocket upgrade to /ocpp/{stationId} (the request head, without its blank
    line), or None: then aiohttp takes the request and answers it whatever it is. Anything
    aiohttp would refuse as malformed HTTP is None, so it is refused the same way."""
    if not head.isascii() or len(head) > MAX_HEAD:
        return None
    lines = head.decode("ascii").split("\r\n")
    if len(lines) > MAX_HEADERS + 1:
        return None
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[0] != "GET" or parts[2] != "HTTP/1.1":
        return None
    path = parts[1].partition("?")[0]
    station_id = path[len("/ocpp/"):]
    if not station_id or "/" in station_id or "%" in station_id or "#" in station_id:
        return None  # a path aiohttp decodes, cuts (a fragment) or routes elsewhere
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name) or not _VALUE.fullmatch(value):
            return None  # obs-fold, a bare name, a name with spaces: aiohttp's to refuse
        headers.add(name, value.strip(" \t"))
    if "Host" not in headers or \
            any(len(headers.getall(name, ())) > 1 for name in _SINGLETONS):
        return None
    key = headers.get("Sec-WebSocket-Key", "")
    if "websocket" not in _tokens(headers.get("Upgrade", "")) or \
            "upgrade" not in _tokens(headers.get("Connection", "")) or \
            headers.get("Sec-WebSocket-Version") != "13" or not valid_key(key) or \
            headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in headers:
        return None
    return StationUpgrade(station_id, key, headers)


def _http_answer(status: int, message: str, headers: dict[str, str] | None = None) -> bytes:
    """An HTTP error answer as the app's error middleware writes it (the same JSON body)."""
    response = error_response(status, error_code(status), message, headers=headers)
    body = response.body
    assert isinstance(body, bytes)
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
             "Content-Type: application/json; charset=utf-8",
             f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in response.headers.items()
              if name in ("WWW-Authenticate", "Retry-After")]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class StationPort:
    """Takes stations' upgrades off the shared port and serves them with the hub."""

    def __init__(self, hub: Hub, store: Store, settings: OcppSettings, metrics: Metrics, *,
                 head_timeout: float) -> None:
        self.hub = hub
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.head_timeout = head_timeout
        self._tasks: set[asyncio.Task[None]] = set()
        self._doors: set[_Door] = set()  # connections whose first head has not yet come
        self._closing = False

    def protocol_factory(self, http: web.Server) -> Callable[[], asyncio.BaseProtocol]:
        """What the listening socket makes per connection. With permessage-deflate on,
        aiohttp takes every connection: the lean websocket speaks no extension."""
        if self.settings.websocket_compression:
            return http
        return lambda: _Door(self, http)

    def take(self, transport: asyncio.Transport, upgrade: StationUpgrade, door: _Door) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(transport, upgrade, door))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, transport: asyncio.Transport, request: StationUpgrade,
                     door: _Door) -> None:
        """One station's connection, from its admission to its end."""
        station_id = request.station_id
        try:
            opened = await self._open(transport, request, door)
            # the head, its headers and the door would otherwise live as long as the
            # connection, in this frame: ~2 KB a station (issue 15's memory target)
            del request, door
            if opened is None:
                return
            station, version = opened
            if version is not None:
                await self.hub.serve(station_id, station, version)
            await station.wait_closed()  # the closing handshake: shutdown waits for it
        except asyncio.CancelledError:
            transport.abort()  # shutdown stopped waiting: no connection outlives the server
            raise

    async def _open(self, transport: asyncio.Transport, request: StationUpgrade,
                    door: _Door) -> tuple[StationSocket, OcppVersion | None] | None:
        """Admit the upgrade and answer it: the station's websocket and the version to serve
        it in (None: it offered no subprotocol of ours and is being closed); None when it was
        refused or the server is shutting down."""
        upgrade = Upgrade(request.station_id, request.headers, transport)
        try:
            admission = await admit(upgrade, store=self.store, settings=self.settings,
                                    metrics=self.metrics)
        except Refusal as refusal:
            return _refuse(transport, refusal.status, refusal.message, refusal.headers)
        except StoreError as exc:
            log.warning("store unavailable on a station upgrade: %s", exc)
            return _refuse(transport, 503, "The store is unavailable; retry shortly",
                           {"Retry-After": "5"})
        except Exception:
            log.exception("unhandled error on GET /ocpp/%s", request.station_id)
            return _refuse(transport, 500, "An internal error occurred")
        if transport.is_closing() or self._closing:
            transport.close()
            return None
        station = StationSocket(transport, max_size=MAX_MESSAGE_BYTES)
        subprotocol = admission.version.subprotocol if admission.version else None
        transport.write(handshake_response(request.key, subprotocol))
        transport.set_protocol(station)
        transport.resume_reading()  # if the door paused it
        if door.rest:  # bytes after the head, and any that came while the station was admitted
            station.data_received(door.rest)
            door.rest = b""
        if refused_subprotocol(admission, request.station_id, self.settings, self.metrics):
            await station.close(code=1002, message=b"unsupported subprotocol")
            return station, None
        return station, admission.version or DEFAULT_VERSION

    async def shutdown(self, app: web.Application | None = None) -> None:
        """On shutdown, after the hub closed its stations: close connections still before
        their head (as aiohttp closes its idle ones) and any station admitted since (upgrades
        still being admitted are dropped), then wait until every connection has ended, each
        after its closing handshake or CLOSE_TIMEOUT; what is left after that is dropped."""
        self._closing = True
        for door in list(self._doors):
            door.close()
        await self.hub.close_all()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=CLOSE_TIMEOUT + 1)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1)


def _refuse(transport: asyncio.Transport, status: int, message: str,
            headers: dict[str, str] | None = None) -> None:
    if not transport.is_closing():
        transport.write(_http_answer(status, message, headers))
        transport.close()


class _Door(asyncio.Protocol):
    """A new connection until its first request head says who takes it."""

    __slots__ = ("_buffer", "_http", "_port", "_timer", "_transport", "rest", "taken")

    def __init__(self, port: StationPort, http: web.Server) -> None:
        self._port = port
        self._http = http
        self._buffer = b""
        self.taken = False  # the head was a station's upgrade: the port has the connection
        self.rest = b""  # what came after that head, for the station's websocket
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's or uvloop's transport (uvloop's do not subclass asyncio.Transport)
        self._transport = cast(asyncio.Transport, transport)
        self._timer = asyncio.get_running_loop().call_later(self._port.head_timeout,
                                                            self._transport.close)
        self._port._doors.add(self)

    def close(self) -> None:
        """Shutdown: the connection ends before its head came."""
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        assert transport is not None
        if self.taken:  # bytes before the 101 (a station normally waits for it): kept, and
            self.rest += data  # reading paused until the station's socket takes them
            transport.pause_reading()
            return None
        buffer = self._buffer + data if self._buffer else data
        if buffer[:len(_PREFIX)] != _PREFIX[:len(buffer)]:
            return self._to_http(buffer)
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEAD or b"\n\n" in buffer:
                return self._to_http(buffer)
            self._buffer = buffer
            return None
        upgrade = parse_upgrade(buffer[:end])
        if upgrade is None:
            return self._to_http(buffer)
        self._done()
        self._buffer, self.taken, self.rest = b"", True, buffer[end + 4:]
        # Reading goes on while the station is admitted: pausing and resuming every
        # connection's reading cost two epoll_ctl calls, ~7% of the loop's time when 10,000
        # connect at once (issue 15); it pauses only if bytes come before the 101 (above).
        if self.rest:
            transport.pause_reading()
        with contextlib.suppress(OSError):  # as aiohttp does for its connections
            sock = transport.get_extra_info("socket")
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self._port.take(transport, upgrade, self)
        return None

    def _to_http(self, buffer: bytes) -> None:
        """aiohttp takes the connection from its first byte on."""
        transport = self._transport
        assert transport is not None
        self._done()
        self._buffer = b""
        handler: Any = self._http()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        handler.data_received(buffer)

    def _done(self) -> None:
        """The door's part is over (its head decided who takes the connection, or it was
        lost): no head timer, and no longer the port's to close on shutdown."""
        self._port._doors.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._done()


class StationSite(web.BaseSite):
    """aiohttp's `SockSite`, with the station port's door in front of aiohttp's handler."""

    __slots__ = ("_port", "_sock")

    def __init__(self, runner: web.AppRunner, sock: socket.socket, port: StationPort, *,
                 ssl_context: Any = None, backlog: int = 128) -> None:
        # the shutdown timeout is the runner's (aiohttp deprecates, and ignores, a site's)
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._sock = sock
        self._port = port

    @property
    def name(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"{'https' if self._ssl_context else 'http'}://{host}:{port}"

    async def start(self) -> None:
        await super().start()
        http = self._runner.server
        assert http is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._port.protocol_factory(http), sock=self._sock, ssl=self._ssl_context,
            backlog=self._backlog)
