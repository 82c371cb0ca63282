"""The whole app on a real port, served from its own thread and event loop, for synchronous
clients (schemathesis sends its requests with `requests`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from tests.support.net import free_port
from web.app import create_app
from web.settings import Settings


@contextmanager
def live_app(settings: Settings) -> Iterator[str]:
    """Serve the app for `settings`; yields its base URL."""
    port = free_port()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner = web.AppRunner(create_app(settings), access_log=None)

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name="live-app", daemon=True)
    thread.start()
    if not ready.wait(15):
        raise RuntimeError("the app did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(15)
