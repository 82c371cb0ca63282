"""Fixtures shared by the suite: settings on a temp dir, the app on a real port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import uvloop
from aiohttp.test_utils import TestServer

from tests.support.mongo import mongo_database, mongo_server  # noqa: F401  (fixtures)
from tests.support.server import server_for
from tests.support.smtp import smtp_inbox  # noqa: F401  (a fixture for every test)
from web.app import create_app
from web.settings import Settings, load_settings


def pytest_asyncio_loop_factories(config: pytest.Config,
                                  item: pytest.Item) -> Mapping[str, Callable[[], Any]]:
    """Tests marked `both_loops` run on asyncio's loop and on uvloop's, the two loops `csms
    serve` runs on (`server.uvloop`): the station websocket, the door on the shared port and TLS
    use their transports directly, and the two loops' transports are different code. Every
    other test runs on asyncio's loop, as before."""
    if item.get_closest_marker("both_loops") is not None:
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


def make_settings(tmp_path: Path, **env: str) -> Settings:
    environ = {
        "CSMS_STORE__SQLITE_PATH": str(tmp_path / "csms.db"),
        "CSMS_MAIL__OUTBOX_DIR": str(tmp_path / "outbox"),
        "CSMS_OCPP__COMMAND_TIMEOUT": "3",
    }
    environ.update(env)
    return load_settings(None, environ)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def aiohttp_server() -> AsyncIterator[Callable[..., Any]]:
    """pytest-aiohttp's factory, serving our app behind the station port as `csms serve`
    does (tests/support/server.py); other apps (the fake gateways) as before."""
    servers: list[TestServer] = []

    async def go(app: Any, *, host: str = "127.0.0.1", port: int | None = None,
                 **kwargs: Any) -> TestServer:
        server = server_for(app, host=host, port=port)
        await server.start_server(**kwargs)
        servers.append(server)
        return server

    yield go
    while servers:
        await servers.pop().close()


@pytest.fixture
def start_server(aiohttp_server: Any) -> Callable[..., Any]:
    """Start the full app for `settings` on a real port; returns the TestServer."""

    async def start(settings: Settings) -> TestServer:
        return await aiohttp_server(create_app(settings))

    return start


@pytest.fixture
async def server(start_server: Callable[..., Any], settings: Settings) -> TestServer:
    return await start_server(settings)


@pytest.fixture
def ws_url(server: TestServer) -> str:
    return f"ws://{server.host}:{server.port}/ocpp"


@pytest.fixture
def http_url(server: TestServer) -> str:
    return f"http://{server.host}:{server.port}"
