"""A lean server-side websocket (RFC 6455) for station connections, after the handshake.

Why hand-rolled: at 10,000 stations an aiohttp websocket holds about 16 KB per connection (the
upgrade request kept for the connection's life, its request handler and parser, the middleware
coroutines suspended around the handler, the reader queue), and every frame goes through its
reader queue, message tuple and writer (issue 15, docs/performance.md "Round four"). A station
connection needs much less: text frames in, text frames out, ping/pong and the close handshake.
This protocol is one slotted object on the transport, and parses frames straight from
`data_received` into the waiting `recv()`. Unmasking uses the `websockets` library's C helper.

What it enforces, as aiohttp did for us: client frames are masked; no RSV bits (we negotiate no
extension); control frames are final and at most 125 bytes; fragments follow the rules; a
message is at most `max_size` bytes (1009); a text message is UTF-8 (1007); a binary message is
taken as UTF-8 with replacement; a close code must be one a peer may send (1002). A protocol
error sends the close frame with its code and drops the connection.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
import threading
from typing import TYPE_CHECKING

from aiohttp import WSCloseCode
from websockets.utils import apply_mask  # the C speedup when built, else pure Python

from csms.domain import utcnow
from csms.ocpp.hub import ConnectionClosed

if TYPE_CHECKING:
    from csms.ocpp.hub import LiveStation

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CLOSE_TIMEOUT = 5.0  # seconds a station has to answer our close frame before we drop it
MAX_PENDING = 16  # messages received and not yet taken by recv() before reading pauses

_TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x1, 0x2, 0x8, 0x9, 0xA

# Where the transport reads into, shared by every connection of a thread's loop (a loop runs
# one callback at a time, and `buffer_updated` copies what was read before returning).
# Why: asyncio's socket transport (3.11) reads with `recv(256 KiB)`, and allocating and
# freeing 256 KiB per read costs ~13 us on this kind of machine (glibc maps and unmaps it):
# more than the rest of a small frame's read. `recv_into` a buffer we keep costs ~0.5 us.
READ_BUFFER_BYTES = 64 * 1024
_read_buffers = threading.local()


def _read_buffer() -> memoryview:
    buffer: memoryview | None = getattr(_read_buffers, "buffer", None)
    if buffer is None:
        buffer = _read_buffers.buffer = memoryview(bytearray(READ_BUFFER_BYTES))
    return buffer


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def valid_key(key: str) -> bool:
    """A Sec-WebSocket-Key is the base64 of 16 bytes."""
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except ValueError:
        return False


def handshake_response(key: str, subprotocol: str | None) -> bytes:
    """The server's 101 answer to an upgrade with `key`, naming `subprotocol` if any."""
    protocol = f"Sec-WebSocket-Protocol: {subprotocol}\r\n" if subprotocol else ""
    return ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\n{protocol}\r\n").encode()


