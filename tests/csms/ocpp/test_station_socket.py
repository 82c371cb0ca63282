"""The lean station websocket (csms/ocpp/websocket.py) on the wire: hand-built frames over a
raw TCP connection to the app served as `csms serve` serves it (behind the station port), so
each RFC 6455 rule is seen from the station's side."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from typing import Any

import pytest

from csms.keys import HUB
from csms.ocpp import websocket
from csms.ocpp.hub import ConnectionClosed
from csms.ocpp.websocket import StationSocket, accept_key

pytestmark = pytest.mark.both_loops  # see tests/conftest.py

HEARTBEAT = b'[2,"hb","Heartbeat",{}]'


class RawStation:
    """A TCP connection that speaks websocket frames byte by byte, as we build them."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, server: Any, station_id: str, subprotocols: str = "ocpp1.6", *,
                      receive_buffer: int = 0) -> tuple[RawStation, bytes]:
        sock = socket.socket()
        if receive_buffer:  # a small window: the server's writes back up sooner
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (server.host, server.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /ocpp/{station_id} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                      f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {subprotocols}\r\n"
                      "\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        assert f"Sec-WebSocket-Accept: {accept_key(key)}".encode() in head
        return cls(reader, writer), head

    def frame(self, payload: bytes, opcode: int = 1, *, fin: bool = True, mask: bool = True,
              rsv: int = 0) -> bytes:
        first = (0x80 if fin else 0) | rsv | opcode
        length = len(payload)
        if length < 126:
            head = bytes((first, (0x80 if mask else 0) | length))
        elif length < 65536:
            head = struct.pack("!BBH", first, (0x80 if mask else 0) | 126, length)
        else:
            head = struct.pack("!BBQ", first, (0x80 if mask else 0) | 127, length)
        if not mask:
            return head + payload
        key = os.urandom(4)
        return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))

    def send(self, *frames: bytes) -> None:
        self.writer.write(b"".join(frames))

    async def receive(self) -> tuple[int, bytes]:
        """(opcode, payload) of the server's next frame."""
        first, second = await self.reader.readexactly(2)
        assert not second & 0x80, "a server never masks"
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        assert first & 0x80
        return first & 0x0F, await self.reader.readexactly(length)

    async def reply(self) -> Any:
        opcode, payload = await self.receive()
        assert opcode == 1, (opcode, payload)
        return json.loads(payload)

    async def closed_with(self, *, answer: bool = False) -> int:
        """The close code of the server's close frame; then (after our own close frame when
        `answer`: the server started the closing handshake) the connection must end."""
        opcode, payload = await asyncio.wait_for(self.receive(), 5)
        assert opcode == 8, (opcode, payload)
        if answer:
            self.send(self.frame(payload[:2], opcode=8))
        assert await asyncio.wait_for(self.reader.read(), 3) == b""
        return struct.unpack("!H", payload[:2])[0]

    def close(self) -> None:
        self.writer.close()


async def test_handshake_prefers_201_and_answers_frames(server: Any) -> None:
    cp, head = await RawStation.connect(server, "CP-RAW-1", "ocpp1.6, ocpp2.0.1")
    assert b"Sec-WebSocket-Protocol: ocpp2.0.1\r\n" in head
    cp.send(cp.frame(HEARTBEAT))
    assert (await cp.reply())[:2] == [3, "hb"]
    cp.close()


async def test_frames_split_anywhere_and_batched_are_answered_in_order(server: Any) -> None:
    cp, _ = await RawStation.connect(server, "CP-RAW-2")
    calls = [cp.frame(f'[2,"s{i}","Heartbeat",{{}}]'.encode()) for i in range(5)]
    for byte in b"".join(calls[:2]):  # one byte per write
        cp.send(bytes((byte,)))
        await cp.writer.drain()
    cp.send(*calls[2:])  # three frames in one write
    assert [(await cp.reply())[1] for _ in range(5)] == ["s0", "s1", "s2", "s3", "s4"]
    cp.close()


async def test_fragments_with_a_ping_between_make_one_message(server: Any) -> None:
    cp, _ = await RawStation.connect(server, "CP-RAW-3")
    cp.send(cp.frame(HEARTBEAT[:5], fin=False), cp.frame(b"hello", opcode=9),
            cp.frame(HEARTBEAT[5:12], opcode=0, fin=False), cp.frame(HEARTBEAT[12:], opcode=0))
    assert await cp.receive() == (10, b"hello")  # the pong, with the ping's payload
    assert (await cp.reply())[:2] == [3, "hb"]
    cp.close()


