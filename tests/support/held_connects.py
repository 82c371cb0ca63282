"""Hold back an app's connection writer (`csms.connection_writer`), so a test sees the moments
before a station's connect is written: a brand-new station is live but has no row yet."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime

from aiohttp import web

from csms.keys import HUB
from csms.store.ports import StationStore


class HeldConnects:
    """Stands in for the store in the app's connection writer: every write of connects and
    disconnects waits until `release` is set, then goes to the real store. `noted` is what
    was handed over (station id -> connected), so a test knows a connect is being held."""

    def __init__(self, store: StationStore) -> None:
        self.store = store
        self.release = asyncio.Event()
        self.noted: dict[str, bool] = {}

    async def set_connections(self, states: Mapping[str, tuple[bool, datetime]]) -> None:
        self.noted.update({sid: connected for sid, (connected, _) in states.items()})
        await self.release.wait()
        await self.store.set_connections(states)


def hold_connects(app: web.Application) -> HeldConnects:
    """Hold `app`'s connection writer (built by `web.app.create_app`, not yet started or
    started). Set `release` before the app stops: its stop waits for the held write."""
    writer = app[HUB].service.connections
    held = HeldConnects(writer.store)
    writer.store = held  # type: ignore[assignment]  # only set_connections is called
    return held
