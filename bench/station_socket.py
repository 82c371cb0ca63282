"""CPU of the lean station websocket's frame parsing (csms/ocpp/websocket.py), fed straight
into `StationSocket.data_received` (no socket, no session): a small OCPP frame arriving whole
and split inside its header, and one frame of about 1 MB arriving in pieces of a given size,
as a station sending a little at a time delivers it. Best of --repeat runs.

    taskset -c 0 .venv/bin/python bench/station_socket.py [--pieces 1460 100 16]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from websockets.utils import apply_mask

from csms.ocpp.websocket import StationSocket

CALL = b'[2,"1234567890","MeterValues",{"connectorId":1,"transactionId":7,"meterValue":[]}]'


class NullTransport:
    """What the protocol calls on its transport, doing nothing."""

    def write(self, data: bytes) -> None: ...
    def is_closing(self) -> bool: return False
    def close(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


def masked(payload: bytes) -> bytes:
    key = os.urandom(4)
    length = len(payload)
    if length < 126:
        head = bytes((0x81, 0x80 | length))
    elif length < 65536:
        head = bytes((0x81, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0x80 | 127)) + length.to_bytes(8, "big")
    return head + key + apply_mask(payload, key)


def feed(chunks: list[bytes], times: int) -> float:
    """CPU seconds to feed `chunks` `times` over; every message is taken as it completes."""
    socket = StationSocket(NullTransport(), max_size=1024 * 1024)  # type: ignore[arg-type]
    started = time.process_time()
    for _ in range(times):
        for chunk in chunks:
            socket.data_received(chunk)
        socket._messages.clear()
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pieces", type=int, nargs="+", default=[1460, 100, 16])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    small = masked(CALL)
    for name, chunks in (("small frame, whole", [small]),
                         ("small frame, split in its header", [small[:5], small[5:]])):
        best = min(feed(chunks, 100_000) for _ in range(args.repeat))
        print(f"{name:40} {best / 100_000 * 1e6:8.3f} us CPU per frame")
    big = masked(b"x" * 1_000_000)
    for size in args.pieces:
        chunks = [big[i:i + size] for i in range(0, len(big), size)]
        best = min(feed(chunks, 1) for _ in range(args.repeat))
        print(f"{'1 MB frame in ' + str(size) + '-byte pieces':40} {best * 1e3:8.1f} ms CPU")


if __name__ == "__main__":
    main()
