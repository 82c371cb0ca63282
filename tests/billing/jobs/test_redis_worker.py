"""Production job path: `csms serve` only enqueues to a real redis-server; `csms worker`
processes run the jobs. Workers are killed, Redis is stopped: nothing is lost or repeated."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.billing.flows import paid_pix_charging, stop_tx
from tests.billing.jobs.conftest import JobsEnv, RedisServer
from tests.support.smtp import SmtpInbox
from tests.support.stations import station
from tests.support.wait import eventually
from web.keys import BILLING_STORE, JOBS

pytestmark = pytest.mark.redis


async def test_worker_refunds_the_unused_pix_and_mails_the_receipt(
        jobs_env: JobsEnv, inbox: SmtpInbox) -> None:
    env = jobs_env
    env.start_worker()
    async with station(env.ws_url, "EVSE-001") as cp:
        sid, tx_id = await paid_pix_charging(env, cp, "evt-r1")
        await cp.call(stop_tx(tx_id, 12345))
        body = await env.wait_session(sid, "COMPLETED", "PARTIALLY_REFUNDED", timeout=20)
    assert (body["payment"]["capturedAmount"], body["payment"]["refundedAmount"]) == \
        (2052, 2948)
    messages = await inbox.wait_for(1, timeout=20)
    text = messages[0].get_body(preferencelist=("plain",)).get_content()
    assert "20.52" in text and "29.48" in text and "12.345" in text

    # the same job delivered again through Redis does nothing
    before = dict(env.fake.counts)
    jobs = env.server.app[JOBS]
    assert jobs.enqueue is not None
    await jobs.enqueue(f"{sid}:REFUND")
    await jobs.enqueue(f"receipt:{sid}")
    await asyncio.sleep(1.5)
    assert env.fake.counts == before
    assert len(inbox.messages) == 1
    # handled messages are deleted from the stream, so Redis does not grow with history
    redis = Redis.from_url(env.environ["CSMS_TASKS__REDIS_URL"])
    try:
        assert await redis.xlen(env.environ["CSMS_TASKS__QUEUE_NAME"]) == 0
    finally:
        await redis.aclose()


async def test_a_worker_killed_mid_refund_loses_nothing_and_repeats_nothing(
        jobs_env: JobsEnv) -> None:
    env = jobs_env
    first = env.start_worker()

    def kill_on_refund(request: Any) -> None:
        # The gateway has just carried out the refund; the worker dies before it hears back.
        if request.method == "DELETE" and first.poll() is None:
            env.kill_worker(first)

    async with station(env.ws_url, "EVSE-001") as cp:
        sid, tx_id = await paid_pix_charging(env, cp, "evt-k1")
        env.fake.on_processed = kill_on_refund
        await cp.call(stop_tx(tx_id, 12345))
        await eventually(lambda: first.poll() is not None, timeout=20)
        session = await env.session(sid)
        assert session["payment"]["status"] == "PAID"  # refunded at the gateway, not recorded

        env.start_worker()  # a new worker takes the job up again after the lease
        body = await env.wait_session(sid, "COMPLETED", "PARTIALLY_REFUNDED", timeout=30)
    assert body["payment"]["refundedAmount"] == 2948
    assert env.fake.counts["cancel"] == 1  # applied exactly once
    assert env.fake.counts["replays"] >= 1  # the retry reused the idempotency key
    refunds = [o for o in body["payment"]["operations"] if o["type"] == "REFUND"]
    assert [(o["amount"], o["status"]) for o in refunds] == [(2948, "SUCCEEDED")]


async def test_jobs_wait_out_a_redis_outage(jobs_env: JobsEnv, redis_server: RedisServer,
                                            ) -> None:
    if not redis_server.restartable:
        pytest.skip("cannot stop an external Redis (CSMS_TEST_REDIS_URL)")
    env = jobs_env
    env.start_worker()
    store = env.server.app[BILLING_STORE]
    async with station(env.ws_url, "EVSE-001") as cp:
        sid, tx_id = await paid_pix_charging(env, cp, "evt-o1")
        redis_server.stop()
        await cp.call(stop_tx(tx_id, 12345))
        await eventually(lambda: store.get_job(f"{sid}:REFUND"), timeout=10)
        await asyncio.sleep(1.0)
        session = await env.session(sid)
        assert session["payment"]["status"] == "PAID"  # waiting, not lost
        assert env.fake.counts["cancel"] == 0

        redis_server.start()
        body = await env.wait_session(sid, "COMPLETED", "PARTIALLY_REFUNDED", timeout=30)
    assert body["payment"]["refundedAmount"] == 2948
    assert env.fake.counts["cancel"] == 1


async def test_a_worker_asked_to_stop_finishes_the_job_in_flight(jobs_env: JobsEnv) -> None:
    env = jobs_env
    worker = env.start_worker()

    def stop_on_refund(request: Any) -> None:
        if request.method == "DELETE" and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)  # mid-refund: the answer is still on its way

    async with station(env.ws_url, "EVSE-001") as cp:
        sid, tx_id = await paid_pix_charging(env, cp, "evt-t1")
        env.fake.on_processed = stop_on_refund
        env.fake.response_delay = 0.3  # well inside the drain window (half the 2 s lease)
        await cp.call(stop_tx(tx_id, 12345))
        await eventually(lambda: worker.poll() is not None, timeout=20)
    assert worker.returncode == 0
    # no other worker exists: the stopping worker finished the refund before it exited
    body = await env.session(sid)
    assert (body["payment"]["status"], body["payment"]["refundedAmount"]) == \
        ("PARTIALLY_REFUNDED", 2948)
    assert env.fake.counts["cancel"] == 1
