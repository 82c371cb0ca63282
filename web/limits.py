"""Slow and large requests (slowloris): what aiohttp limits itself, and the body timeout.

aiohttp closes a connection whose headers are not complete within `keepalive_timeout` of
its opening (the same timer then bounds the idle time between requests): `handler_args`
sets it from `server.idle_timeout`. `client_max_size` caps a body (413). aiohttp has no body
read timeout, so `body_timeout` reads the body within `server.body_timeout` before any
handler runs, or answers 408 and closes the connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

from web.errors import Handler, error_response
from web.settings import ServerSettings

Middleware = Callable[[web.Request, Handler], Any]
# seconds aiohttp keeps reading (and dropping) a body nobody read before it closes: 10 by
# default, which a slow client would get after every 408
LINGER = 2.0


def app_limits(server: ServerSettings) -> dict[str, Any]:
    """`web.Application` keyword arguments for the server's limits."""
    return {"client_max_size": server.max_body_bytes,
            "handler_args": {"keepalive_timeout": server.idle_timeout,
                             "lingering_time": LINGER}}


def body_timeout(seconds: float) -> Middleware:
    @web.middleware
    async def read_body_in_time(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.can_read_body:
            try:
                async with asyncio.timeout(seconds):
                    await request.read()  # kept by aiohttp for the handler
            except TimeoutError:
                response = error_response(408, "timeout",
                                          f"the request body did not arrive within {seconds}s")
                response.force_close()
                return response
        return await handler(request)

    return read_body_in_time
