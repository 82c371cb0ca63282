"""The meter handlers read the camelCase payload as it arrived (`@camel_payload`, round five of
issue 15) instead of the snake_case keyword arguments every other handler gets. On payloads
generated from the official schemas (every optional field, hostile timestamps, readings and
multipliers) and valid for them, each route hands the charging service exactly what the
snake_case path did before (kept below as the oracle, as of 0965e79), and fails with the same
error where that path failed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from csms.domain import ENERGY_REGISTER, InvalidTimestamp, MeterValue, parse_timestamp
from csms.ocpp import v16, v201
from csms.ocpp.framing import MessageType, snake_keys
from csms.ocpp.schemas import INT_MAX, INT_MIN, _inline_refs, _schema, violation
from csms.ocpp.v16.mapping import _in_wh
from csms.ocpp.v201.mapping import NO_AUTHORIZATION, _scaled
from csms.ocpp.version import OcppVersion, StationContext
from csms.settings import OcppSettings
from csms.station_transactions import TransactionEvent
from tests.support.ocpp_frames import readings, timestamps

# -- the snake_case path before the change (0965e79), the oracle ----------------------------


def old_meter_values_16(station_id: str, connector_id: int,
                        meter_value: Iterable[dict[str, Any]]) -> list[MeterValue]:
    values: list[MeterValue] = []
    for entry in meter_value:
        at = parse_timestamp(entry["timestamp"])
        for sample in entry.get("sampled_value", []):
            measurand = sample.get("measurand") or ENERGY_REGISTER
            unit = sample.get("unit") or "Wh"
            value = str(sample["value"])
            if unit in ("kWh", "kvarh") and sample.get("format", "Raw") == "Raw":
                value, unit = _in_wh(value, unit)
            values.append(MeterValue(
                station_id=station_id, connector_id=connector_id, transaction_id=None,
                timestamp=at, value=value, measurand=measurand, unit=unit,
                context=sample.get("context"), phase=sample.get("phase"),
                location=sample.get("location"), format=sample.get("format")))
    return values


def old_meter_values_201(station_id: str, evse_id: int,
                         meter_value: Iterable[dict[str, Any]]) -> list[MeterValue]:
    values: list[MeterValue] = []
    for entry in meter_value:
        at = parse_timestamp(entry["timestamp"])
        for sample in entry.get("sampled_value", []):
            unit_of_measure = sample.get("unit_of_measure") or {}
            value, unit = _scaled(sample["value"], unit_of_measure.get("unit") or "Wh",
                                  unit_of_measure.get("multiplier") or 0)
            values.append(MeterValue(
                station_id=station_id, connector_id=evse_id, transaction_id=None, timestamp=at,
                value=value, measurand=sample.get("measurand") or ENERGY_REGISTER, unit=unit,
                context=sample.get("context"), phase=sample.get("phase"),
                location=sample.get("location"), format=None))
    return values


def old_transaction_event(station_id: str, *, event_type: str, timestamp: str, seq_no: int,
                          transaction_info: dict[str, Any], evse: dict[str, Any] | None,
                          id_token: dict[str, Any] | None, offline: bool,
                          meter_value: Iterable[dict[str, Any]]) -> TransactionEvent:
    evse_id = evse["id"] if evse else None
    no_authorization = bool(id_token) and id_token["type"] == NO_AUTHORIZATION
    return TransactionEvent(
        station_id=station_id, station_transaction_id=transaction_info["transaction_id"],
        ocpp_version="2.0.1", event_type=event_type, seq_no=seq_no,
        timestamp=parse_timestamp(timestamp), connector_id=evse_id,
        id_tag=id_token["id_token"] if id_token and not no_authorization else None,
        no_authorization=no_authorization,
        remote_start_id=transaction_info.get("remote_start_id"),
        stop_reason=transaction_info.get("stopped_reason") if event_type == "Ended" else None,
        offline=offline, values=old_meter_values_201(station_id, evse_id or 0, meter_value))


def old_path(action: str, version: str, kwargs: dict[str, Any]) -> tuple[str, Any]:
    """What the old handler of `action` called the charging service with: (method, args)."""
    if (version, action) == ("1.6", "MeterValues"):
        return "meter_values", {
            "connector_id": kwargs["connector_id"], "transaction_id": kwargs.get("transaction_id"),
            "values": old_meter_values_16("CP", kwargs["connector_id"], kwargs["meter_value"])}
    if action == "StopTransaction":
        return "stop_transaction", {
            "transaction_id": kwargs["transaction_id"], "meter_stop": kwargs["meter_stop"],
            "timestamp": parse_timestamp(kwargs["timestamp"]), "reason": kwargs.get("reason"),
            "id_tag": kwargs.get("id_tag"), "transaction_data": old_meter_values_16(
                "CP", 0, kwargs.get("transaction_data") or ())}
    if action == "MeterValues":
        return "meter_values", {
            "connector_id": kwargs["evse_id"], "transaction_id": None,
            "values": old_meter_values_201("CP", kwargs["evse_id"], kwargs["meter_value"])}
    return "transaction_event", old_transaction_event(
        "CP", event_type=kwargs["event_type"], timestamp=kwargs["timestamp"],
        seq_no=kwargs["seq_no"], transaction_info=kwargs["transaction_info"],
        evse=kwargs.get("evse"), id_token=kwargs.get("id_token"),
        offline=bool(kwargs.get("offline")), meter_value=kwargs.get("meter_value") or ())


# -- the new route, through the version's table ------------------------------------------------


class RecordingService:
    """Takes the calls a handler makes, as (method, arguments)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def meter_values(self, station_id: str, **kwargs: Any) -> None:
        self.calls.append(("meter_values", kwargs))

    async def stop_transaction(self, station_id: str, **kwargs: Any) -> None:
        self.calls.append(("stop_transaction", kwargs))

    async def transaction_event(self, event: TransactionEvent) -> None:
        self.calls.append(("transaction_event", event))


