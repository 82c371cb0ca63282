"""Commands for a station wherever it is connected: the `StationCommands` port in front of
the local hub.

A station held here goes straight to the hub. One held by another node is reached through
that node's bus channel: the call (action, camelCase payload, and the OCPP version the
payload was built for) goes out under a fresh id, the holding node sends it with its own hub
and publishes the answer or the error back to the caller's channel under the same id. The
caller raises what the hub would have raised, so HTTP surfaces answer the same statuses as
for a local station (404 not connected, 504 no answer in time, 422 invalid, 502 CALLERROR).

Routing is generic: the port's versioned commands are built here from the holding
connection's version (`OcppVersion.remote_start`, ...) and travel as a plain call, so a
command or an OCPP version added to the hub is routed without a change here. When the
station reconnected meanwhile with another version, the holding node refuses the stale
payload and the call is built again once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from redis.exceptions import RedisError

from csms.cluster.bus import Bus, Message
from csms.cluster.presence import RedisPresence
from csms.commands import (
    CommandError,
    CommandInvalid,
    CommandRejected,
    CommandTimeout,
    CommandUnavailable,
    CommandUnsupported,
    StationNotConnected,
)
from csms.ocpp.hub import Hub
from csms.ocpp.version import OcppVersion, Payload

log = logging.getLogger(__name__)

# error kinds on the wire <-> the port's exceptions (CommandRejected travels with its fields)
ERRORS: dict[str, type[CommandError]] = {
    "not_connected": StationNotConnected, "invalid": CommandInvalid,
    "timeout": CommandTimeout, "unsupported": CommandUnsupported,
    "unavailable": CommandUnavailable, "error": CommandError}
KIND_OF = {cls: kind for kind, cls in ERRORS.items()}


@contextlib.contextmanager
def through_redis(station_id: str) -> Iterator[None]:
    """Redis unreachable while finding or reaching a station's node: the port's 503, not
    an error of our own (the call was not delivered; a retry once Redis is back may be)."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise CommandUnavailable(f"cannot reach the node holding station {station_id}: "
                                 f"the cluster's Redis is unavailable ({exc})") from None


class VersionChanged(Exception):
    """The station reconnected with another OCPP version than the payload was built for."""


