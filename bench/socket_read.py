"""What one small read costs: `recv(256 KiB)` as asyncio's socket transport (3.11) reads,
against `recv(64 KiB)` and `recv_into` a buffer kept for reuse (what the station websocket
does, csms/ocpp/websocket.py). Each round sends a 120-byte frame over a socketpair and reads it.

    taskset -c 1 python bench/socket_read.py
"""

from __future__ import annotations

import socket
import time

ROUNDS = 200_000


def main() -> None:
    a, b = socket.socketpair()
    frame = b"x" * 120
    buffer = memoryview(bytearray(64 * 1024))
    for mode in ("recv 256 KiB", "recv 64 KiB", "recv_into a kept buffer"):
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(ROUNDS):
                a.send(frame)
                if mode == "recv 256 KiB":
                    b.recv(256 * 1024)
                elif mode == "recv 64 KiB":
                    b.recv(64 * 1024)
                else:
                    bytes(buffer[:b.recv_into(buffer)])
            best = min(best, (time.perf_counter() - started) / ROUNDS * 1e6)
        print(f"{mode:24} {best:5.1f} us per send + read")


if __name__ == "__main__":
    main()
