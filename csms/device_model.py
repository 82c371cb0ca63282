"""A station's device model as it reports it: components, their variables and the values.

An OCPP 2.0.1 station answers GetBaseReport (and GetReport) with a report sent in parts
(NotifyReport: requestId, seqNo, tbc). The version's mapping turns each part into a
`ReportPart` of `ReportedVariable`s, one per variable attribute (Actual, Target, MinSet,
MaxSet), and the store assembles them: the station's latest COMPLETE report is what operators
see, and it replaces the previous one only once its last part (tbc false, every seqNo before
it received) has arrived. A report that never completes leaves the previous one in place.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ReportedVariable:
    """One attribute of one variable of one component, as the station reported it."""

    component: str
    variable: str
    attribute_type: str = "Actual"  # Actual | Target | MinSet | MaxSet
    value: str | None = None  # absent when the attribute is write-only
    component_instance: str | None = None
    variable_instance: str | None = None
    evse_id: int | None = None
    connector_id: int | None = None
    mutability: str = "ReadWrite"  # ReadOnly | WriteOnly | ReadWrite
    persistent: bool = False
    constant: bool = False
    data_type: str | None = None  # string, decimal, integer, dateTime, boolean, ...
    unit: str | None = None
    min_limit: float | None = None
    max_limit: float | None = None
    values_list: str | None = None
    supports_monitoring: bool | None = None


def variables_to_json(variables: list[ReportedVariable]) -> str:
    """How the stores keep a part's variables: one JSON text (no document-key rules, no
    column per field of a list that varies per station)."""
    return json.dumps([dataclasses.asdict(v) for v in variables], separators=(",", ":"))


def variables_from_json(text: str) -> list[ReportedVariable]:
    return [ReportedVariable(**item) for item in json.loads(text)]


@dataclass(frozen=True, slots=True)
class ReportPart:
    """One NotifyReport: part `seq_no` of report `request_id`; `tbc`: more parts follow."""

    station_id: str
    request_id: int
    seq_no: int
    tbc: bool
    generated_at: datetime
    variables: list[ReportedVariable]


@dataclass(frozen=True, slots=True)
class DeviceReport:
    """A station's complete report: every part's variables in seqNo order."""

    station_id: str
    request_id: int
    generated_at: datetime  # when the station generated its first part
    completed_at: datetime  # when its last part arrived here
    parts: int
    variables: list[ReportedVariable]
