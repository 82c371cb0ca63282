"""A VOID the job system gave up on (the gateway kept failing) is sent again by the
reconciliation sweep less and less often (the wait doubles up to billing.release_retry_max),
with each attempt recorded on the job the jobs page shows; it succeeds once the gateway is back."""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.billing.flows import open_env as open_flow_env
from tests.billing.flows import ops, ready_station, start_body
from tests.support.stations import station
from tests.support.wait import eventually

FAST = {"CSMS_TASKS__RETRY_DELAYS": "[0.05]", "CSMS_TASKS__MAX_ATTEMPTS": "2",
        "CSMS_TASKS__SWEEP_INTERVAL": "0.05", "CSMS_BILLING__RECONCILE_INTERVAL": "0.1",
        "CSMS_BILLING__RELEASE_RETRY_MAX": "0.8"}


def _gap(job: dict[str, Any]) -> float:
    """The wait the last attempt set before the next one (seconds)."""
    return (datetime.fromisoformat(job["nextAttemptAt"])
            - datetime.fromisoformat(job["updatedAt"])).total_seconds()


async def test_a_given_up_void_is_retried_less_and_less_often_until_it_succeeds(
        tmp_path: Path, aiohttp_server: Any) -> None:
    async with open_flow_env("pagarme", tmp_path, aiohttp_server, FAST) as env:
        assert env.fake is not None
        async with station(env.ws_url, "EVSE-001") as cp:
            await ready_station(env, cp)
            status, started = await env.post("/charge/start", start_body())
            assert status == 200, started
            sid = started["sessionId"]
            await cp.wait_for("RemoteStartTransaction")
            env.fake.fail_next(10_000, 503)  # the gateway is down from now on
            status, _ = await env.post("/charge/stop", {"sessionId": sid})
            assert status == 200
        key = f"{sid}:VOID"

        async def job() -> dict[str, Any]:
            found = [j for j in await env.get(f"/api/jobs?sessionId={sid}") if j["jobId"] == key]
            assert len(found) == 1
            return found[0]

        seen: dict[int, dict[str, Any]] = {}

        def record(j: dict[str, Any]) -> bool:
            if j["status"] == "FAILED":
                seen.setdefault(j["attempts"], j)
            return j["attempts"] >= 8

        await eventually(job, record, timeout=20)
        # the job gave up after its own 2 attempts; each later one is the sweep's, recorded
        deferred = [seen[n] for n in sorted(seen) if n > 2]
        gaps = [_gap(j) for j in deferred]
        assert len(gaps) >= 4, seen
        assert gaps[0] >= 0.09  # first: billing.reconcile_interval
        for earlier, later in itertools.pairwise(gaps):
            assert later >= min(earlier * 1.5, 0.7), gaps  # doubling up to the cap
        assert max(gaps) <= 0.8 + 0.01, gaps  # never more than billing.release_retry_max
        assert all(j["lastError"] for j in deferred)
        before = await env.session(sid)
        assert before["status"] == "CANCELED" and before["payment"]["status"] == "AUTHORIZED"
        # every send was an attempt the job shows (at most 2 tries per attempt: gateway_attempts)
        sends = sum(1 for r in env.fake.requests if r["method"] == "DELETE")
        attempts = (await job())["attempts"]
        assert sends <= 2 * attempts, (sends, attempts)

        env.fake._failures.clear()  # the gateway is back
        done = await env.wait_session(sid, "CANCELED", "VOIDED", timeout=10)
        assert [(o[0], o[2]) for o in ops(done)] == [("AUTHORIZE", "SUCCEEDED"),
                                                      ("VOID", "SUCCEEDED")]
        finished = await eventually(job, lambda j: j["status"] == "DONE", timeout=10)
        assert finished["jobId"] == key
        assert env.gateway_count("cancel") == 1
