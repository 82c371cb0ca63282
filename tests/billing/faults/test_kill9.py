"""kill -9 at each billing step (issue 8, "Keep it fixed").

`csms serve` runs as a real process on the fake Pagar.me, a real charger talks OCPP 1.6 to it,
and the server is SIGKILLed at one step of a paid card session or a PIX session: after the
start request, at the hold (the gateway carried it out, the answer never arrived), after
StartTransaction, during metering, after StopTransaction (the capture or refund never reached
the gateway), and at the capture or refund itself. It restarts on the same data, the charger
reconnects and resends what was never answered (as a real charger resends StopTransaction),
and the session must end captured once with the right amount, or voided, or refunded, with
nothing left PENDING and no second capture, void or refund at the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from ocpp.charge_point import ChargePoint
from ocpp.v16 import call

from tests.billing.flows import T0, start_body, stop_tx
from tests.support.csms_process import CsmsProcess
from tests.support.fake_pagarme import FakePagarme
from tests.support.net import free_port
from tests.support.pagarme import SECRET_KEY, start_fake_pagarme
from tests.support.stations import FakeStation, basic_auth, station
from tests.support.wait import eventually

T = TypeVar("T")

FAST = {
    "CSMS_BILLING__GATEWAY_ATTEMPTS": "1",
    "CSMS_BILLING__RECONCILE_INTERVAL": "0.3",
    "CSMS_TASKS__RETRY_DELAYS": "[0.2, 0.3, 0.5]",
    "CSMS_TASKS__MAX_ATTEMPTS": "8",
    "CSMS_TASKS__LEASE": "1",
    "CSMS_TASKS__SWEEP_INTERVAL": "0.2",
    "CSMS_OCPP__REMOTE_START_TIMEOUT": "8",  # a restart under a loaded CI takes seconds
    "CSMS_OCPP__COMMAND_TIMEOUT": "3",
}
HOLD, COST, PIX_REFUND = 5000, 1700, 3300  # 10 kWh at 1.50 + 2.00 fee
TERMINAL = {"COMPLETED", "CANCELED", "FAILED"}


class Killed(Exception):
    """The server died while the step was in flight."""


@dataclass
class Rig:
    csms: CsmsProcess
    fake: FakePagarme
    http: aiohttp.ClientSession
    point: str
    cp: ChargePoint | None = None  # a 1.6 FakeStation here; a 2.0.1 one in test_kill9_201
    stack: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)
    dead: asyncio.Event = field(default_factory=asyncio.Event)
    up: asyncio.Event = field(default_factory=asyncio.Event)
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # every connection
    start_action = "RemoteStartTransaction"

    # the kill and the restart -----------------------------------------------------------------
    def kill(self, where: str) -> None:
        self.csms.kill(where)
        self.up.clear()
        self.dead.set()

    def kill_at_gateway(self, method: str, *, before: bool = False, path_end: str = "") -> None:
        """Kill the server at exactly this gateway step, whenever it comes (in a request, a job,
        or the next start-up's reconciliation): once the fake has carried it out (the answer
        never arrives), or `before` it does (the fake drops it: the server died just before
        sending it)."""

        def hook(request: Any) -> None:
            if request.method == method and request.path.endswith(path_end):
                self.fake.on_received = self.fake.on_processed = None
                self.kill(f"{method} {path_end}".strip())
                if before:
                    self.fake.fail_next(1, status=503)  # never carried out

        if before:
            self.fake.on_received = hook
        else:
            self.fake.on_processed = hook

    async def supervise(self) -> None:
        """Restart the server on the same data whenever it was killed; reconnect the charger."""
        while True:
            await self.dead.wait()
            await self.csms.wait_dead()
            await self.stack.aclose()
            self.cp = None
            self.dead.clear()
            if await self.csms.start():
                await self.connect()
                self.up.set()

    async def step(self, name: str, work: Awaitable[T]) -> T | None:
        """Run one step; when it is the kill point, the server dies right after it. Returns the
        step's result, or None when the server died before answering it (then once it is up
        again)."""
        await self.up.wait()
        task = asyncio.ensure_future(work)
        died = asyncio.ensure_future(self.dead.wait())
        await asyncio.wait({task, died}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await asyncio.sleep(0.05)  # an answer already on the wire may still arrive
        result = None
        if task.done() and not task.cancelled() and task.exception() is None:
            result = task.result()
        else:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        died.cancel()
        if self.point == name and self.up.is_set():
            self.kill(name)
        await self.up.wait()
        return result

    # the charger and the driver ---------------------------------------------------------------
    async def connect(self) -> ChargePoint:
        self.stack = contextlib.AsyncExitStack()
        cp: FakeStation = await self.stack.enter_async_context(
            station(self.csms.ws_url, "EVSE-001"))
        self.cp = cp
        cp.received = self.received
        await cp.boot()
        await cp.status(1, "Available")
        return cp

    async def post(self, path: str, body: Any, **kw: Any) -> tuple[int, Any]:
        async with self.http.post(self.csms.url + path, json=body, **kw) as resp:
            return resp.status, await resp.json()

    async def get(self, path: str) -> Any:
        """GET once the server is up (again), retried across a restart."""
        while True:
            await self.up.wait()
            try:
                async with self.http.get(self.csms.url + path) as resp:
                    assert resp.status == 200, await resp.text()
                    return await resp.json()
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.1)

    async def charger(self, request: Any) -> Any:
        assert self.cp is not None
        return await self.cp.call(request)

    async def remote_start(self, timeout: float = 5) -> dict[str, Any] | None:
        """The RemoteStartTransaction (RequestStartTransaction on 2.0.1) the charger got, on
        any connection, or None."""
        with contextlib.suppress(TimeoutError):
            return await eventually(lambda: next(
                (p for n, p in self.received if n == self.start_action), None),
                lambda p: p is not None, timeout=timeout)
        return None

    async def session_id(self) -> str:
        sessions = await eventually(lambda: self.get("/api/sessions"), bool)
        assert len(sessions) == 1, sessions
        return str(sessions[0]["sessionId"])

    async def settled(self, sid: str, timeout: float = 30) -> dict[str, Any]:
        """The session once it has ended, nothing is PENDING and every job has finished."""

        async def look() -> dict[str, Any]:
            return dict(await self.get(f"/api/sessions/{sid}"))

        def done(body: dict[str, Any]) -> bool:
            pending = [o for o in body["payment"]["operations"] if o["status"] == "PENDING"]
            running = [j for j in body["jobs"] if j["status"] in ("PENDING", "RUNNING")]
            return body["status"] in TERMINAL and not pending and not running and \
                body["payment"]["status"] not in ("PENDING", "AUTHORIZED") and \
                not (body["payment"]["status"] == "PAID" and body["status"] != "COMPLETED")

        return await eventually(look, done, timeout=timeout, interval=0.1)


@pytest.fixture
async def rig(request: pytest.FixtureRequest, tmp_path: Path,
              aiohttp_server: Any) -> AsyncIterator[Rig]:
    async with open_rig(request, tmp_path, aiohttp_server, Rig) as opened:
        yield opened


R = TypeVar("R", bound=Rig)


@contextlib.asynccontextmanager
async def open_rig(request: pytest.FixtureRequest, tmp_path: Path, aiohttp_server: Any,
                   cls: type[R]) -> AsyncIterator[R]:
    """A `cls` rig killed at `request.param`: the server on the fake Pagar.me, restarted
    whenever it dies, with its charger connected."""
    fake = await start_fake_pagarme(aiohttp_server)
    environ = {
        **FAST,
        "CSMS_STORE__SQLITE_PATH": str(tmp_path / "csms.db"),
        "CSMS_MAIL__OUTBOX_DIR": str(tmp_path / "outbox"),
        "CSMS_BILLING__GATEWAY": "pagarme",
        "CSMS_BILLING__PAGARME__BASE_URL": fake.base_url,
        "CSMS_BILLING__PAGARME__SECRET_KEY": SECRET_KEY,
        "CSMS_BILLING__PAGARME__WEBHOOK_USER": "hook",
        "CSMS_BILLING__PAGARME__WEBHOOK_PASSWORD": "hookpw",
    }
    if request.node.get_closest_marker("mongodb"):  # the production store instead of SQLite
        environ.update(request.getfixturevalue("mongo_database").env())
    csms = CsmsProcess(tmp_path, environ, free_port())
    assert await csms.start()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        rig = cls(csms, fake, http, request.param)
        supervisor = asyncio.create_task(rig.supervise())
        try:
            await rig.connect()
            rig.up.set()
            yield rig
        except BaseException:
            print(csms.log()[-6000:])
            raise
        finally:
            supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await supervisor
            await rig.stack.aclose()
            csms.stop()


def effects(fake: FakePagarme) -> dict[str, int]:
    """What the gateway carried out (replays of a known key are not effects)."""
    return {kind: fake.counts.get(kind, 0) for kind in ("orders", "capture", "cancel")}


GATEWAY_STEPS = {"hold": "POST /orders", "pix_order": "POST /orders",
                 "capture_unsent": "POST /capture",
                 "capture": "POST /capture", "refund_unsent": "DELETE", "refund": "DELETE"}


def no_pending_anywhere(rig: Rig, body: dict[str, Any]) -> None:
    """Nothing left PENDING, and the server was killed once, where the test meant it."""
    assert [o for o in body["payment"]["operations"] if o["status"] == "PENDING"] == []
    assert rig.csms.kills == [GATEWAY_STEPS.get(rig.point, rig.point)]
    print(rig.point, "->", body["status"], body["payment"]["status"],
          [(o["type"], o["amount"], o["status"]) for o in body["payment"]["operations"]])


async def charge_10_kwh(rig: Rig, id_tag: str) -> None:
    """The charger's part: StartTransaction, a meter sample, StopTransaction at 10 kWh (sent
    again when it was never answered, as a real charger does)."""
    begun = await rig.step("start_tx", rig.charger(call.StartTransaction(
        connector_id=1, id_tag=id_tag, meter_start=0, timestamp=T0)))
    assert begun is not None and begun.id_tag_info["status"] == "Accepted"
    tx_id = begun.transaction_id
    await rig.step("metering", rig.charger(call.MeterValues(
        connector_id=1, transaction_id=tx_id,
        meter_value=[{"timestamp": "2026-11-22T10:10:00Z",
                      "sampledValue": [{"value": "5000"}]}])))
    stopped = await rig.step("stop_tx", rig.charger(stop_tx(tx_id, 10000)))
    if stopped is None:  # never answered: a real charger sends it again
        stopped = await rig.step("resent", rig.charger(stop_tx(tx_id, 10000)))
    assert stopped is not None


# a card session ----------------------------------------------------------------------------------

CARD_POINTS = ["hold", "started", "start_tx", "metering", "capture_unsent", "capture", "stop_tx"]


@pytest.mark.parametrize("rig", CARD_POINTS, indirect=True)
async def test_a_card_session_survives_kill9(rig: Rig) -> None:
    await card_session(rig)


@pytest.mark.mongodb
@pytest.mark.parametrize("rig", ["hold", "capture", "stop_tx"], indirect=True)
async def test_a_card_session_on_mongodb_survives_kill9(rig: Rig) -> None:
    """The same on the MongoDB store (nx-27017 here): the steps with two writes in flight."""
    await card_session(rig)


def kill_at_card_gateway_step(rig: Rig) -> None:
    """Arm the kill for the points of a card session that are gateway calls."""
    if rig.point == "hold":
        rig.kill_at_gateway("POST", path_end="/orders")
    if rig.point == "capture_unsent":
        rig.kill_at_gateway("POST", path_end="/capture", before=True)
    if rig.point == "capture":
        rig.kill_at_gateway("POST", path_end="/capture")


async def assert_voided_after_dying_at_the_hold(rig: Rig) -> None:
    """The driver never learned the session; the restarted server voided its hold once."""
    body = await rig.settled(await rig.session_id())
    no_pending_anywhere(rig, body)
    assert (body["status"], body["payment"]["status"]) == ("FAILED", "VOIDED"), body
    assert effects(rig.fake) == {"orders": 1, "capture": 0, "cancel": 1}


async def begin_card_session(rig: Rig) -> tuple[str, dict[str, Any]] | None:
    """The driver's card start, killed at the gateway step the rig names: the session id and
    the remote start the charger got, or None when the server died at the hold (then checked
    voided)."""
    kill_at_card_gateway_step(rig)
    started = await rig.step("started", rig.post("/charge/start", start_body()))
    await rig.up.wait()
    if started is None:  # died at the hold
        await assert_voided_after_dying_at_the_hold(rig)
        return None
    status, answer = started
    assert status == 200, answer
    remote = await rig.remote_start()
    assert remote is not None
    return answer["sessionId"], remote


async def card_session(rig: Rig) -> None:
    begun = await begin_card_session(rig)
    if begun is None:
        return
    sid, remote = begun
    id_tag = remote["id_tag"]

    await charge_10_kwh(rig, id_tag)

    body = await rig.settled(sid)
    no_pending_anywhere(rig, body)
    assert (body["status"], body["payment"]["status"]) == ("COMPLETED", "CAPTURED"), body
    assert body["payment"]["capturedAmount"] == COST and body["costCents"] == COST
    assert effects(rig.fake) == {"orders": 1, "capture": 1, "cancel": 0}
    (charge,) = rig.fake.charges.values()
    assert charge["paid_amount"] == COST


# a PIX session -----------------------------------------------------------------------------------

PIX_POINTS = ["paid", "start_tx", "metering", "stop_tx", "refund_unsent", "refund"]


@pytest.mark.parametrize("rig", PIX_POINTS, indirect=True)
async def test_a_pix_session_survives_kill9(rig: Rig) -> None:
    if rig.point == "refund_unsent":
        rig.kill_at_gateway("DELETE", before=True)
    if rig.point == "refund":
        rig.kill_at_gateway("DELETE")

    status, answer = await rig.post("/charge/start", start_body(method="PIX", cardToken=None))
    assert status == 200, answer
    sid, charge_id = answer["sessionId"], answer["paymentData"]["chargeId"]
    rig.fake.mark_pix_paid(charge_id)
    hook = rig.fake.webhook_body("charge.paid", charge_id)
    await rig.step("paid", rig.post("/webhooks/pagarme", hook,
                                    headers=basic_auth("hook", "hookpw")))
    remote = await rig.remote_start()
    if remote is None:  # died before RemoteStart went out: the money goes back, all of it
        body = await rig.settled(sid)
        no_pending_anywhere(rig, body)
        assert (body["status"], body["payment"]["status"]) == ("CANCELED", "REFUNDED"), body
        assert body["payment"]["refundedAmount"] == HOLD
        assert effects(rig.fake) == {"orders": 1, "capture": 0, "cancel": 1}
        assert rig.fake.charges[charge_id]["canceled_amount"] == HOLD
        return
    await charge_10_kwh(rig, remote["id_tag"])

    body = await rig.settled(sid)
    no_pending_anywhere(rig, body)
    assert (body["status"], body["payment"]["status"]) == ("COMPLETED", "PARTIALLY_REFUNDED")
    assert (body["payment"]["authorizedAmount"], body["payment"]["capturedAmount"],
            body["payment"]["refundedAmount"]) == (HOLD, COST, PIX_REFUND)
    assert effects(rig.fake) == {"orders": 1, "capture": 0, "cancel": 1}
    assert rig.fake.charges[charge_id]["canceled_amount"] == PIX_REFUND


@pytest.mark.parametrize("rig", ["pix_order"], indirect=True)
async def test_a_pix_charge_created_as_the_server_dies_is_voided(rig: Rig) -> None:
    """Killed once the gateway created the PIX order, before its answer arrived: the driver
    never got the QR code. After the restart the CHARGE is sent again with its key (the
    gateway answers with the same charge), the session fails and the charge is canceled once."""
    rig.kill_at_gateway("POST", path_end="/orders")
    started = await rig.step("pix_order", rig.post(
        "/charge/start", start_body(method="PIX", cardToken=None)))
    assert started is None  # died at the order: the driver never learned the session
    sid = await rig.session_id()
    body = await rig.settled(sid)
    no_pending_anywhere(rig, body)
    assert (body["status"], body["payment"]["status"]) == ("FAILED", "VOIDED"), body
    assert [(o["type"], o["amount"], o["status"]) for o in body["payment"]["operations"]] == [
        ("CHARGE", HOLD, "SUCCEEDED"), ("VOID", HOLD, "SUCCEEDED")]
    assert effects(rig.fake) == {"orders": 1, "capture": 0, "cancel": 1}
    assert [r["method"] for r in rig.fake.requests].count("DELETE") == 1
    (charge,) = rig.fake.charges.values()
    assert (charge["status"], charge["paid_amount"]) == ("canceled", 0)
