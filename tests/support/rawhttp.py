"""HTTP/1.1 requests written byte by byte, for what a polite client library refuses to send."""

from __future__ import annotations

import asyncio
import json
from typing import Any


async def raw_request(host: str, port: int, head: bytes, body: bytes = b"",
                      ) -> tuple[int, Any]:
    """Send `head` (request line and headers, without the blank line) and `body`; return the
    status and the JSON body of the answer."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(head + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
                     + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    payload = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(payload) if payload else None
