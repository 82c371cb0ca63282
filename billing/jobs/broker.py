"""taskiq wiring for money jobs: the broker factory and the one task that runs a job.

The task carries only the job id; everything else (what to do, the idempotency key, the retry
schedule) lives in the outbox (`billing.jobs`), so a redelivered or duplicated message is
harmless.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from taskiq import AsyncBroker, Context, InMemoryBroker, TaskiqDepends

from billing.settings import BillingConfig

log = logging.getLogger(__name__)

TASK_NAME = "billing.run_money_job"


def make_broker(settings: BillingConfig) -> AsyncBroker:
    """In-process broker for the embedded default; Redis for production.

    With Redis we use `RedisStreamBroker`: messages sit in a stream read through a consumer
    group and are acknowledged only after the task ran. A worker that dies mid-task leaves its
    message pending; another worker reclaims it (XAUTOCLAIM) once it has been idle for
    `tasks.lease` seconds. The list and pub/sub brokers drop a message as soon as it is
    popped, so a crash there would lose the job (the outbox would still re-enqueue it, later).
    """
    if settings.tasks.broker == "redis":
        lease_ms = int(settings.tasks.lease * 1000)
        return _resilient_stream_broker()(
            settings.tasks.redis_url, queue_name=settings.tasks.queue_name,
            consumer_group_name="csms-workers", idle_timeout=lease_ms,
            # a new group reads from the start of the stream: acked entries are deleted, so
            # that is exactly the work sent before the group existed (e.g. after a restart)
            consumer_id="0",
            unacknowledged_lock_timeout=max(1.0, settings.tasks.lease / 2),
            xread_block=1000, socket_connect_timeout=5, socket_timeout=10)
    return InMemoryBroker()


def _resilient_stream_broker() -> type[AsyncBroker]:
    """`RedisStreamBroker` that survives Redis going away.

    taskiq's receiver restarts `listen()` in a tight loop when it fails and never runs
    `startup()` again, so after a Redis restart (which forgets the consumer group) a worker
    would spin on NOGROUP for ever. This `listen()` re-creates the group and backs off while
    Redis is unreachable.
    """
    from redis.asyncio import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ResponseError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from taskiq_redis import RedisStreamBroker

    class ResilientRedisStreamBroker(RedisStreamBroker):
        def _ack_generator(self, id: str, queue_name: str) -> Any:
            """Acknowledge, then delete the entry: XACK alone keeps every message ever sent
            in the stream, so Redis memory would grow for ever."""

            async def ack() -> None:
                async with Redis(connection_pool=self.connection_pool) as redis:
                    async with redis.pipeline(transaction=True) as pipe:
                        pipe.xack(queue_name, self.consumer_group_name, id)
                        pipe.xdel(queue_name, id)
                        await pipe.execute()

            return ack

        async def listen(self) -> Any:
            while True:
                try:
                    async for message in super().listen():
                        yield message
                except ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    log.warning("job stream or consumer group missing (Redis restarted?); "
                                "re-creating it")
                    await self._redeclare()
                except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                    log.warning("Redis unreachable (%s); retrying in 1s", exc)
                    await asyncio.sleep(1)

        async def _redeclare(self) -> None:
            try:
                await self._declare_consumer_group()
            except (RedisConnectionError, RedisTimeoutError, OSError):
                await asyncio.sleep(1)

    return ResilientRedisStreamBroker


def register_money_task(broker: AsyncBroker) -> Any:
    """Declare the money-job task on `broker`; returns it (call `.kiq(job_id)`)."""

    @broker.task(task_name=TASK_NAME)
    async def run_money_job(job_id: str,
                            context: Context = TaskiqDepends()) -> None:  # noqa: B008
        await context.state.jobs.deliver(job_id)

    return run_money_job


def connect_jobs(settings: BillingConfig, jobs: Any) -> AsyncBroker:
    """Make the broker, declare the task, and let `jobs` (a `MoneyJobs`) enqueue through it
    and run from it."""
    broker = make_broker(settings)
    task = register_money_task(broker)
    broker.state.jobs = jobs

    async def enqueue(job_id: str) -> None:
        await task.kiq(job_id)

    jobs.enqueue = enqueue
    return broker
