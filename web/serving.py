"""`csms serve`'s loop: what `aiohttp.web.run_app` does, with the station port's site.

`run_app` builds its own `SockSite`, which hands every connection to aiohttp; ours puts the
station port's door in front (`web/station_port.py`). The rest is run_app's: SIGINT/SIGTERM
end the run gracefully (the runner's cleanup: stop listening, on_shutdown, close
connections, cleanup contexts), then remaining tasks are cancelled and the loop closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable

from aiohttp import web
from aiohttp.web_runner import GracefulExit

from web.keys import STATION_PORT
from web.station_port import StationSite

SHUTDOWN_TIMEOUT = 10.0  # seconds HTTP requests in flight get on shutdown


async def start(app: web.Application, sock: socket.socket, tls: ssl.SSLContext | None, *,
                handle_signals: bool = False) -> web.AppRunner:
    """Set the app up and listen on `sock`; the caller cleans the returned runner up."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT,
                           handle_signals=handle_signals, handler_cancellation=True)
    await runner.setup()
    try:
        site = StationSite(runner, sock, app[STATION_PORT], ssl_context=tls, backlog=1024)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


async def _serve(app: web.Application, sock: socket.socket, tls: ssl.SSLContext | None,
                 ready: Callable[[], None]) -> None:
    runner = await start(app, sock, tls, handle_signals=True)
    try:
        ready()
        await asyncio.Event().wait()  # until a signal ends the run
    finally:
        await runner.cleanup()


def run(app: web.Application, sock: socket.socket, tls: ssl.SSLContext | None, *,
        loop: asyncio.AbstractEventLoop | None = None,
        ready: Callable[[], None] = lambda: None) -> None:
    """Serve `app` on `sock` until SIGINT or SIGTERM."""
    loop = loop or asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(_serve(app, sock, tls, ready))
    try:
        loop.run_until_complete(main)
    except (GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not main.done():
                main.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            others = asyncio.all_tasks(loop)
            for task in others:
                task.cancel()
            if others:
                loop.run_until_complete(asyncio.gather(*others, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
