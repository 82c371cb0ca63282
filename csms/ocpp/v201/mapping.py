"""OCPP 2.0.1 payloads <-> version-neutral domain values.

EVSE and connector: our domain connector is what a driver picks and a transaction runs on. In
2.0.1 that is the EVSE (one charging session per EVSE; RequestStartTransaction names an evseId,
not a connector), so the domain connector id IS the evseId, and evseId 0 is the station as a
whole, like 1.6's connector 0. The connectors of one EVSE (a CCS and a CHAdeMO cable, say) are
folded into the EVSE's status by `evse_status`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from ocpp.v201 import datatypes
from ocpp.v201.enums import Action

from csms.commands import CommandInvalid
from csms.domain import (
    ENERGY_REGISTER,
    MAX_REGISTER_WH,
    MeterValue,
    isoformat,
    parse_timestamp,
)
from csms.events import Authorization
from csms.ocpp.version import Payload
from csms.station_transactions import TransactionEvent

# The calls a central system sends a 2.0.1 station (OCPP 2.0.1 part 2, "CSMS -> Charging
# Station" messages): every one the operator API may pass through.
COMMANDS = frozenset(action.value for action in (
    Action.cancel_reservation, Action.certificate_signed, Action.change_availability,
    Action.clear_cache, Action.clear_charging_profile, Action.clear_display_message,
    Action.clear_variable_monitoring, Action.cost_updated, Action.customer_information,
    Action.data_transfer, Action.delete_certificate, Action.get_base_report,
    Action.get_charging_profiles, Action.get_composite_schedule, Action.get_display_messages,
    Action.get_installed_certificate_ids, Action.get_local_list_version, Action.get_log,
    Action.get_monitoring_report, Action.get_report, Action.get_transaction_status,
    Action.get_variables, Action.install_certificate, Action.publish_firmware,
    Action.request_start_transaction, Action.request_stop_transaction, Action.reserve_now,
    Action.reset, Action.send_local_list, Action.set_charging_profile,
    Action.set_display_message, Action.set_monitoring_base, Action.set_monitoring_level,
    Action.set_network_profile, Action.set_variable_monitoring, Action.set_variables,
    Action.trigger_message, Action.unlock_connector, Action.unpublish_firmware,
    Action.update_firmware))

# Which connector state an EVSE shows when its connectors differ: a busy one first (the EVSE
# cannot start another session), then the most usable.
_EVSE_PRECEDENCE = ("Occupied", "Reserved", "Available", "Unavailable", "Faulted")
_ENERGY_UNITS = {"kWh": "Wh", "kvarh": "varh"}
_NO_UNIT: Mapping[str, Any] = {}  # a sampledValue without unitOfMeasure: Wh, multiplier 0
# IdTokenEnumType of the empty idToken a station sends when it authorizes nobody (free vend)
NO_AUTHORIZATION = "NoAuthorization"


def evse_status(connectors: Mapping[int, str]) -> str:
    """The EVSE's status from its connectors' ConnectorStatusEnumType values."""
    states = set(connectors.values())
    return next((s for s in _EVSE_PRECEDENCE if s in states), "Unavailable")


def error_code(status: str) -> str:
    """2.0.1 StatusNotification carries no error code (faults arrive as NotifyEvent); the
    domain's connector keeps the 1.6 vocabulary."""
    return "OtherError" if status == "Faulted" else "NoError"


def id_token_info(auth: Authorization) -> datatypes.IdTokenInfoType:
    group = None
    if auth.parent_id_tag:
        group = datatypes.IdTokenType(id_token=auth.parent_id_tag, type="Central")
    return datatypes.IdTokenInfoType(status=auth.status, group_id_token=group,
                                     cache_expiry_date_time=isoformat(auth.expiry_date))


def meter_values(station_id: str, evse_id: int,
                 meter_value: Iterable[dict[str, Any]]) -> list[MeterValue]:
    """Flatten 2.0.1 meterValue[] (camelCase keys, as sent) into domain values, like 1.6's.

    Defaults per 2.0.1: measurand Energy.Active.Import.Register, unitOfMeasure Wh with
    multiplier 0. The value is scaled by 10^multiplier, and kWh (kvarh) becomes Wh (varh), so
    every stored energy value has one unit. Raises InvalidTimestamp for a bad timestamp."""
    values: list[MeterValue] = []
    for entry in meter_value:
        at = parse_timestamp(entry["timestamp"])
        for sample in entry.get("sampledValue", ()):
            unit_of_measure = sample.get("unitOfMeasure") or _NO_UNIT
            value, unit = _scaled(sample["value"], unit_of_measure.get("unit") or "Wh",
                                  unit_of_measure.get("multiplier") or 0)
            # positional, in MeterValue's field order (as 1.6's mapping); no format in 2.0.1
            values.append(MeterValue(
                station_id, evse_id, None, at, value,
                sample.get("measurand") or ENERGY_REGISTER, unit, sample.get("context"),
                sample.get("phase"), sample.get("location"), None))
    return values