class Router:
    def __init__(self, hub: Hub, presence: RedisPresence, bus: Bus,
                 versions: Mapping[str, OcppVersion], margin: float) -> None:
        self.hub = hub
        self.presence = presence
        self.bus = bus
        self.versions = versions
        self.margin = margin
        self._waiting: dict[str, asyncio.Future[Message]] = {}
        bus.on("call", self._serve)
        bus.on("reply", self._reply)

    # StationCommands -------------------------------------------------------------------------
    def is_connected(self, station_id: str) -> bool:
        return self.hub.is_connected(station_id) or self.presence.held_elsewhere(station_id)

    async def call(self, station_id: str, action: str, payload: dict[str, Any],
                   timeout: float | None = None) -> dict[str, Any]:
        if self.hub.is_connected(station_id):
            return await self.hub.call(station_id, action, payload, timeout)
        with through_redis(station_id):
            where = await self.presence.lookup(station_id)
        if where is None or where.node == self.bus.node_id:
            raise StationNotConnected(f"station {station_id} is not connected")
        return await self._send(where.node, station_id, action, payload, timeout, None)

    async def remote_start(self, station_id: str, connector_id: int, id_tag: str) -> bool:
        if self.hub.is_connected(station_id):
            return await self.hub.remote_start(station_id, connector_id, id_tag)

        async def build(version: OcppVersion) -> Payload:
            # The holding node records the remoteStartId when its hub sends the call, and
            # links the Started by it or by its idToken; this node only draws the id.
            return version.remote_start(connector_id, id_tag,
                                        await self.hub.remote_start_id(version))

        answer = await self._versioned(station_id, build)
        return answer.get("status") == "Accepted"

    async def remote_stop(self, station_id: str, transaction_id: int) -> bool:
        if self.hub.is_connected(station_id):
            return await self.hub.remote_stop(station_id, transaction_id)
        answer = await self._versioned(
            station_id,
            lambda version: self.hub.remote_stop_call(version, station_id, transaction_id))
        return answer.get("status") == "Accepted"

    # routing ---------------------------------------------------------------------------------
    async def _versioned(self, station_id: str,
                         build: Callable[[OcppVersion], Awaitable[Payload]]) -> dict[str, Any]:
        """A command built for the version of the connection that holds the station."""
        for _ in range(2):
            with through_redis(station_id):
                where = await self.presence.lookup(station_id)
            if self.hub.is_connected(station_id) or where is None or \
                    where.node == self.bus.node_id:
                live = self.hub.live(station_id)
                if live is None:
                    raise StationNotConnected(f"station {station_id} is not connected")
                action, payload = await build(live.version)
                return await self.hub.call(station_id, action, payload)
            version = self.versions.get(where.version)
            if version is None:
                raise CommandUnsupported(f"OCPP {where.version} is not spoken by this node")
            action, payload = await build(version)
            try:
                return await self._send(where.node, station_id, action, payload, None,
                                        version.name)
            except VersionChanged:
                continue
        raise StationNotConnected(f"station {station_id} keeps reconnecting; try again")

    async def _send(self, node: str, station_id: str, action: str, payload: dict[str, Any],
                    timeout: float | None, version: str | None) -> dict[str, Any]:
        call_id = uuid.uuid4().hex
        waiting = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = waiting
        try:
            with through_redis(station_id):
                heard = await self.bus.send(node, {
                    "type": "call", "id": call_id, "from": self.bus.node_id,
                    "station": station_id, "action": action, "payload": payload,
                    "timeout": timeout, "version": version})
            if heard == 0:
                self.presence.node_gone(node)
                raise StationNotConnected(
                    f"station {station_id} is not connected (its node {node} is gone)")
            wait = (timeout or self.hub.settings.command_timeout) + self.margin
            try:
                reply = await asyncio.wait_for(waiting, wait)
            except TimeoutError:
                raise CommandTimeout(f"no answer from node {node} holding station "
                                     f"{station_id} within {wait:g} s") from None
        finally:
            self._waiting.pop(call_id, None)
        return answer_of(reply)

    def _reply(self, message: Message) -> None:
        waiting = self._waiting.get(str(message.get("id")))
        if waiting is not None and not waiting.done():
            waiting.set_result(message)

    async def _serve(self, message: Message) -> None:
        """A call another node routed here: send it with the hub, publish the outcome."""
        reply: Message = {"type": "reply", "id": message["id"]}
        station_id = str(message["station"])
        try:
            live = self.hub.live(station_id)
            version = message.get("version")
            if live is not None and version is not None and live.version.name != version:
                reply["error"] = "version"
            else:
                reply["response"] = await self.hub.call(
                    station_id, str(message["action"]), dict(message["payload"]),
                    message.get("timeout"))
        except CommandRejected as exc:
            reply.update(error="rejected", code=exc.code, description=exc.description,
                         details=exc.details)
        except CommandError as exc:
            reply.update(error=KIND_OF.get(type(exc), "error"), message=str(exc))
        except Exception as exc:  # reported to the caller; the station's node carries on
            log.exception("%s: routed %s failed", station_id, message.get("action"))
            reply.update(error="error", message=f"{type(exc).__name__}: {exc}")
        await self.bus.send(str(message["from"]), reply)


def answer_of(reply: Message) -> dict[str, Any]:
    """The station's answer from a routed call's reply, or the port's exception."""
    error = reply.get("error")
    if error is None:
        return dict(reply.get("response") or {})
    if error == "version":
        raise VersionChanged
    if error == "rejected":
        raise CommandRejected(str(reply.get("code")), str(reply.get("description", "")),
                              reply.get("details"))
    if error in ERRORS and error != "error":
        raise ERRORS[str(error)](str(reply.get("message", error)))
    # the holding node failed to send it: an upstream failure, as a CALLERROR would be (502)
    raise CommandRejected("InternalError", str(reply.get("message", error)), {})
