"""OCPP 2.0.1: the handler table, the payload mapping and the error-code spelling."""

from __future__ import annotations

from ocpp.v201.enums import Action

from csms.ocpp.v201 import mapping
from csms.ocpp.v201.handlers import ROUTES, Handlers
from csms.ocpp.version import OcppVersion

VERSION = OcppVersion(
    name="2.0.1",
    subprotocol="ocpp2.0.1",
    actions=frozenset(action.value for action in Action),
    commands=mapping.COMMANDS,
    error_codes={},  # the neutral codes (framing) are OCPP-J 2.0.1's own spelling
    handlers=Handlers,
    routes=ROUTES,
    remote_start=mapping.remote_start,
    remote_stop=mapping.remote_stop,
    station_owns_transactions=True,
    remote_start_link=mapping.remote_start_link,
)
