"""OCPP 1.6J: the handler table, the payload mapping and the error-code spelling."""

from __future__ import annotations

from ocpp.v16.enums import Action

from csms.ocpp.framing import (
    FORMAT_VIOLATION,
    MESSAGE_TYPE_NOT_SUPPORTED,
    OCCURRENCE_VIOLATION,
    RPC_FRAMEWORK_ERROR,
)
from csms.ocpp.v16 import mapping
from csms.ocpp.v16.handlers import ROUTES, Handlers
from csms.ocpp.version import OcppVersion

VERSION = OcppVersion(
    name="1.6",
    subprotocol="ocpp1.6",
    actions=frozenset(action.value for action in Action),
    commands=frozenset(action.value for action in (
        Action.remote_start_transaction, Action.remote_stop_transaction, Action.reset,
        Action.unlock_connector, Action.change_availability, Action.get_configuration,
        Action.change_configuration, Action.trigger_message, Action.clear_cache,
        Action.data_transfer, Action.get_diagnostics, Action.update_firmware,
        Action.reserve_now, Action.cancel_reservation, Action.set_charging_profile,
        Action.clear_charging_profile, Action.get_composite_schedule,
        Action.get_local_list_version, Action.send_local_list)),
    # OCPP-J 1.6 §4.2.3 spells these two differently from 2.0.1 (and "Occurence" with one r).
    error_codes={FORMAT_VIOLATION: "FormationViolation",
                 OCCURRENCE_VIOLATION: "OccurenceConstraintViolation",
                 # 2.0.1 names framing faults apart; 1.6 has only these two for them.
                 RPC_FRAMEWORK_ERROR: "FormationViolation",
                 MESSAGE_TYPE_NOT_SUPPORTED: "ProtocolError"},
    handlers=Handlers,
    routes=ROUTES,
    remote_start=mapping.remote_start,
    remote_stop=mapping.remote_stop,
)
