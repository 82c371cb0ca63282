"""1.6 payloads -> domain values, and the command payloads we send (checked by the schemas)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from csms.domain import ENERGY_REGISTER, InvalidTimestamp
from csms.events import Authorization
from csms.ocpp.framing import MessageType
from csms.ocpp.schemas import violation
from csms.ocpp.v16 import VERSION, mapping


def test_sampled_values_take_the_spec_defaults_and_store_energy_in_wh() -> None:
    values = mapping.meter_values("CP", 2, [
        {"timestamp": "2026-11-22T10:00:00Z", "sampledValue": [
            {"value": "1500"},
            {"value": "2.5", "unit": "kWh", "context": "Sample.Periodic"},
            {"value": "abc", "unit": "kWh"},
            {"value": "7.2", "unit": "kWh", "format": "SignedData"},
            {"value": "11", "measurand": "Power.Active.Import", "unit": "kW", "phase": "L1"},
        ]},
    ])
    at = datetime(2026, 11, 22, 10, tzinfo=UTC)
    assert [(v.measurand, v.value, v.unit) for v in values] == [
        (ENERGY_REGISTER, "1500", "Wh"), (ENERGY_REGISTER, "2500", "Wh"),
        (ENERGY_REGISTER, "abc", "kWh"), (ENERGY_REGISTER, "7.2", "kWh"),
        ("Power.Active.Import", "11", "kW")]
    assert all((v.station_id, v.connector_id, v.transaction_id, v.timestamp) ==
               ("CP", 2, None, at) for v in values)
    assert values[1].context == "Sample.Periodic" and values[4].phase == "L1"


def test_kwh_values_too_large_to_be_readings_are_kept_as_sent() -> None:
    values = mapping.meter_values("CP", 1, [
        {"timestamp": "2026-11-22T10:00:00Z", "sampledValue": [
            {"value": v, "unit": "kWh"} for v in ("1e999999", "1e999990", "-1e40", "NaN",
                                                   "Infinity", "12.5")]},
    ])
    assert [(v.value, v.unit) for v in values] == [
        ("1e999999", "kWh"), ("1e999990", "kWh"), ("-1e40", "kWh"), ("NaN", "kWh"),
        ("Infinity", "kWh"), ("12500", "Wh")]


def test_a_bad_timestamp_is_refused() -> None:
    with pytest.raises(InvalidTimestamp):
        mapping.meter_values("CP", 1, [{"timestamp": "yesterday", "sampledValue": []}])


def test_id_tag_info_and_command_payloads_are_valid_1_6() -> None:
    info = mapping.id_tag_info(Authorization("Blocked", datetime(2027, 1, 1, tzinfo=UTC), "P"))
    assert (info.status, info.expiry_date, info.parent_id_tag) == (
        "Blocked", "2027-01-01T00:00:00.000Z", "P")
    for action, payload in (mapping.remote_start(1, "TAG", None), mapping.remote_stop(17, None)):
        assert violation(VERSION.name, MessageType.Call, action, payload) is None
