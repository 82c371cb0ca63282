"""`eventually()`: poll what an outside observer sees until it holds, or fail with it."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T] | T],
                     until: Callable[[T], object] = bool, *, timeout: float = 5.0,
                     interval: float = 0.05) -> T:
    """Call `probe` (sync or async) until `until(value)` is true and return that value.

    Raises TimeoutError naming the last value seen, so a failure says what was observed.
    """
    last: object = None
    try:
        async with asyncio.timeout(timeout):
            while True:
                value = probe()
                if inspect.isawaitable(value):
                    value = await value
                last = value
                if until(value):  # type: ignore[arg-type]
                    return value  # type: ignore[return-value]
                await asyncio.sleep(interval)
    except TimeoutError:
        raise TimeoutError(f"not within {timeout}s; last seen: {last!r}") from None