async def test_long_messages_use_the_16_and_64_bit_lengths(server: Any) -> None:
    cp, _ = await RawStation.connect(server, "CP-RAW-4")
    for size in (1000, 70_000):
        data = "x" * size
        cp.send(cp.frame(json.dumps([2, f"d{size}", "DataTransfer",
                                     {"vendorId": "v", "data": data}]).encode()))
        reply = await cp.reply()
        assert reply[:2] == [3, f"d{size}"]
    cp.close()


async def test_a_large_frame_sent_in_small_pieces_is_one_message(server: Any) -> None:
    """A frame near the 1 MiB limit arriving a little at a time (its header a byte at a
    time) is kept in pieces and read once whole. It used to be joined again on every read,
    CPU quadratic in its size: bench/station_socket.py measures that, no test times it."""
    cp, _ = await RawStation.connect(server, "CP-RAW-17")
    data = "y" * (1024 * 1024 - 100)
    frame = cp.frame(json.dumps([2, "big", "DataTransfer", {"vendorId": "v", "data": data}],
                                separators=(",", ":")).encode())
    for i in range(14):
        cp.send(frame[i:i + 1])
        await cp.writer.drain()
        await asyncio.sleep(0)
    for n, i in enumerate(range(14, len(frame), 4099)):
        cp.send(frame[i:i + 4099])
        await cp.writer.drain()
        if n % 16 == 0:
            await asyncio.sleep(0)
    assert (await cp.reply())[:2] == [3, "big"]
    cp.send(cp.frame(HEARTBEAT))
    assert (await cp.reply())[:2] == [3, "hb"]
    cp.close()


@pytest.mark.parametrize(("frame", "code"), [
    ({"payload": HEARTBEAT, "mask": False}, 1002),  # a client must mask
    ({"payload": HEARTBEAT, "rsv": 0x40}, 1002),  # no extension was negotiated
    ({"payload": HEARTBEAT, "opcode": 3}, 1002),  # a reserved opcode
    ({"payload": HEARTBEAT, "opcode": 0}, 1002),  # a continuation of nothing
    ({"payload": b"x" * 126, "opcode": 9}, 1002),  # a control frame over 125 bytes
    ({"payload": b"ping", "opcode": 9, "fin": False}, 1002),  # a fragmented control frame
    ({"payload": b'[2,"x","Heartbeat",{"a":"\xff"}]'}, 1007),  # text that is not UTF-8
])
async def test_protocol_errors_close_with_their_code(server: Any, frame: dict[str, Any],
                                                     code: int) -> None:
    cp, _ = await RawStation.connect(server, "CP-RAW-5")
    cp.send(cp.frame(**frame))
    assert await cp.closed_with() == code
    cp.close()


async def test_a_new_message_inside_a_fragmented_one_is_a_protocol_error(server: Any) -> None:
    cp, _ = await RawStation.connect(server, "CP-RAW-6")
    cp.send(cp.frame(b'[2,"a"', fin=False), cp.frame(HEARTBEAT))
    assert await cp.closed_with() == 1002
    cp.close()


async def test_a_message_over_1_mib_is_refused_from_its_header(server: Any) -> None:
    cp, _ = await RawStation.connect(server, "CP-RAW-7")
    # only the header announcing 2 MiB: the server must not wait for (or buffer) the payload
    cp.send(struct.pack("!BBQ", 0x81, 0x80 | 127, 2 * 1024 * 1024) + os.urandom(4))
    assert await cp.closed_with() == 1009
    cp.close()


async def test_fragments_adding_up_over_1_mib_are_refused(server: Any) -> None:
    cp, _ = await RawStation.connect(server, "CP-RAW-8")
    part = b"x" * (600 * 1024)
    cp.send(cp.frame(part, fin=False))
    await cp.writer.drain()
    # the next fragment's header alone takes the message over 1 MiB
    cp.send(struct.pack("!BBQ", 0x00, 0x80 | 127, len(part)) + os.urandom(4))
    assert await cp.closed_with() == 1009
    cp.close()


