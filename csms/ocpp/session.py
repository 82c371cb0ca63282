"""One station's OCPP-J connection, the same loop for every protocol version.

Receive, parse, validate, dispatch to the version's handler table, answer (CALLRESULT or a
CALLERROR spelled in the version's error codes), log and count every frame; and send our own
CALLs with response matching and timeouts.

Why not the `ocpp` library's `ChargePoint` loop: it is bound to one version per subclass, and it
is slow. On one core the library on aiohttp handles about 1,800-2,700 msgs/s against 14,800 for
hand-written framing (shared/NOTES-ocpp.md): per call it validates in a thread executor,
converts keys with regexes, runs `inspect.signature`, and matches replies by walking a queue
recursively. This loop keeps what the library does well and reuses it: the `@on` route maps
(versions build their handler tables with them), the call_result dataclasses and their
serialisation, the message types, the `OCPPError` family and the official schemas
(`schemas.py`, compiled once). It never goes through the library's validation path, so
`ocpp.messages.ASYNC_VALIDATION` does not matter to the server.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, Protocol

from ocpp import exceptions as ocpp_exc

from csms.commands import CommandInvalid, CommandRejected, CommandTimeout, StationNotConnected
from csms.domain import ConstraintViolation
from csms.metrics import Metrics
from csms.ocpp.framing import (
    FORMAT_VIOLATION,
    Call,
    CallError,
    CallResult,
    FrameError,
    MessageType,
    call_result_json,
    parse_frame,
    payload_of,
)
from csms.ocpp.schemas import violation
from csms.ocpp.version import OcppVersion, StationContext

log = logging.getLogger(__name__)


class Connection(Protocol):
    async def recv(self) -> str: ...

    async def send(self, message: str) -> None: ...


class FrameSink(Protocol):
    """Where a session reports its frames (the hub's message log)."""

    def frame(self, station_id: str, direction: str, frame: str) -> None: ...

    def logs(self, station_id: str, action: str) -> bool:
        """Whether a successful call of `action` and its result are logged (sampling)."""
        ...


class Session:
    """One connection's protocol state. Slotted and lean: a hub holds one per connected station
    (10,000s), so the route table is the version's, shared, and the call lock is made on the
    first call we send."""

    __slots__ = (
        "_call_lock",
        "_waiting",
        "connection",
        "context",
        "handlers",
        "id",
        "metrics",
        "response_timeout",
        "routes",
        "sink",
        "version",
    )

    def __init__(self, context: StationContext, connection: Connection, version: OcppVersion,
                 handlers: object, *, metrics: Metrics, sink: FrameSink,
                 response_timeout: float) -> None:
        self.context = context
        self.id = context.station_id
        self.connection = connection
        self.version = version
        self.handlers = handlers  # the version's handler object for this connection
        self.routes = version.routes
        self.metrics = metrics
        self.sink = sink
        self.response_timeout = response_timeout
        self._call_lock: asyncio.Lock | None = None  # OCPP-J: one CALL of ours in flight
        self._waiting: tuple[str, asyncio.Future[CallResult | CallError]] | None = None

    # receiving -----------------------------------------------------------------------------
    async def run(self) -> None:
        """Handle frames one after another until the connection raises (it closed)."""
        while True:
            await self.receive(await self.connection.recv())

    async def receive(self, raw: str) -> None:
        try:
            msg = parse_frame(raw)
        except FrameError as error:
            self.sink.frame(self.id, "in", raw)
            self.metrics.messages.inc("invalid", "in")
            log.warning("%s: bad frame %r: %s", self.id, raw[:200], error)
            await self._send_error(error.unique_id, error.code, error.description,
                                   error.details)
            return
        if isinstance(msg, Call):
            await self._handle_call(msg, raw)
            return
        self.sink.frame(self.id, "in", raw)
        self.metrics.messages.inc(
            "CallResult" if isinstance(msg, CallResult) else "CallError", "in")
        self._answer(msg)

    async def _handle_call(self, msg: Call, raw: str) -> None:
        started = time.perf_counter()
        action = msg.action
        logged = self.sink.logs(self.id, action)
        if logged:
            self.sink.frame(self.id, "in", raw)
        handler = self.routes.get(action)
        self.metrics.messages.inc(action if handler else "unknown", "in")
        try:
            try:
                if handler is None:
                    raise self._unknown(action)
                problem = violation(self.version.name, MessageType.Call, action, msg.payload)
                if problem is not None:
                    raise FrameError(msg.unique_id, *problem)
                response = await handler(self.handlers, msg.payload)
            except Exception as exc:
                if not logged:  # a call that failed is always logged, before its CALLERROR
                    self.sink.frame(self.id, "in", raw)
                await self._call_failed(msg, exc)
                return
            # the hot handlers answer with the wire payload itself (a camelCase dict), the
            # others with the library's call_result dataclass (see csms/ocpp/version.py)
            payload = response if type(response) is dict else payload_of(response)
            await self._send(call_result_json(msg.unique_id, payload), logged)
        finally:
            if handler is not None:
                self.metrics.handler_seconds.observe(time.perf_counter() - started, action)

    async def _call_failed(self, msg: Call, exc: Exception) -> None:
        """Answer a call whose validation or handler raised `exc` with its CALLERROR."""
        if isinstance(exc, FrameError):
            await self._send_error(msg.unique_id, exc.code, exc.description)
        elif isinstance(exc, ConstraintViolation):
            await self._send_error(msg.unique_id, "PropertyConstraintViolation", str(exc))
        elif isinstance(exc, TypeError):
            log.exception("%s: %s handler rejected its arguments", self.id, msg.action,
                          exc_info=exc)
            await self._send_error(msg.unique_id, "InternalError", "An internal error occurred")
        else:  # OCPPError from a handler (or our NotImplemented/NotSupported), or a bug in one
            if not isinstance(exc, ocpp_exc.OCPPError):
                log.exception("%s: %s handler failed", self.id, msg.action, exc_info=exc)
            await self._send_exception(msg.unique_id, exc)

    def _unknown(self, action: str) -> ocpp_exc.OCPPError:
        """OCPP-J 1.6 §4.2.3: an action the receiver does not know is NotImplemented; one it
        knows (the version defines it) but does not handle is NotSupported. The `ocpp`
        library's default descriptions of these two are swapped, so we word them here."""
        if action in self.version.actions:
            return ocpp_exc.NotSupportedError(
                description="Requested Action is recognized but not supported by the receiver",
                details={"cause": f"{action} is not supported by this central system"})
        return ocpp_exc.NotImplementedError(
            description="Requested Action is not known by receiver",
            details={"cause": f"{action} is not an OCPP {self.version.name} action"})

    async def _send_exception(self, unique_id: str, exc: BaseException) -> None:
        if isinstance(exc, ocpp_exc.OCPPError):
            await self._send_error(unique_id, exc.code, exc.description, exc.details)
        else:
            await self._send_error(unique_id, "InternalError", "An internal error occurred")

    async def _send_error(self, unique_id: str, code: str, description: str,
                          details: dict[str, Any] | None = None) -> None:
        code = self.version.error_code(code)
        self.metrics.errors.inc(code)
        await self._send(CallError(unique_id, code, description, details or {}).to_json())

    async def _send(self, message: str, logged: bool = True) -> None:
        if logged:
            self.sink.frame(self.id, "out", message)
        await self.connection.send(message)

    # calling the station -------------------------------------------------------------------
    def _answer(self, msg: CallResult | CallError) -> None:
        """Hand a reply to the call waiting for it; a reply nobody waits for (late, or
        unsolicited) is dropped, so it cannot confuse the next call."""
        waiting = self._waiting
        if waiting is not None and waiting[0] == msg.unique_id and not waiting[1].done():
            waiting[1].set_result(msg)
        else:
            log.warning("%s: dropped a reply nobody waits for (unique id %r)", self.id,
                        msg.unique_id)

    async def send_call(self, action: str, payload: dict[str, Any],
                        timeout: float | None = None) -> dict[str, Any]:
        """Send a CALL with a camelCase payload and return the CALLRESULT payload.

        Raises CommandInvalid, StationNotConnected, CommandTimeout or CommandRejected."""
        problem = violation(self.version.name, MessageType.Call, action, payload)
        if problem is not None:
            raise CommandInvalid(f"{self.version.error_code(problem[0])}: {problem[1]}")
        call = Call(str(uuid.uuid4()), action, payload)
        wait = self.response_timeout if timeout is None else timeout
        if self._call_lock is None:
            self._call_lock = asyncio.Lock()
        async with self._call_lock:
            self.metrics.messages.inc(action, "out")
            reply: asyncio.Future[CallResult | CallError] = \
                asyncio.get_running_loop().create_future()
            self._waiting = (call.unique_id, reply)
            try:
                try:
                    await self._send(call.to_json())
                except (ConnectionError, RuntimeError) as exc:  # the socket closed under us
                    raise StationNotConnected(f"{self.id} disconnected: {exc}") from exc
                try:
                    response = await asyncio.wait_for(reply, wait)
                except TimeoutError as exc:
                    raise CommandTimeout(f"{self.id} did not answer {action} within {wait}s") \
                        from exc
            finally:
                self._waiting = None
        if isinstance(response, CallError):
            raise CommandRejected(response.error_code, response.error_description,
                                  response.error_details)
        problem = violation(self.version.name, MessageType.CallResult, action, response.payload)
        if problem is not None:
            raise CommandRejected(self.version.error_code(FORMAT_VIOLATION),
                                  f"invalid {action} response: {problem[1]}", {})
        return response.payload
