"""Property: whatever order and duplication of events hits a session, the real service never
captures twice, never captures and voids, and never captures more than was authorized.

Each example runs the whole app (real websocket station, real stores, the sandbox gateway)
and throws a random sequence of events at one card session: StopTransactions (repeated, with
other numbers), meter values, driver stops, settlements run again (a duplicate job),
reconciliation passes and start timeouts.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ocpp.v16 import call

from csms.keys import TASKS
from tests.billing.flows import PRICE, T0
from tests.conftest import make_settings
from tests.support.stations import station
from web.app import create_app
from web.keys import BILLING


class RecordingGateway:
    """The real gateway, with a log of every mutating call that reached it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str, int | None, bool]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _wrap(name: str) -> Any:
        async def method(self: RecordingGateway, **kwargs: Any) -> Any:
            result = await getattr(self.inner, name)(**kwargs)
            self.calls.append((name, kwargs["idempotency_key"], kwargs.get("amount"),
                               result.success))
            return result
        return method

    authorize = _wrap("authorize")
    capture = _wrap("capture")
    void = _wrap("void")
    refund = _wrap("refund")
    create_pix = _wrap("create_pix")


EVENTS = st.one_of(
    st.tuples(st.just("meter"), st.integers(0, 40_000)),
    st.tuples(st.just("stop"), st.integers(0, 40_000)),
    st.just(("restop",)),
    st.just(("driver_stop",)),
    st.just(("settle",)),
    st.just(("reconcile",)),
    st.just(("expire_start",)),
)


async def scenario(tmp: Path, amount: int, starts: bool, events: list[tuple]) -> None:
    app = create_app(make_settings(tmp, CSMS_OCPP__REMOTE_START_TIMEOUT="30",
                                   CSMS_BILLING__SANDBOX_PATH=str(tmp / "sandbox.db")))
    server = TestServer(app)
    await server.start_server()
    try:
        service = app[BILLING]
        recorder = RecordingGateway(service.gateway)
        service.gateway = recorder  # the ledger's: requests and job handlers share it
        url = f"http://{server.host}:{server.port}"
        async with aiohttp.ClientSession() as http, \
                station(f"ws://{server.host}:{server.port}/ocpp", "EVSE-P") as cp:
            await cp.boot()
            await cp.status(1, "Available")
            async with http.post(f"{url}/charge/start", json={
                    "chargePointId": "EVSE-P", "connectorId": 1, "method": "CREDIT_CARD",
                    "amount": amount, "email": "d@example.com", "cpf": "12345678900",
                    "cardToken": "tok_ok", "charger": PRICE}) as resp:
                assert resp.status == 200, await resp.text()
                sid = (await resp.json())["sessionId"]
            remote = await cp.wait_for("RemoteStartTransaction")
            tx_id = None
            first_stop: int | None = None
            if starts:
                start = await cp.call(call.StartTransaction(
                    connector_id=1, id_tag=remote["id_tag"], meter_start=0, timestamp=T0))
                tx_id = start.transaction_id
            last_stop: call.StopTransaction | None = None
            for event in events:
                kind = event[0]
                if kind == "meter" and tx_id is not None:
                    await cp.call(call.MeterValues(connector_id=1, transaction_id=tx_id,
                                                   meter_value=[{"timestamp": T0, "sampledValue":
                                                                 [{"value": str(event[1])}]}]))
                elif kind == "stop" and tx_id is not None:
                    last_stop = call.StopTransaction(meter_stop=event[1], timestamp=T0,
                                                     transaction_id=tx_id)
                    await cp.call(last_stop)
                    first_stop = event[1] if first_stop is None else first_stop
                elif kind == "restop" and last_stop is not None:
                    await cp.call(last_stop)
                elif kind == "driver_stop":
                    async with http.post(f"{url}/charge/stop", json={"sessionId": sid}) as r:
                        assert r.status == 200
                elif kind == "settle":
                    await service.settle(sid)
                elif kind == "reconcile":
                    await service.reconcile()
                elif kind == "expire_start":
                    await service.expire_start(sid)
            # let spawned settlements and jobs finish, then sweep once more
            for _ in range(3):
                await asyncio.sleep(0.05)
                await asyncio.gather(*app[TASKS].running(), return_exceptions=True)
                await service.reconcile()
            session = await service.get(sid)

        calls = recorder.calls
        effective = Counter(name for name, _, _, ok in calls if ok)
        keys = {(name, key) for name, key, _, _ in calls}
        # each kind of operation is sent with one idempotency key only, so it acts at most once
        assert len({key for name, key in keys if name == "capture"}) <= 1, calls
        assert len({key for name, key in keys if name == "void"}) <= 1, calls
        assert not (effective["capture"] and effective["void"]), calls
        captured = [amt for name, _, amt, ok in calls if name == "capture" and ok]
        assert all(amt is not None and 0 < amt <= amount for amt in captured), calls
        assert session.captured_amount <= session.authorized_amount == amount

        if first_stop is not None:  # the station stopped: the money is settled, exactly so
            energy = first_stop
            if energy == 0:
                assert session.payment_status.value == "VOIDED", session
            else:
                tariff = service.session_tariff(session)
                expected = min(tariff.cost_cents(energy), amount)
                assert session.payment_status.value == "CAPTURED", session
                assert session.captured_amount == expected
        elif session.status.value in ("CANCELED", "FAILED"):
            assert session.payment_status.value == "VOIDED", session
        else:  # still charging or stopping: the hold stays, nothing moved
            assert session.payment_status.value == "AUTHORIZED", session
            assert not effective["capture"] and not effective["void"]
    finally:
        await server.close()


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(amount=st.integers(100, 10_000), starts=st.booleans(),
       events=st.lists(EVENTS, max_size=8))
def test_no_sequence_of_events_moves_money_twice(amount: int, starts: bool,
                                                 events: list[tuple]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(scenario(Path(tmp), amount, starts, events))