def _frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame (a server never masks)."""
    length = len(payload)
    if length < 126:
        return bytes((0x80 | opcode, length)) + payload
    if length < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, length) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, length) + payload


def _close_payload(code: int, message: bytes) -> bytes:
    return struct.pack("!H", code) + message[:123]


def _valid_close_code(code: int) -> bool:
    """Codes a peer may send in a close frame (RFC 6455 §7.4)."""
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) \
        or 3000 <= code <= 4999


class StationSocket(asyncio.BufferedProtocol):
    """One station's websocket after the 101: the hub's `StationConnection`."""

    __slots__ = ("_buffer", "_close_timer", "_closed", "_drain", "_ended", "_fragment_opcode",
                 "_fragments", "_fragments_size", "_have", "_lost", "_messages", "_need",
                 "_paused", "_pieces", "_reason", "_sent_close", "_transport", "_waiter", "live",
                 "max_size")

    def __init__(self, transport: asyncio.Transport, *, max_size: int) -> None:
        self._transport = transport
        self.max_size = max_size
        # the loop thread's read buffer, looked up once: the thread-local lookup on every read
        # was ~1,000 instructions, twice per frame (round six)
        self._buffer = _read_buffer()
        self.live: LiveStation | None = None
        # the bytes of a frame not yet whole, kept as received and joined once there are
        # `_need` of them: joining on every read made a large frame sent in small pieces cost
        # time quadratic in its size (a 1 MB frame in 100-byte pieces: ~1.8 s of CPU)
        self._pieces: list[bytes] | None = None
        self._have = 0
        self._need = 0
        self._messages: list[str] = []
        self._waiter: asyncio.Future[None] | None = None
        self._fragments: list[bytes] | None = None  # a fragmented message being received
        self._fragment_opcode = 0
        self._fragments_size = 0
        self._closed = False  # no frame goes in or out any more (recv raises)
        self._sent_close = False
        self._reason = ""
        self._paused = False
        self._drain: asyncio.Future[None] | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._lost = False  # the transport's connection is gone
        self._ended: asyncio.Future[None] | None = None  # wait_closed's, made on demand

    # the hub's side --------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    async def recv(self) -> str:
        while not self._messages:
            if self._closed:
                raise ConnectionClosed(self._reason or "websocket closed")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message = self._messages.pop(0)
        if self._paused and len(self._messages) < MAX_PENDING // 2:
            self._pace()
        if self.live is not None:
            self.live.last_seen = utcnow()
        return message

    async def send(self, message: str) -> None:
        if self._closed:
            raise ConnectionClosed(self._reason or "websocket closed")
        self._transport.write(_frame(_TEXT, message.encode()))
        if self._drain is not None:  # the station reads slower than we write: wait for it
            await asyncio.shield(self._drain)

    async def close(self, *, code: int = WSCloseCode.OK, message: bytes = b"") -> bool:
        """Send our close frame and stop taking frames; the station has `CLOSE_TIMEOUT` to
        answer with its own before the connection is dropped."""
        if self._sent_close:
            return False
        self._send_close(code, message)
        self._finish(f"closed by us ({code})")
        # as aiohttp's websocket: what waits for recv() is dropped (the station moved on to a
        # newer connection, or we are shutting down), and reading resumes for its close reply
        self._messages.clear()
        if self._paused:
            self._pace()
        if not self._transport.is_closing():
            self._close_timer = asyncio.get_running_loop().call_later(
                CLOSE_TIMEOUT, self._transport.abort)
        return True

    async def wait_closed(self) -> None:
        """Until the connection itself has ended: the closing handshake done, or the
        connection dropped (a close of ours unanswered is dropped after CLOSE_TIMEOUT)."""
        if not self._lost:
            if self._ended is None:
                self._ended = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._ended)

    # the transport's side ----------------------------------------------------------------------
    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self._buffer[:nbytes]))

    def data_received(self, data: bytes) -> None:
        if self._pieces is None:
            buffer = data
        else:
            self._pieces.append(data)
            self._have += len(data)
            if self._have < self._need:
                return
            buffer, self._pieces = b"".join(self._pieces), None
        size = len(buffer)
        pos = need = 0
        while size - pos >= 2:
            first, second = buffer[pos], buffer[pos + 1]
            length = second & 0x7F
            head = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(buffer[head:head + 2], "big")
                head += 2
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buffer[head:head + 8], "big")
                head += 8
            if not second & 0x80:
                self._fail(WSCloseCode.PROTOCOL_ERROR, "unmasked frame from a client")
                return
            if first & 0x70:
                self._fail(WSCloseCode.PROTOCOL_ERROR, "RSV bits set, no extension")
                return
            if length + (self._fragments_size if not first & 0x0F else 0) > self.max_size:
                self._fail(WSCloseCode.MESSAGE_TOO_BIG,
                           f"message larger than {self.max_size} bytes")
                return
            end = head + 4 + length
            if end > size:
                need = end - pos
                break
            payload = apply_mask(buffer[head + 4:end], buffer[head:head + 4]) if length \
                else b""
            pos = end
            if not self._frame(first & 0x80, first & 0x0F, payload):
                return  # failed or closed: nothing after it counts
        if pos < size:  # the start of a frame: wait for `need` bytes (a header: any more)
            self._pieces, self._have, self._need = [buffer[pos:]], size - pos, need

    def _frame(self, fin: int, opcode: int, payload: bytes) -> bool:
        """Handle one frame; False once the connection is failed or closed."""
        if self._closed and opcode != _CLOSE:
            return True  # after our close frame only the station's close matters
        if opcode in (_TEXT, _BINARY):
            if self._fragments is not None:
                self._fail(WSCloseCode.PROTOCOL_ERROR, "a new message inside a fragmented one")
                return False
            if fin:
                return self._message(opcode, payload)
            self._fragments, self._fragments_size = [payload], len(payload)
            self._fragment_opcode = opcode
            return True
        if opcode == 0:  # continuation
            if self._fragments is None:
                self._fail(WSCloseCode.PROTOCOL_ERROR, "a continuation frame with no message")
                return False
            self._fragments.append(payload)
            self._fragments_size += len(payload)
            if not fin:
                return True
            data = b"".join(self._fragments)
            self._fragments, self._fragments_size = None, 0
            return self._message(self._fragment_opcode, data)
        if opcode > 0x7:  # control frames
            if not fin or len(payload) > 125:
                self._fail(WSCloseCode.PROTOCOL_ERROR, "a control frame must be final, <=125 B")
                return False
            if opcode == _PING:
                if not self._sent_close:
                    self._transport.write(_frame(_PONG, payload))
                return True
            if opcode == _PONG:
                return True
            if opcode == _CLOSE:
                self._peer_closed(payload)
                return False
        self._fail(WSCloseCode.PROTOCOL_ERROR, f"unknown opcode {opcode}")
        return False

    def _message(self, opcode: int, data: bytes) -> bool:
        if opcode == _TEXT:
            try:
                text = data.decode()
            except UnicodeDecodeError:
                self._fail(WSCloseCode.INVALID_TEXT, "a text message that is not UTF-8")
                return False
        else:
            text = data.decode("utf-8", errors="replace")
        self._messages.append(text)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if not self._paused and len(self._messages) >= MAX_PENDING:
            self._pace()
        return True

    def _pace(self) -> None:
        """Read from the station only while its session keeps up with its frames and the
        station reads what we write: a station that sends calls (or pings) without reading
        the answers would otherwise grow our buffers without bound."""
        pause = len(self._messages) >= MAX_PENDING or self._drain is not None
        if pause != self._paused and not self._transport.is_closing():
            self._paused = pause
            if pause:
                self._transport.pause_reading()
            else:
                self._transport.resume_reading()

    def _peer_closed(self, payload: bytes) -> None:
        """The station's close frame: answer it (unless it answers ours) and hang up."""
        code, reason = WSCloseCode.OK, "closed by the station"
        if len(payload) == 1:
            code = WSCloseCode.PROTOCOL_ERROR
        elif len(payload) >= 2:
            (received,) = struct.unpack("!H", payload[:2])
            try:
                words = payload[2:].decode()
            except UnicodeDecodeError:
                code = WSCloseCode.INVALID_TEXT
            else:
                code = received if _valid_close_code(received) else WSCloseCode.PROTOCOL_ERROR
                reason = f"closed by the station ({received}{': ' if words else ''}{words})"
        if not self._sent_close:
            self._send_close(code, b"")
        self._finish(reason)
        self._hang_up()

    def _fail(self, code: int, reason: str) -> None:
        """A protocol error: our close frame with its code, and the connection dropped."""
        if not self._sent_close:
            self._send_close(code, reason.encode())
        self._finish(reason)
        self._hang_up()

    def _hang_up(self) -> None:
        """Close the connection once our frames are written; a station that does not read
        them within CLOSE_TIMEOUT is dropped."""
        self._transport.close()
        if self._close_timer is None and not self._lost:
            self._close_timer = asyncio.get_running_loop().call_later(
                CLOSE_TIMEOUT, self._transport.abort)

    def _send_close(self, code: int, message: bytes) -> None:
        self._sent_close = True
        if not self._transport.is_closing():
            self._transport.write(_frame(_CLOSE, _close_payload(code, message)))

    def _finish(self, reason: str) -> None:
        """No more frames either way: wake whoever waits."""
        if self._closed:
            return
        self._closed, self._reason = True, reason
        self._fragments = None  # a frame half received stays: the station's close may follow
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(f"connection lost{f': {exc}' if exc else ''}")
        self._sent_close = self._lost = True
        self._pieces = None
        if self._ended is not None and not self._ended.done():
            self._ended.set_result(None)
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._release_drain()

    def pause_writing(self) -> None:
        if self._drain is None:
            self._drain = asyncio.get_running_loop().create_future()
            self._pace()

    def resume_writing(self) -> None:
        self._release_drain()
        self._pace()

    def _release_drain(self) -> None:
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    def eof_received(self) -> bool:
        return False  # the transport closes; connection_lost follows
