"""The TLS tests run on asyncio's loop and on uvloop's (`server.uvloop`): security profiles 2
and 3 read the TLS transport's `ssl_object` and `peercert` through the station port, and the two
loops' TLS transports are different code."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import uvloop


def pytest_asyncio_loop_factories(config: pytest.Config,
                                  item: pytest.Item) -> Mapping[str, Callable[[], Any]]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
