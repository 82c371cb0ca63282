"""Money conversions, the cost function and tariffs."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.money import format_cents, from_cents, round_to_cent, to_cents, to_decimal
from billing.settings import TariffSettings
from billing.tariffs import Tariff, energy_cost_cents


@pytest.mark.parametrize(
    ("amount", "cents"),
    [
        (Decimal("20.5175"), 2052),
        (Decimal("0.005"), 1),  # half-up, not banker's rounding
        (Decimal("0.015"), 2),
        (Decimal("0.0049"), 0),
        ("1.50", 150),
        (2, 200),
        (1.5, 150),
        (0.1, 10),
        (1.005, 101),  # repr(1.005) == "1.005"; float math would give 100
    ],
)
def test_to_cents_rounds_half_up(amount: object, cents: int) -> None:
    assert to_cents(amount) == cents  # type: ignore[arg-type]


def test_float_goes_through_repr_not_binary_value() -> None:
    assert to_decimal(1.1) == Decimal("1.1")
    assert to_decimal(0.1) + to_decimal(0.2) == Decimal("0.3")


@pytest.mark.parametrize("bad", ["abc", "", float("nan"), float("inf"), "Infinity", True, None])
def test_to_decimal_rejects_non_amounts(bad: object) -> None:
    with pytest.raises(ValueError):
        to_decimal(bad)  # type: ignore[arg-type]


def test_from_cents_and_format() -> None:
    assert from_cents(2052) == Decimal("20.52")
    assert str(from_cents(5)) == "0.05"
    assert format_cents(2052, "BRL") == "BRL 20.52"
    with pytest.raises(ValueError):
        from_cents(1.5)  # type: ignore[arg-type]


def test_cost_example_from_the_brief() -> None:
    # 12.345 kWh x 1.50 = 18.5175; + 2.00 fee = 20.5175 -> 2052 cents
    assert energy_cost_cents(12_345, Decimal("1.50"), Decimal("2.00")) == 2052


def test_cost_edges() -> None:
    assert energy_cost_cents(0, Decimal("1.50"), Decimal("2.00")) == 200
    assert energy_cost_cents(1, Decimal("1.50"), Decimal("0")) == 0  # 0.0015 -> 0.00
    assert energy_cost_cents(4, Decimal("1.25"), Decimal("0")) == 1  # 0.005 -> 0.01 (half up)
    assert energy_cost_cents(10**12, Decimal("0.89"), Decimal("0")) == 89_000_000_000


@pytest.mark.parametrize(
    ("energy", "price", "fee"),
    [
        (-1, Decimal("1"), Decimal("0")),
        (1.5, Decimal("1"), Decimal("0")),
        (True, Decimal("1"), Decimal("0")),
        (10, Decimal("-1"), Decimal("0")),
        (10, Decimal("1"), Decimal("-0.01")),
        (10, 1.5, Decimal("0")),
    ],
)
def test_cost_rejects_bad_input(energy: object, price: object, fee: object) -> None:
    with pytest.raises(ValueError):
        energy_cost_cents(energy, price, fee)  # type: ignore[arg-type]


prices = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False, allow_infinity=False)
fees = st.decimals(min_value=0, max_value=100, places=2, allow_nan=False, allow_infinity=False)
energies = st.integers(min_value=0, max_value=10**9)


@given(energy=energies, price=prices, fee=fees)
def test_cost_equals_exact_decimal_formula(energy: int, price: Decimal, fee: Decimal) -> None:
    exact = fee + Decimal(energy) / Decimal(1000) * price
    expected = int(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) * 100)
    cost = energy_cost_cents(energy, price, fee)
    assert type(cost) is int
    assert cost == expected
    assert cost >= 0
    assert cost >= int(fee * 100)


@given(a=energies, b=energies, price=prices, fee=fees)
def test_cost_is_monotone_in_energy(a: int, b: int, price: Decimal, fee: Decimal) -> None:
    low, high = sorted((a, b))
    assert energy_cost_cents(low, price, fee) <= energy_cost_cents(high, price, fee)


@given(
    amount=st.decimals(
        allow_nan=False, allow_infinity=False, places=6, min_value=-(10**6), max_value=10**6
    )
)
def test_round_to_cent_is_within_half_a_cent(amount: Decimal) -> None:
    rounded = round_to_cent(amount)
    assert abs(rounded - amount) <= Decimal("0.005")
    assert to_cents(amount) == int(rounded * 100)


def test_tariff_from_settings_and_cost() -> None:
    tariff = Tariff.from_settings(TariffSettings(), "BRL")
    assert tariff == Tariff(Decimal("1.50"), Decimal("2.00"), "BRL")
    assert tariff.cost_cents(12_345) == 2052
    custom = Tariff.from_settings(
        TariffSettings(price_per_kwh="0.89", fixed_connection_fee=0), "USD"
    )
    assert custom.currency == "USD"
    assert custom.cost_cents(10_000) == 890


def test_tariff_rejects_floats_and_negatives() -> None:
    with pytest.raises(ValueError):
        Tariff(1.5, Decimal("2.00"))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Tariff(Decimal("1.50"), Decimal("-2.00"))


@pytest.mark.parametrize(
    ("price", "fee", "matches"),
    [
        (1.5, 2.0, True),  # JSON numbers arrive as floats
        (1.50, 2, True),
        ("1.50", "2.00", True),
        (Decimal("1.5"), Decimal("2"), True),
        (1.51, 2.0, False),
        (1.5, 2.01, False),
        (1.49, 2.0, False),
        (0.15, 2.0, False),
    ],
)
def test_matches_shown(price: object, fee: object, matches: bool) -> None:
    tariff = Tariff(Decimal("1.50"), Decimal("2.00"))
    assert tariff.matches_shown(price, fee) is matches  # type: ignore[arg-type]


def test_matches_shown_rejects_non_numbers() -> None:
    tariff = Tariff(Decimal("1.50"), Decimal("2.00"))
    with pytest.raises(ValueError):
        tariff.matches_shown("one fifty", 2.0)
    with pytest.raises(ValueError):
        tariff.matches_shown(float("nan"), 2.0)


@given(cents=st.integers(min_value=0, max_value=10**7))
def test_matches_shown_accepts_its_own_price_as_float(cents: int) -> None:
    price = from_cents(cents)
    tariff = Tariff(price, Decimal("2.00"))
    # What a JSON encoder would send for this price, parsed back by the JSON decoder.
    assert tariff.matches_shown(float(str(price)), 2.0)
