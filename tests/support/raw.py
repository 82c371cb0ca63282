"""A raw OCPP-J peer (1.6 unless told): frames exactly as given, replies as parsed JSON."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import connect


async def raw_exchange(ws_url: str, station_id: str, frames: list[str],
                       subprotocol: str = "ocpp1.6") -> list[list[Any]]:
    """Send raw frames one by one on one connection and collect one reply per frame."""
    replies = []
    async with connect(f"{ws_url}/{station_id}", subprotocols=[subprotocol],
                       max_size=None) as ws:
        for frame in frames:
            await ws.send(frame)
            replies.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
    return replies
