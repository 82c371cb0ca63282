"""Money jobs on taskiq: refunds run as tasks, retried with backoff until they succeed.

`make_broker(settings)` returns the in-process broker for the embedded default; the task gets
the billing service from the broker's state, set when the app starts.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from taskiq import AsyncBroker, Context, InMemoryBroker, TaskiqDepends

from csms.config import Settings

log = logging.getLogger(__name__)

# Waits between refund attempts (seconds), then the last one repeats: 10 s, 30 s, 2 min, ...
REFUND_BACKOFF = (1, 10, 30, 120, 600, 3600)


def make_broker(settings: Settings) -> AsyncBroker:
    if settings.tasks.broker == "redis":
        raise NotImplementedError("the redis broker is not wired yet; use tasks.broker=inmemory")
    return InMemoryBroker()


def register_tasks(broker: AsyncBroker) -> Any:
    """Declare our tasks on `broker`; returns the refund task."""

    @broker.task(task_name="billing.refund")
    async def refund(idempotency_key: str, context: Context = TaskiqDepends()) -> bool:  # noqa: B008
        service = context.state.billing
        attempt = 0
        while True:
            try:
                if await service.run_refund(idempotency_key):
                    return True
            except Exception:
                log.exception("refund %s: attempt %d crashed", idempotency_key, attempt + 1)
            delay = REFUND_BACKOFF[min(attempt, len(REFUND_BACKOFF) - 1)]
            attempt += 1
            log.warning("refund %s: gateway unavailable, retry %d in ~%ss", idempotency_key,
                        attempt, delay)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))

    return refund