@pytest.mark.parametrize(("payload", "answer"), [
    (struct.pack("!H", 1000) + b"bye", 1000),
    (struct.pack("!H", 4001), 4001),
    (b"", 1000),
    (b"\x03", 1002),  # a one-byte close payload
    (struct.pack("!H", 1005), 1002),  # a code no peer may send
    (struct.pack("!H", 1000) + b"\xff", 1007),  # a reason that is not UTF-8
])
async def test_the_close_handshake_echoes_a_valid_code(server: Any, payload: bytes,
                                                       answer: int) -> None:
    cp, _ = await RawStation.connect(server, "CP-RAW-9")
    cp.send(cp.frame(HEARTBEAT))
    assert (await cp.reply())[:2] == [3, "hb"]
    cp.send(cp.frame(payload, opcode=8))
    assert await cp.closed_with() == answer
    cp.close()


async def test_binary_messages_are_read_as_utf8(server: Any) -> None:
    cp, _ = await RawStation.connect(server, "CP-RAW-10")
    cp.send(cp.frame(HEARTBEAT, opcode=2))
    assert (await cp.reply())[:2] == [3, "hb"]
    cp.close()


async def test_a_station_that_never_reads_is_still_answered_in_order(server: Any) -> None:
    """Reading pauses while frames wait for the session, and writes wait for the station:
    nothing is lost or reordered when the station sends a burst before reading anything."""
    cp, _ = await RawStation.connect(server, "CP-RAW-11")
    cp.send(*(cp.frame(f'[2,"b{i}","Heartbeat",{{}}]'.encode()) for i in range(300)))
    await cp.writer.drain()
    await asyncio.sleep(0.2)
    assert [(await cp.reply())[1] for _ in range(300)] == [f"b{i}" for i in range(300)]
    cp.close()


async def test_a_reconnect_closes_the_older_socket_with_policy_violation(server: Any) -> None:
    first, _ = await RawStation.connect(server, "CP-RAW-12")
    first.send(first.frame(HEARTBEAT))
    await first.reply()
    second, _ = await RawStation.connect(server, "CP-RAW-12")
    assert await first.closed_with(answer=True) == 1008
    second.send(second.frame(HEARTBEAT))
    assert (await second.reply())[:2] == [3, "hb"]
    first.close()
    second.close()


