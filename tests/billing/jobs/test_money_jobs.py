"""Money jobs with the in-process broker: refund retries, give-up and operator retry,
duplicate deliveries, operator refunds and the receipt e-mail."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.billing.flows import (
    card_session,
    charge,
    paid_pix_charging,
    ready_station,
    start_body,
    stop_tx,
)
from tests.billing.jobs.conftest import JobsEnv
from tests.support.smtp import SmtpInbox
from tests.support.stations import FakeStation, station
from tests.support.wait import eventually
from web.keys import BILLING_STORE, GATEWAY, JOBS


async def pix_session(env: JobsEnv, cp: FakeStation, energy_wh: int = 12345) -> str:
    """A PIX session paid upfront (5000), charged `energy_wh`, stopped."""
    sid, tx_id = await paid_pix_charging(env, cp)
    await cp.call(stop_tx(tx_id, energy_wh))
    return sid


async def wait_job(env: JobsEnv, job_id: str, status: str, timeout: float = 10) -> dict[str, Any]:
    async def job() -> dict[str, Any]:
        return next((j for j in await env.get("/api/jobs") if j["jobId"] == job_id), {})

    return await eventually(job, lambda j: j.get("status") == status, timeout=timeout)


async def test_refund_retries_through_gateway_errors_and_the_receipt_is_mailed(
        jobs_env: JobsEnv, inbox: SmtpInbox) -> None:
    env = jobs_env
    async with station(env.ws_url, "EVSE-001") as cp:
        sid, tx_id = await paid_pix_charging(env, cp)
        env.fake.fail_next(2)  # the refund gets a 500 twice, then goes through
        await cp.call(stop_tx(tx_id, 12345))
        body = await env.wait_session(sid, "COMPLETED", "PARTIALLY_REFUNDED", timeout=10)

    assert body["payment"]["refundedAmount"] == 2948
    assert env.fake.counts["cancel"] == 1  # two 500s, one refund
    assert env.fake.counts["injected"] == 2
    job = await wait_job(env, f"{sid}:REFUND", "DONE")
    assert job["attempts"] == 3

    messages = await inbox.wait_for(1)
    mail = messages[0]
    assert mail["To"] == "driver@company.com"
    text = mail.get_body(preferencelist=("plain",)).get_content()
    html = mail.get_body(preferencelist=("html",)).get_content()
    for part in (text, html):
        assert "12.345" in part  # kWh, 3 decimals
        assert "20.52" in part  # total charged
        assert "29.48" in part  # refunded
        assert "Eletroposto Teste Ltda" in part
        assert "12345678900" not in part  # CPF masked
    receipt_url = (await env.session(sid))["receiptUrl"]
    assert receipt_url.startswith("/receipts/")
    async with env.http.get(env.url + receipt_url) as resp:
        assert resp.status == 200 and "20.52" in await resp.text()
    async with env.http.get(env.url + "/receipts/not-a-token") as resp:
        assert resp.status == 404


async def test_a_refund_that_keeps_failing_ends_failed_and_an_operator_retries_it(
        jobs_env: JobsEnv) -> None:
    env = jobs_env
    async with station(env.ws_url, "EVSE-001") as cp:
        sid, tx_id = await paid_pix_charging(env, cp)
        env.fake.fail_next(50, status=503)
        await cp.call(stop_tx(tx_id, 12345))
        job = await wait_job(env, f"{sid}:REFUND", "FAILED", timeout=15)
    assert job["attempts"] == 4
    assert "503" in job["lastError"]
    session = await env.get(f"/api/sessions/{sid}")
    refund = next(o for o in session["payment"]["operations"] if o["type"] == "REFUND")
    # a 503 leaves the outcome unknown: the refund keeps holding its room (issue 8, review F4)
    assert refund["status"] == "PENDING" and "503" in refund["error"]
    assert session["payment"]["status"] == "PAID"
    failed = await env.get("/api/jobs?status=FAILED")
    assert [j["jobId"] for j in failed] == [f"{sid}:REFUND"]

    env.fake._failures.clear()  # the gateway is back
    status, body = await env.post(f"/api/jobs/{sid}:REFUND/retry", {})
    assert status == 202 and body["job"]["status"] == "PENDING"
    await wait_job(env, f"{sid}:REFUND", "DONE")
    done = await env.wait_session(sid, "COMPLETED", "PARTIALLY_REFUNDED")
    assert done["payment"]["refundedAmount"] == 2948
    assert env.fake.counts["cancel"] == 1
    status, body = await env.post(f"/api/jobs/{sid}:REFUND/retry", {})
    assert status == 409


async def test_a_job_delivered_twice_does_nothing_the_second_time(jobs_env: JobsEnv) -> None:
    env = jobs_env
    async with station(env.ws_url, "EVSE-001") as cp:
        sid = await pix_session(env, cp)
        await env.wait_session(sid, "COMPLETED", "PARTIALLY_REFUNDED")
    jobs = env.server.app[JOBS]
    job_id = f"{sid}:REFUND"
    await wait_job(env, job_id, "DONE")
    before = dict(env.fake.counts)
    await asyncio.gather(*(jobs.run(job_id) for _ in range(5)))  # five more deliveries
    assert jobs.enqueue is not None
    await jobs.enqueue(job_id)
    await asyncio.sleep(0.3)
    assert env.fake.counts == before
    assert (await env.session(sid))["payment"]["refundedAmount"] == 2948


async def test_a_restart_in_the_middle_finishes_the_refund_once(jobs_env: JobsEnv) -> None:
    """The process dies after the refund reached the gateway but before it was recorded: the
    job is RUNNING with a lease nobody renews. The sweeper takes it up again; the same
    idempotency key makes the gateway answer without refunding twice."""
    env = jobs_env
    store = env.server.app[BILLING_STORE]
    jobs = env.server.app[JOBS]
    jobs.enqueue = None  # nothing runs jobs until we say so
    async with station(env.ws_url, "EVSE-001") as cp:
        sid = await pix_session(env, cp)
        job_id = f"{sid}:REFUND"
        await eventually(lambda: store.get_job(job_id))
    op = await store.get_operation(job_id)
    session = await store.get_session(sid)
    # the dying worker: claimed, called the gateway, never finished
    from datetime import timedelta

    from csms.domain import utcnow
    now = utcnow()
    assert await store.claim_job(job_id, now, now + timedelta(seconds=0.3)) is not None
    result = await env.server.app[GATEWAY].refund(charge_id=session.charge_id, amount=op.amount,
                                       idempotency_key=op.idempotency_key)
    assert result.success
    await asyncio.sleep(0.4)  # the lease runs out

    async def run_now(job_id: str) -> None:
        await jobs.run(job_id)

    jobs.enqueue = run_now
    await jobs.sweep()
    done = await env.wait_session(sid, "COMPLETED", "PARTIALLY_REFUNDED")
    assert done["payment"]["refundedAmount"] == 2948
    assert env.fake.counts["cancel"] == 1 and env.fake.counts["replays"] >= 1


async def test_operator_refunds_never_exceed_what_was_charged(jobs_env: JobsEnv) -> None:
    env = jobs_env
    async with station(env.ws_url, "EVSE-001") as cp:
        sid = await card_session(env, cp)
    status, body = await env.post(f"/api/sessions/{sid}/refund", {"amount": 3000,
                                                                  "reason": "too much"})
    assert status == 422 and body["error"]["code"] == "refund_exceeds_charged"
    status, body = await env.post(f"/api/sessions/{sid}/refund", {"amount": 1000,
                                                                  "reason": "slow charger"},
                                  headers={"Idempotency-Key": "ticket-42"})
    assert status == 202
    # the replay sends the same body: the reason is a parameter too (Stripe's contract)
    status, again = await env.post(f"/api/sessions/{sid}/refund", {"amount": 1000,
                                                                   "reason": "slow charger"},
                                   headers={"Idempotency-Key": "ticket-42"})
    assert status == 202 and again["refund"]["idempotencyKey"] == \
        body["refund"]["idempotencyKey"]
    status, other = await env.post(f"/api/sessions/{sid}/refund", {"amount": 1000},
                                   headers={"Idempotency-Key": "ticket-42"})
    assert status == 409 and other["error"]["code"] == "idempotency_key_reused"
    await env.wait_session(sid, "COMPLETED", "PARTIALLY_REFUNDED")
    jobs = {j["jobId"]: j for j in await env.get(f"/api/jobs?sessionId={sid}")}
    assert jobs[body["refund"]["jobId"]]["reason"] == "slow charger"
    status, _ = await env.post(f"/api/sessions/{sid}/refund", {"amount": 1053})
    assert status == 422
    status, _ = await env.post(f"/api/sessions/{sid}/refund", {"amount": 1052})
    assert status == 202
    done = await env.wait_session(sid, "COMPLETED", "REFUNDED")
    assert done["payment"]["refundedAmount"] == 2052
    assert env.fake.counts["cancel"] == 2
    status, body = await env.post(f"/api/sessions/{sid}/refund", {"amount": 1})
    assert status in (409, 422)
    status, body = await env.post(f"/api/sessions/{sid}/refund", {"amount": -1})
    assert status == 422 and body["error"]["field"] == "amount"


async def test_smtp_failures_are_retried(jobs_env: JobsEnv, inbox: SmtpInbox) -> None:
    env = jobs_env
    inbox.tempfail = 2
    async with station(env.ws_url, "EVSE-001") as cp:
        sid = await card_session(env, cp)
    job = await wait_job(env, f"receipt:{sid}", "DONE")
    assert job["attempts"] == 3
    messages = await inbox.wait_for(1)
    assert len(messages) == 1
    text = messages[0].get_body(preferencelist=("plain",)).get_content()
    assert "20.52" in text and "29.48" in text  # charged, and released from the 50.00 hold


async def test_a_capture_whose_answer_was_lost_is_retried_once_by_a_job(
        jobs_env: JobsEnv) -> None:
    env = jobs_env
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body())
        sid = started["sessionId"]
        tx_id = await charge(env, cp, sid)
        # Pagar.me carries out the capture, but the answer never arrives (twice)
        env.fake.fail_next(2, status=502, after_processing=True)
        await cp.call(stop_tx(tx_id, 12345))
        body = await env.wait_session(sid, "COMPLETED", "CAPTURED", timeout=10)
    assert body["payment"]["capturedAmount"] == 2052
    assert env.fake.counts["capture"] == 1  # captured once, the retries were replays
    job = await wait_job(env, f"{sid}:CAPTURE", "DONE")
    assert job["kind"] == "OPERATION" and job["attempts"] == 2
    capture = [o for o in body["payment"]["operations"] if o["type"] == "CAPTURE"]
    assert [(o["amount"], o["status"]) for o in capture] == [(2052, "SUCCEEDED")]


async def test_operators_refund_only_ended_sessions(jobs_env: JobsEnv) -> None:
    """While a session runs, its own settlement decides what is kept and given back."""
    env = jobs_env
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body(method="PIX", cardToken=None))
        sid = started["sessionId"]
        await env.pay_pix(started["paymentData"]["chargeId"], event_id="evt-op")
        await env.wait_session(sid, "STARTING")
        status, body = await env.post(f"/api/sessions/{sid}/refund", {"amount": 100})
        assert status == 409 and body["error"]["code"] == "session_not_settled"
        await env.post("/charge/stop", {"sessionId": sid})
        done = await env.wait_session(sid, "CANCELED", "REFUNDED")
    assert done["payment"]["refundedAmount"] == 5000


async def test_a_capture_the_gateway_refuses_is_visible_and_retryable(jobs_env: JobsEnv,
                                                                       ) -> None:
    env = jobs_env
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body())
        sid = started["sessionId"]
        tx_id = await charge(env, cp, sid)
        env.fake.fail_next(1, status=412)  # e.g. the issuer refused it this time
        await cp.call(stop_tx(tx_id, 12345))
        job = await wait_job(env, f"{sid}:CAPTURE", "FAILED")
    assert "412" in job["lastError"]
    session = await env.session(sid)
    assert session["payment"]["status"] == "AUTHORIZED"  # the hold is still there
    status, _ = await env.post(f"/api/jobs/{sid}:CAPTURE/retry", {})
    assert status == 202
    done = await env.wait_session(sid, "COMPLETED", "CAPTURED")
    assert done["payment"]["capturedAmount"] == 2052 and env.fake.counts["capture"] == 1


async def test_a_webhook_whose_fetch_failed_is_handled_when_redelivered(
        jobs_env: JobsEnv) -> None:
    env = jobs_env
    async with station(env.ws_url, "EVSE-001") as cp:
        await ready_station(env, cp)
        _, started = await env.post("/charge/start", start_body(method="PIX", cardToken=None))
        sid, charge_id = started["sessionId"], started["paymentData"]["chargeId"]
        env.fake.fail_next(1, status=503)  # the re-fetch of the charge fails
        status, _ = await env.pay_pix(charge_id, event_id="evt-retry")
        assert status == 503
        status, ack = await env.pay_pix(charge_id, event_id="evt-retry")  # redelivery
        assert status == 200 and ack["duplicate"] is False
        await cp.wait_for("RemoteStartTransaction")
    assert (await env.session(sid))["payment"]["status"] == "PAID"


async def test_a_job_whose_runs_never_finish_runs_out_of_attempts(jobs_env: JobsEnv) -> None:
    """Each run dies (or hangs) before recording an outcome: the claims still count."""
    from datetime import timedelta

    from csms.domain import utcnow

    env = jobs_env
    store = env.server.app[BILLING_STORE]
    jobs = env.server.app[JOBS]
    jobs.enqueue = None  # only this test runs the job
    async with station(env.ws_url, "EVSE-001") as cp:
        sid = await pix_session(env, cp)
    job_id = f"{sid}:REFUND"
    await eventually(lambda: store.get_job(job_id))
    for _ in range(4):  # max_attempts runs that each die mid-way
        now = utcnow()
        assert await store.claim_job(job_id, now, now + timedelta(milliseconds=1)) is not None
        await asyncio.sleep(0.01)
    await jobs.run(job_id)
    failed = await wait_job(env, job_id, "FAILED")
    assert "never finished" in failed["lastError"]
    assert env.fake.counts["cancel"] == 0