def _scaled(number: float | int, unit: str, multiplier: int) -> tuple[str, str]:
    """The value as decimal text in the stored unit; as sent when scaling would give no
    number a meter could show."""
    exponent = multiplier + (3 if unit in _ENERGY_UNITS else 0)
    if type(number) is int and 0 <= exponent <= 15:
        # A whole number scaled up stays whole: int arithmetic takes ~0.2 us where the Decimal
        # steps below take ~0.75, for each sampled value. Beyond 2^53 - 1 it goes their way.
        whole = number * 10**exponent
        if -MAX_REGISTER_WH <= whole <= MAX_REGISTER_WH:
            return str(whole), _ENERGY_UNITS.get(unit, unit)
    raw = Decimal(str(number))
    try:
        scaled = raw.scaleb(exponent)
    except ArithmeticError:
        return format(raw.normalize(), "f"), unit
    if not scaled.is_finite() or abs(scaled) > MAX_REGISTER_WH:
        return format(raw.normalize(), "f"), unit
    return format(scaled.normalize(), "f"), _ENERGY_UNITS.get(unit, unit)


def remote_start(connector_id: int, id_tag: str, remote_start_id: int | None) -> Payload:
    """RequestStartTransaction on the EVSE (our connector), for a central idToken."""
    if remote_start_id is None:
        raise CommandInvalid("RequestStartTransaction needs a remoteStartId")
    return "RequestStartTransaction", {"evseId": connector_id, "remoteStartId": remote_start_id,
                                       "idToken": {"idToken": id_tag, "type": "Central"}}


def remote_start_link(action: str, payload: dict[str, Any]) -> tuple[int, str] | None:
    """(remoteStartId, idToken) of a RequestStartTransaction payload, whoever built it (the
    hub, an operator, another cluster node); None for any other call or a malformed one (the
    session refuses that before it is sent)."""
    if action != "RequestStartTransaction":
        return None
    remote_start_id, id_token = payload.get("remoteStartId"), payload.get("idToken")
    token = id_token.get("idToken") if isinstance(id_token, dict) else None
    if type(remote_start_id) is not int or not isinstance(token, str) or not token:
        return None
    return remote_start_id, token


def remote_stop(transaction_id: int, station_transaction_id: str | None) -> Payload:
    if station_transaction_id is None:
        raise CommandInvalid(f"transaction {transaction_id} has no OCPP 2.0.1 transactionId")
    return "RequestStopTransaction", {"transactionId": station_transaction_id}


def transaction_event(station_id: str, payload: dict[str, Any]) -> TransactionEvent:
    """A TransactionEvent request (camelCase keys, as sent) as a version-neutral event. The
    EVSE is our connector; its values are the event's meterValue, flattened like MeterValues'.
    An idToken of type NoAuthorization names nobody: no idTag."""
    event_type, transaction_info = payload["eventType"], payload["transactionInfo"]
    evse, id_token = payload.get("evse"), payload.get("idToken")
    evse_id = evse["id"] if evse else None
    no_authorization = bool(id_token) and id_token["type"] == NO_AUTHORIZATION
    return TransactionEvent(
        station_id=station_id, station_transaction_id=transaction_info["transactionId"],
        ocpp_version="2.0.1", event_type=event_type, seq_no=payload["seqNo"],
        timestamp=parse_timestamp(payload["timestamp"]), connector_id=evse_id,
        id_tag=id_token["idToken"] if id_token and not no_authorization else None,
        no_authorization=no_authorization,
        remote_start_id=transaction_info.get("remoteStartId"),
        stop_reason=transaction_info.get("stoppedReason") if event_type == "Ended" else None,
        offline=bool(payload.get("offline")),
        values=meter_values(station_id, evse_id or 0, payload.get("meterValue") or ()))
