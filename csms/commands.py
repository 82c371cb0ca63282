"""Asking a station to do something, without speaking any OCPP version.

Billing and the HTTP surfaces depend on this port; the hub implements it and maps each command
to the connected station's protocol version (RemoteStartTransaction in 1.6,
RequestStartTransaction in 2.0.1). `call` is the one raw door, for the operator API whose
contract is "send this OCPP payload".
"""

from __future__ import annotations

from typing import Any, Protocol


class CommandError(Exception):
    """A call we sent could not be completed."""


class CommandInvalid(CommandError):
    """The payload is not valid for the action (HTTP 422)."""


class StationNotConnected(CommandError):
    """No open connection for that station id, or it closed while we were sending (404)."""


class CommandTimeout(CommandError):
    """The station did not answer in time (HTTP 504)."""


class CommandUnavailable(CommandError):
    """The way to the station is down for now (a cluster node cannot reach Redis to find or
    reach the node holding it): retry shortly (HTTP 503)."""


class CommandUnsupported(CommandError):
    """The station's OCPP version has no such command in this central system (yet)."""


class CommandRejected(CommandError):
    """The station answered with a CALLERROR."""

    def __init__(self, code: str, description: str, details: Any) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details = details


class StationCommands(Protocol):
    def is_connected(self, station_id: str) -> bool: ...

    async def remote_start(self, station_id: str, connector_id: int, id_tag: str) -> bool:
        """Ask the station to start charging for `id_tag`; True when it accepted.

        Raises StationNotConnected, CommandTimeout or CommandRejected."""

    async def remote_stop(self, station_id: str, transaction_id: int) -> bool:
        """Ask the station to stop a transaction; True when it accepted."""

    async def call(self, station_id: str, action: str, payload: dict[str, Any],
                   timeout: float | None = None) -> dict[str, Any]:
        """Send a raw OCPP call in the station's own version and return its answer."""