def new_path(version: OcppVersion, action: str, payload: dict[str, Any]) -> tuple[str, Any]:
    service = RecordingService()
    handlers = version.handlers(StationContext("CP"), service, OcppSettings())  # type: ignore[arg-type]
    asyncio.run(version.routes[action](handlers, payload))
    [called] = service.calls
    return called


# -- payloads from the official schemas ----------------------------------------------------------

# mostly readable date-times, so that most payloads get past their timestamps
TIMES = st.one_of(st.just("2026-11-22T10:00:00Z"),
                  st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat()),
                  timestamps)
UNITS = st.sampled_from(["Wh", "kWh", "varh", "kvarh", "W", "kW", "V", "A", "Celsius", ""])
NUMBERS = st.one_of(st.integers(-3, 100_000), st.integers(), st.floats(),
                    st.sampled_from([1e300, -1e300, 2**63, 10**30, 0.1, -0.0, 12.5]))
# values chosen by property name where the schema's type alone would rarely hit the edges
BY_NAME: dict[tuple[str, str], st.SearchStrategy[Any]] = {
    ("value", "string"): readings,  # 1.6: a reading as text
    ("value", "number"): NUMBERS,  # 2.0.1: a number
    ("unit", "string"): UNITS | st.text(max_size=20),  # 2.0.1: free text, at most 20
    ("multiplier", "integer"): st.integers(-4, 4) | st.integers(INT_MIN, INT_MAX),
    ("id", "integer"): st.integers(-1, 3),  # EVSE
}


def from_schema(node: dict[str, Any], name: str = "") -> st.SearchStrategy[Any]:
    """Values of a (draft 4, `$ref`s inlined) OCPP schema node: every optional property
    sometimes, and date-times sometimes hostile (the schema check leaves formats to the
    handlers)."""
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if (name, kind) in BY_NAME:
        return BY_NAME[(name, kind)]
    if kind == "object":
        properties = node.get("properties", {})
        required = set(node.get("required", ()))
        return st.fixed_dictionaries(
            {key: from_schema(value, key) for key, value in properties.items()
             if key in required},
            optional={key: from_schema(value, key) for key, value in properties.items()
                      if key not in required})
    if kind == "array":
        return st.lists(from_schema(node["items"], name), min_size=node.get("minItems", 0),
                        max_size=min(node.get("maxItems", 3), 3))
    if kind == "string":
        if node.get("format") == "date-time":
            return TIMES
        return st.text(max_size=min(node.get("maxLength", 20), 40))
    if kind == "integer":
        return st.integers(-2, 5) | st.integers(node["minimum"], node["maximum"])
    if kind == "number":
        return NUMBERS
    assert kind == "boolean", node
    return st.booleans()


def payloads(version: str, action: str) -> st.SearchStrategy[dict[str, Any]]:
    found = _schema(version, MessageType.Call, action)
    assert found is not None
    schema = found[0]
    return from_schema(_inline_refs(schema, schema.get("definitions", {})))


def same_as_before(version: OcppVersion, action: str, payload: dict[str, Any]) -> None:
    assume(violation(version.name, MessageType.Call, action, payload) is None)
    try:
        expected = old_path(action, version.name, snake_keys(payload))
    except InvalidTimestamp:
        try:
            new_path(version, action, payload)
        except InvalidTimestamp:
            event("both refused (InvalidTimestamp)")
            return
        raise AssertionError("the snake_case path refused this payload") from None
    assert new_path(version, action, payload) == expected
    event("both took it")


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(payloads("1.6", "MeterValues"))
def test_1_6_meter_values_as_before(payload: dict[str, Any]) -> None:
    same_as_before(v16.VERSION, "MeterValues", payload)


@FUZZ
@given(payloads("1.6", "StopTransaction"))
def test_1_6_stop_transaction_as_before(payload: dict[str, Any]) -> None:
    same_as_before(v16.VERSION, "StopTransaction", payload)


@FUZZ
@given(payloads("2.0.1", "MeterValues"))
def test_2_0_1_meter_values_as_before(payload: dict[str, Any]) -> None:
    same_as_before(v201.VERSION, "MeterValues", payload)


@FUZZ
@given(payloads("2.0.1", "TransactionEvent"))
def test_2_0_1_transaction_event_as_before(payload: dict[str, Any]) -> None:
    same_as_before(v201.VERSION, "TransactionEvent", payload)
