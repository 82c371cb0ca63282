"""Background loops that stop when asked, even if a library swallowed the cancellation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


def doubling_delay(first: float, failures: int, most: float) -> float:
    """Seconds to wait after `failures` in a row: `first` after one, doubled for each further
    one, at most `most` (the exponent is bounded so that no count overflows)."""
    return min(first * 2 ** min(max(failures - 1, 0), 30), most)


def stop_if_cancelled() -> None:
    """Raise CancelledError if this task was asked to stop.

    Some libraries catch CancelledError inside a call and carry on; the request is then lost
    and a `while True` loop would sleep on for ever (and hang shutdown). Python 3.11 still
    counts the request in `Task.cancelling()`, so loops check it on every turn.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def wait_cancelled(tasks: list[asyncio.Task], timeout: float = 5.0) -> None:
    """Cancel `tasks` and wait for them, but not for ever."""
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=timeout)


class TaskSet:
    """Work handed off a station's message loop or a request (a call back to the same
    station, a settlement), supervised: failures are logged, and the owner cancels and awaits
    whatever is left when it shuts down."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    def running(self) -> list[asyncio.Task[Any]]:
        return list(self._tasks)

    async def stop(self) -> None:
        """Cancel what is still running and wait for it."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
