"""Background loops that stop when asked, even if a library swallowed the cancellation."""

from __future__ import annotations

import asyncio


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