async def test_a_station_that_pings_without_reading_is_paused_not_buffered(server: Any) -> None:
    """Pongs pile up in our write buffer while the station does not read them: reading from
    it pauses at the transport's high-water mark, so the buffer stays bounded, and everything
    flows again once it reads."""
    cp, _ = await RawStation.connect(server, "CP-RAW-13", receive_buffer=16 * 1024)
    cp.send(cp.frame(HEARTBEAT))
    await cp.reply()
    ping = cp.frame(b"p" * 125, opcode=9)
    count = 100_000  # ~13 MB of pongs, more than the kernel buffers between us hold

    async def flood() -> None:
        for _ in range(count // 1000):
            cp.send(ping * 1000)
            await cp.writer.drain()

    sending = asyncio.create_task(flood())
    await asyncio.sleep(1.0)  # the kernel's buffers fill both ways; then the server pauses
    socket = server.app[HUB].live("CP-RAW-13").socket
    assert socket._transport.get_write_buffer_size() < 1024 * 1024
    assert not sending.done()  # the station's own writes are held back
    for _ in range(count):
        assert await cp.receive() == (10, b"p" * 125)
    await sending
    cp.send(cp.frame(HEARTBEAT))
    assert (await cp.reply())[:2] == [3, "hb"]
    cp.close()


async def test_shutdown_ends_every_connection_after_its_close_handshake(
        server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Shutdown (SIGTERM in `csms serve`) closes each station with 1001 and returns only once
    every connection has ended: a station that answers is hung up on when it answers, one
    that does not is dropped after CLOSE_TIMEOUT. Nothing is left open for the loop's end."""
    monkeypatch.setattr(websocket, "CLOSE_TIMEOUT", 1.0)
    polite, _ = await RawStation.connect(server, "CP-RAW-14")
    silent, _ = await RawStation.connect(server, "CP-RAW-15")
    for cp in (polite, silent):
        cp.send(cp.frame(HEARTBEAT))
        await cp.reply()
    hub = server.app[HUB]
    transports = [hub.live(id_).socket._transport for id_ in ("CP-RAW-14", "CP-RAW-15")]
    answered = asyncio.create_task(polite.closed_with(answer=True))
    await server.close()
    assert [transport.is_closing() for transport in transports] == [True, True]
    assert await answered == 1001
    assert await silent.closed_with() == 1001
    polite.close()
    silent.close()


async def test_shutdown_closes_connections_that_have_not_sent_their_head(server: Any) -> None:
    """aiohttp closes its idle connections on shutdown; the door's must not wait for the
    head timeout (`server.idle_timeout`, 30 s) beyond the server's end."""
    idle = await asyncio.open_connection(server.host, server.port)
    partial = await asyncio.open_connection(server.host, server.port)
    partial[1].write(b"GET /ocpp/CP-RAW-16 HTTP/1.1\r\nHost: x\r\n")
    await partial[1].drain()
    await asyncio.sleep(0.1)  # the server has accepted both and read the partial head
    await server.close()
    for reader, writer in (idle, partial):
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()


async def test_a_frame_half_sent_when_we_close_is_read_through_to_the_close_reply(
        server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our close frame may cross a frame the station is still sending: the rest of that frame
    must still be read as its rest, so the station's close reply after it is seen and the
    connection ends at once (not misread as a new frame, waited on until CLOSE_TIMEOUT)."""
    monkeypatch.setattr(websocket, "CLOSE_TIMEOUT", 30.0)
    first, _ = await RawStation.connect(server, "CP-RAW-18")
    # a zero mask key: the payload goes as is, and its second part looks like the header of
    # a 65,535-byte frame
    rest = b"\x81\xfe\xff\xff" + bytes(4) + b"y" * 200
    payload = b"x" * 10 + rest
    head = struct.pack("!BBH", 0x81, 0x80 | 126, len(payload)) + bytes(4)
    first.send(head + payload[:10])
    await first.writer.drain()
    await asyncio.sleep(0.2)  # the server has read the first part
    second, _ = await RawStation.connect(server, "CP-RAW-18")  # replaces the first: 1008
    opcode, close = await asyncio.wait_for(first.receive(), 5)
    assert (opcode, close[:2]) == (8, struct.pack("!H", 1008))
    first.send(rest, first.frame(close[:2], opcode=8))
    assert await asyncio.wait_for(first.reader.read(), 5) == b""
    first.close()
    second.close()


async def test_a_failed_connection_is_dropped_even_when_the_station_stops_reading(
        server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A protocol error closes the connection once our frames are written; a station that
    reads none of them (our write buffer never empties) is dropped after CLOSE_TIMEOUT
    instead of holding the connection for as long as it likes."""
    monkeypatch.setattr(websocket, "CLOSE_TIMEOUT", 0.5)
    cp, _ = await RawStation.connect(server, "CP-RAW-19", receive_buffer=4096)
    cp.send(cp.frame(HEARTBEAT))
    await cp.reply()
    station = server.app[HUB].live("CP-RAW-19").socket
    ping = cp.frame(b"p" * 125, opcode=9)
    while not station._transport.get_write_buffer_size():  # the kernel's buffers are full
        cp.send(ping * 50)
        await cp.writer.drain()
        await asyncio.sleep(0.01)
    cp.send(cp.frame(HEARTBEAT, mask=False))  # a protocol error
    await asyncio.wait_for(station.wait_closed(), 5)
    cp.close()


async def test_after_our_close_frames_still_waiting_are_not_handed_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """As aiohttp's websocket does: once we close (a newer connection replaced this one, or
    shutdown), messages received but not yet taken are dropped, not handled by a session
    whose station has moved on; and reading resumes, paused as they piled up, so the
    station's close reply is read and the connection ends at once."""
    monkeypatch.setattr(websocket, "CLOSE_TIMEOUT", 30.0)
    ours, theirs = socket.socketpair()
    transport, _ = await asyncio.get_running_loop().connect_accepted_socket(
        asyncio.Protocol, ours)
    station = StationSocket(transport, max_size=1024 * 1024)  # type: ignore[arg-type]
    transport.set_protocol(station)
    reader, writer = await asyncio.open_connection(sock=theirs)
    cp = RawStation(reader, writer)
    cp.send(*(cp.frame(HEARTBEAT) for _ in range(websocket.MAX_PENDING + 4)))
    assert await station.recv() == HEARTBEAT.decode()  # the rest wait, reading paused
    await station.close(code=1008)
    with pytest.raises(ConnectionClosed):
        await station.recv()
    assert await cp.closed_with(answer=True) == 1008
    cp.close()
