"""`csms worker`: runs money jobs from the Redis broker (composition root of the worker).

It opens billing's store (jobs need no charging data: a session carries what billing recorded
of its transaction), the gateway and the mailer, consumes the job stream and runs the outbox
sweeper, so jobs whose delivery was lost (Redis down, a worker killed) are enqueued again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from billing.parts import BillingParts
from billing.settings import BillingConfig
from csms.background import stop_if_cancelled, wait_cancelled
from csms.settings import ConfigError

log = logging.getLogger(__name__)


async def run_worker(settings: BillingConfig, stop: asyncio.Event | None = None) -> None:
    from taskiq.api import run_receiver_task

    from billing.jobs.broker import connect_jobs

    if settings.tasks.broker != "redis":
        raise ConfigError("tasks.broker: `csms worker` consumes the redis broker; with the "
                          "in-process broker, `csms serve` runs the jobs itself")
    stop = stop or asyncio.Event()
    parts = BillingParts.from_settings(settings)
    jobs = parts.jobs
    broker = connect_jobs(settings, jobs)
    await parts.open()

    async def consume() -> None:
        """Run the receiver; if Redis goes away, wait and start consuming again."""
        while True:
            try:
                await broker.startup()
                log.info("consuming %s at %s", settings.tasks.queue_name,
                         settings.tasks.redis_url)
                await run_receiver_task(broker, max_async_tasks=20, run_startup=False)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("job broker unavailable (%s); retrying in 1s", exc)
            stop_if_cancelled()
            await asyncio.sleep(1)

    loops = [asyncio.create_task(consume(), name="receiver"),
             asyncio.create_task(jobs.sweep_forever(), name="outbox-sweeper")]
    print("csms worker ready", flush=True)
    try:
        await stop.wait()
    finally:
        await wait_cancelled(loops)  # stop taking deliveries; jobs in flight keep running
        await jobs.drain(timeout=min(30.0, settings.tasks.lease / 2))
        with contextlib.suppress(Exception):
            await broker.shutdown()
        await parts.close()


def main(settings: BillingConfig) -> int:
    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop)

    asyncio.run(runner())
    return 0
