"""OCPP 2.0.1 NotifyReport -> device-model values (`csms.device_model`).

Each ReportDataType (a component's variable with up to four attributes and its
characteristics) becomes one `ReportedVariable` per attribute, with the defaults 2.0.1 gives
absent fields: attribute type Actual, mutability ReadWrite, persistent and constant false.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from csms.device_model import ReportedVariable, ReportPart
from csms.domain import ConstraintViolation, parse_timestamp


def report_part(station_id: str, request_id: int, generated_at: str, seq_no: int,
                tbc: bool, report_data: Iterable[dict[str, Any]] | None) -> ReportPart:
    """A NotifyReport (snake_case keys, as handlers get it) as a `ReportPart`. Raises
    InvalidTimestamp for a bad generatedAt."""
    return ReportPart(station_id=station_id, request_id=request_id, seq_no=seq_no, tbc=tbc,
                      generated_at=parse_timestamp(generated_at),
                      variables=[v for item in report_data or () for v in _variables(item)])


def _variables(item: dict[str, Any]) -> list[ReportedVariable]:
    component, variable = item["component"], item["variable"]
    evse = component.get("evse") or {}
    traits = item.get("variable_characteristics") or {}
    return [ReportedVariable(
        component=component["name"], variable=variable["name"],
        attribute_type=attribute.get("type") or "Actual", value=attribute.get("value"),
        component_instance=component.get("instance"),
        variable_instance=variable.get("instance"),
        evse_id=evse.get("id"), connector_id=evse.get("connector_id"),
        mutability=attribute.get("mutability") or "ReadWrite",
        persistent=bool(attribute.get("persistent", False)),
        constant=bool(attribute.get("constant", False)),
        data_type=traits.get("data_type"), unit=traits.get("unit"),
        min_limit=_number(traits.get("min_limit")), max_limit=_number(traits.get("max_limit")),
        values_list=traits.get("values_list"),
        supports_monitoring=traits.get("supports_monitoring"),
    ) for attribute in item["variable_attribute"]]


def _number(value: Any) -> float | None:
    """A limit as a float; a number no float holds (or NaN, Infinity) breaks a constraint."""
    if value is None:
        return None
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ConstraintViolation(f"variableCharacteristics limit out of range: {value!r:.40}")
    return number
