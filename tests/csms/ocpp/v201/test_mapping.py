"""2.0.1 payload mapping: EVSE status folding and sampled values in domain units (whole
numbers scaled with ints, the rest with Decimal, the same text either way)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csms.commands import CommandInvalid
from csms.domain import MAX_REGISTER_WH
from csms.events import Authorization
from csms.ocpp.framing import MessageType
from csms.ocpp.schemas import violation
from csms.ocpp.v201 import VERSION, mapping


@pytest.mark.parametrize(("connectors", "status"), [
    ({1: "Available"}, "Available"),
    ({1: "Occupied", 2: "Unavailable"}, "Occupied"),
    ({1: "Faulted", 2: "Available"}, "Available"),
    ({1: "Faulted", 2: "Unavailable"}, "Unavailable"),
    ({1: "Reserved", 2: "Available"}, "Reserved"),
])
def test_an_evse_shows_its_most_telling_connector(connectors: dict[int, str],
                                                   status: str) -> None:
    assert mapping.evse_status(connectors) == status


def sampled(value: float, **extra: object) -> list[dict]:
    return [{"timestamp": "2026-11-22T10:00:00Z", "sampledValue": [{"value": value, **extra}]}]


@pytest.mark.parametrize(("sample", "value", "unit"), [
    (sampled(1234), "1234", "Wh"),
    (sampled(12.5, unitOfMeasure={"unit": "kWh"}), "12500", "Wh"),
    (sampled(12.5, unitOfMeasure={"unit": "Wh", "multiplier": 3}), "12500", "Wh"),
    (sampled(7.4, unitOfMeasure={"unit": "W", "multiplier": 3}), "7400", "W"),
    (sampled(230.1, unitOfMeasure={"unit": "V"}), "230.1", "V"),
    (sampled(1e300, unitOfMeasure={"unit": "kWh"}), "1" + "0" * 300, "kWh"),
])
def test_sampled_values_in_domain_units(sample: list[dict], value: str, unit: str) -> None:
    [meter] = mapping.meter_values("CP", 2, sample)
    assert (meter.value, meter.unit, meter.connector_id) == (value, unit, 2)
    assert meter.measurand == "Energy.Active.Import.Register" or unit in ("W", "V")


def test_id_token_info_carries_the_group_token() -> None:
    info = mapping.id_token_info(Authorization("Accepted", None, "FLEET-1"))
    assert info.status == "Accepted"
    assert info.group_id_token is not None and info.group_id_token.id_token == "FLEET-1"


def test_command_payloads_are_valid_2_0_1() -> None:
    for action, payload in (mapping.remote_start(2, "TAG", 41),
                            mapping.remote_stop(17, "station-tx-9")):
        assert violation(VERSION.name, MessageType.Call, action, payload) is None
    with pytest.raises(CommandInvalid):
        mapping.remote_stop(17, None)  # a transaction the station never named


def scaled_by_decimal(number: float | int, unit: str, multiplier: int) -> tuple[str, str]:
    """`_scaled` before its int shortcut (0965e79): every value through Decimal."""
    units = {"kWh": "Wh", "kvarh": "varh"}
    raw = Decimal(str(number))
    try:
        scaled = raw.scaleb(multiplier + (3 if unit in units else 0))
    except ArithmeticError:
        return format(raw.normalize(), "f"), unit
    if not scaled.is_finite() or abs(scaled) > MAX_REGISTER_WH:
        return format(raw.normalize(), "f"), unit
    return format(scaled.normalize(), "f"), units.get(unit, unit)


@given(st.one_of(st.integers(-10**6, 10**6), st.integers(-2**60, 2**60), st.integers(),
                 st.floats(), st.sampled_from([0, -1, 2**53 - 1, 2**53, 10**15, 10**16])),
       st.sampled_from(["Wh", "kWh", "varh", "kvarh", "W", "V", ""]),
       st.integers(-20, 20) | st.integers(-2**31, 2**31 - 1))
def test_scaling_gives_what_decimal_alone_gave(number: float | int, unit: str,
                                               multiplier: int) -> None:
    assert mapping._scaled(number, unit, multiplier) == scaled_by_decimal(number, unit,
                                                                         multiplier)
