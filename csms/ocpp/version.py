"""What an OCPP version plugs into the version-neutral session and hub.

A version is data, not a subclass: its subprotocol, the actions it defines, how it spells the
error codes, its handler class and route table, and builders for the command payloads the hub
sends. `csms.ocpp.v16.VERSION` is one; 2.0.1 adds another beside it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ocpp.routing import create_route_map

from csms.charging import ChargingService
from csms.ocpp.framing import snake_keys
from csms.settings import OcppSettings

# A route: a version's handler for one action, called with that class's per-connection object
# and the CALL's payload as it arrived (camelCase, schema-checked); returns the version's
# call_result dataclass. Handlers written with `@on` take the payload as snake_case keyword
# arguments (the `ocpp` library's convention); `routes_of` converts it for them, except for
# handlers marked `@camel_payload`, which take the payload dict itself.
Handler = Callable[[Any, dict[str, Any]], Awaitable[Any]]
Payload = tuple[str, dict[str, Any]]  # (action, camelCase payload) of a call to a station
# A handler's answer given as the CALLRESULT payload itself, camelCase, ready for the wire: what
# the hot handlers (Heartbeat, MeterValues, StatusNotification, BootNotification,
# TransactionEvent) return instead of the library's call_result dataclass, whose construction
# and conversion (`payload_of`) were ~6,000-9,000 instructions of each ~80,000-instruction
# frame (docs/performance.md, round six). tests/csms/ocpp/test_wire_answers.py holds each equal
# to the library's dataclass converted, and valid for its schema.
WireAnswer = dict[str, Any]


@dataclass(slots=True)
class StationContext:
    """What a version's handlers know of their connection, kept in memory while it is open.

    The hub shows the statuses to operators; they are not stored."""

    station_id: str
    firmware_status: str | None = None
    diagnostics_status: str | None = None
    # 2.0.1: evseId -> connectorId -> ConnectorStatus as reported on this connection (the
    # store keeps each EVSE's folded status as the domain connector)
    evse_connectors: dict[int, dict[int, str]] = field(default_factory=dict)


# the version's handler class: one small object per connection (its station and collaborators)
HandlerFactory = Callable[[StationContext, ChargingService, OcppSettings], object]


class StationHandlers:
    """What every version's handler class holds for its connection: the station, the charging
    service and the heartbeat interval it hands out. Subclasses add `@on` methods only."""

    __slots__ = ("context", "heartbeat_interval", "id", "service")

    def __init__(self, context: StationContext, service: ChargingService,
                 settings: OcppSettings) -> None:
        self.context = context
        self.id = context.station_id
        self.service = service
        self.heartbeat_interval = settings.heartbeat_interval


_CAMEL_PAYLOAD = "_csms_camel_payload"


def camel_payload(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Mark an `@on` handler (put it below `@on`) as taking the CALL's camelCase payload dict
    as it arrived, instead of snake_case keyword arguments.

    For the hot meter actions: converting every key of a MeterValues or TransactionEvent
    payload to snake_case and back into keyword arguments cost ~2.5-4 us per frame, as much
    as mapping the values themselves (docs/performance.md, round five)."""
    setattr(handler, _CAMEL_PAYLOAD, True)
    return handler


def routes_of(handlers: type) -> dict[str, Handler]:
    """action -> route of a class's `@on` methods (the library's route map).

    Built once per version and shared by every connection, which holds only its own handler
    object: a table of bound methods per connection cost ~1 KB each (issue 15). The route calls
    the undecorated method (`@on` adds a pass-through wrapper)."""
    return {getattr(action, "value", action): _route(route["_on_action"])
            for action, route in create_route_map(handlers).items() if "_on_action" in route}


def _route(decorated: Callable[..., Awaitable[Any]]) -> Handler:
    method = getattr(decorated, "__wrapped__", decorated)
    if getattr(decorated, _CAMEL_PAYLOAD, False):  # `@on` copies the mark to its wrapper
        return method

    def with_snake_keys(handlers: Any, payload: dict[str, Any]) -> Awaitable[Any]:
        if not payload:  # a Heartbeat, half of a closed loop's frames
            return method(handlers)
        return method(handlers, **snake_keys(payload))

    return with_snake_keys


# (action, camelCase payload) of a call to a station -> (remoteStartId, idToken) when it is a
# remote start that names its transaction that way
RemoteStartLink = Callable[[str, dict[str, Any]], tuple[int, str] | None]


def no_remote_start_link(action: str, payload: dict[str, Any]) -> tuple[int, str] | None:
    return None


@dataclass(frozen=True, slots=True)
class OcppVersion:
    name: str  # "1.6": the schema set, and the version named in NotImplemented errors
    subprotocol: str  # "ocpp1.6"
    actions: frozenset[str]  # the actions it defines: NotSupported; others NotImplemented
    commands: frozenset[str]  # the calls a central system may send a station in this version
    error_codes: Mapping[str, str]  # neutral code (framing) -> this version's spelling
    handlers: HandlerFactory
    routes: Mapping[str, Handler]  # action -> route, `routes_of(handler class)`
    remote_start: Callable[[int, str, int | None], Payload]  # (connector, id tag, start id)
    # (our transaction id, the station's own id when it owns them)
    remote_stop: Callable[[int, str | None], Payload]
    # 2.0.1: the station names its transactions, and a remote start carries a remoteStartId
    # that the hub allocates so the transaction can be linked to it
    station_owns_transactions: bool = False
    remote_start_link: RemoteStartLink = no_remote_start_link

    def error_code(self, code: str) -> str:
        return self.error_codes.get(code, code)
