"""The app on a real port, served the way `csms serve` serves it: behind the station port.

aiohttp's `TestServer` listens with its own `SockSite`, so station upgrades would reach the app
through aiohttp's `/ocpp/{stationId}` route only. `CsmsTestServer` listens with `StationSite`
(web/station_port.py), as `csms serve` does, so the suite's stations use the lean websocket.
"""

from __future__ import annotations

import socket
from typing import Any

from aiohttp.test_utils import TestServer
from yarl import URL

from web.keys import STATION_PORT
from web.station_port import StationSite


class CsmsTestServer(TestServer):
    async def start_server(self, loop: Any = None, **kwargs: Any) -> None:
        if self.runner:
            return
        self._ssl = kwargs.pop("ssl", None)
        self.runner = await self._make_runner(handler_cancellation=True, **kwargs)
        await self.runner.setup()
        sock = socket.create_server((self.host, self.port or 0))
        self.host, self.port = sock.getsockname()[:2]
        site = StationSite(self.runner, sock, self.app[STATION_PORT], ssl_context=self._ssl)
        await site.start()
        if not self.scheme:
            self.scheme = "https" if self._ssl else "http"
        self._root = URL(f"{self.scheme}://{self.host}:{self.port}")


def server_for(app: Any, **kwargs: Any) -> TestServer:
    """A CsmsTestServer for our app, aiohttp's TestServer for anything else (fakes)."""
    if STATION_PORT in app:
        return CsmsTestServer(app, **kwargs)
    return TestServer(app, **kwargs)
