"""OCPP 1.6 payloads <-> version-neutral domain values, both directions."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from ocpp.v16 import datatypes

from csms.domain import (
    ENERGY_REGISTER,
    MAX_REGISTER_WH,
    MeterValue,
    isoformat,
    parse_timestamp,
)
from csms.events import Authorization
from csms.ocpp.version import Payload


def id_tag_info(auth: Authorization) -> datatypes.IdTagInfo:
    return datatypes.IdTagInfo(status=auth.status, parent_id_tag=auth.parent_id_tag,
                               expiry_date=isoformat(auth.expiry_date))


def meter_values(station_id: str, connector_id: int,
                 meter_value: Iterable[dict[str, Any]]) -> list[MeterValue]:
    """Flatten 1.6 meterValue[] / transactionData[] (camelCase keys, as sent) into domain values.

    Defaults per the 1.6 spec: measurand Energy.Active.Import.Register, unit Wh. Energy in kWh
    is converted to Wh so every stored energy value has one unit. The values are not yet
    attached to a transaction: the charging service does that once it knows which one.
    Raises InvalidTimestamp for a timestamp that is not ISO 8601.
    """
    values: list[MeterValue] = []
    for entry in meter_value:
        at = parse_timestamp(entry["timestamp"])
        for sample in entry.get("sampledValue", ()):
            unit = sample.get("unit") or "Wh"
            value = str(sample["value"])
            if unit in ("kWh", "kvarh") and sample.get("format", "Raw") == "Raw":
                value, unit = _in_wh(value, unit)
            # positional, in MeterValue's field order (station_id, connector_id,
            # transaction_id, timestamp, value, measurand, unit, context, phase, location,
            # format): by keyword it cost ~5,000 instructions more per value (round six)
            values.append(MeterValue(
                station_id, connector_id, None, at, value,
                sample.get("measurand") or ENERGY_REGISTER, unit, sample.get("context"),
                sample.get("phase"), sample.get("location"), sample.get("format")))
    return values


def _in_wh(value: str, unit: str) -> tuple[str, str]:
    """kWh (kvarh) text in Wh (varh); as sent when it is no number a meter could show
    ("1e999990" kWh would be a million digits of Wh)."""
    try:
        wh = Decimal(value) * 1000
    except ArithmeticError:  # not a number, or beyond Decimal's range
        return value, unit
    if not wh.is_finite() or abs(wh) > MAX_REGISTER_WH:
        return value, unit
    return format(wh.normalize(), "f"), unit[1:]


def remote_start(connector_id: int, id_tag: str, remote_start_id: int | None) -> Payload:
    return "RemoteStartTransaction", {"connectorId": connector_id, "idTag": id_tag}


def remote_stop(transaction_id: int, station_transaction_id: str | None) -> Payload:
    return "RemoteStopTransaction", {"transactionId": transaction_id}
