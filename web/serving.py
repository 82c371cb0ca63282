"""`csms serve`'s loop: what `aiohttp.web.run_app` does, with the station port's site.

`run_app` builds its own `SockSite`, which hands every connection to aiohttp; ours puts the
station port's door in front (`web/station_port.py`). The rest is run_app's: SIGINT/SIGTERM
end the run gracefully (the runner's cleanup: stop listening, on_shutdown, close
connections, cleanup contexts), then remaining tasks are cancelled and the loop closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import ssl
from collections.abc import Callable

from aiohttp import web
from aiohttp.web_runner import GracefulExit

from web.keys import STATION_PORT
from web.station_port import StationSite

SHUTDOWN_TIMEOUT = 10.0  # seconds HTTP requests in flight get on shutdown
# allocations between collections of the youngest generation (CPython's default is 700), and
# how many of those (then of the middle generation's) before an older one is collected
GC_THRESHOLDS = (20_000, 20, 50)


def quiet_collector() -> None:
    """Keep the cyclic garbage collector off the hot path of a long-running server.

    Everything made at start-up (modules, compiled schemas, routes, templates) lives as long as
    the process: `gc.freeze()` takes it out of every collection's walk. Frames allocate dozens
    of short-lived objects each, almost all freed by reference counting, and the long-lived
    ones (10,000s of connections) make every older collection long: CPython's default (a young
    collection per 700 net allocations) is tuned for short scripts. Measured in the
    closed loop (docs/performance.md, round four): ~80-87 -> ~72-74 us of CPU per message and
    p99 ~290-305 -> ~185-230 ms. Cycles (rare here) wait a little longer to be collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


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
    quiet_collector()
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
