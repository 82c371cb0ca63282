"""Tariffs and the cost of a charging session.

Cost = fixed connection fee + energy (kWh) x price per kWh, computed entirely in Decimal and
rounded half-up to the cent once, at the end. Energy arrives in Wh (meterStop - meterStart).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

from billing.money import Amount, non_negative_amount, to_cents
from billing.settings import TariffSettings

# Enough digits that no realistic meter reading or price is ever rounded before the final cent.
_PRECISION = 60


def energy_cost_cents(energy_wh: int, price_per_kwh: Decimal, fixed_fee: Decimal) -> int:
    """Fixed fee + kWh x price, in cents, rounded ROUND_HALF_UP.

    12_345 Wh at 1.50/kWh with a 2.00 fee: 2.00 + 12.345 x 1.50 = 20.5175 -> 2052 cents.
    """
    if isinstance(energy_wh, bool) or not isinstance(energy_wh, int):
        raise ValueError(f"energy_wh must be an integer number of Wh: {energy_wh!r}")
    if energy_wh < 0:
        raise ValueError(f"energy_wh must not be negative: {energy_wh}")
    price = _non_negative(price_per_kwh, "price_per_kwh")
    fee = _non_negative(fixed_fee, "fixed_fee")
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        total = fee + Decimal(energy_wh).scaleb(-3) * price
        return to_cents(total)


def _non_negative(value: Amount, name: str) -> Decimal:
    if isinstance(value, float):
        raise ValueError(f"{name} must be a Decimal, not a float: {value!r}")
    try:
        return non_negative_amount(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


@dataclass(frozen=True)
class Tariff:
    """A price per kWh plus a fixed connection fee, in currency units (Decimal)."""

    price_per_kwh: Decimal
    fixed_connection_fee: Decimal
    currency: str = "BRL"

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "price_per_kwh", _non_negative(self.price_per_kwh, "price_per_kwh")
        )
        object.__setattr__(
            self,
            "fixed_connection_fee",
            _non_negative(self.fixed_connection_fee, "fixed_connection_fee"),
        )

    @classmethod
    def from_settings(cls, settings: TariffSettings, currency: str) -> Tariff:
        """The default tariff from `[billing.tariff]` and `billing.currency`."""
        return cls(settings.price_per_kwh, settings.fixed_connection_fee, currency)

    def cost_cents(self, energy_wh: int) -> int:
        """Cost of `energy_wh` Wh under this tariff, in cents."""
        return energy_cost_cents(energy_wh, self.price_per_kwh, self.fixed_connection_fee)

    def matches_shown(self, price: Amount, fixed_connection_cost: Amount) -> bool:
        """Whether the price a driver app showed equals this tariff, compared in whole cents.

        `price` and `fixed_connection_cost` may be JSON numbers (float such as 1.5, int) or
        decimal strings; floats go through `repr`, never float arithmetic. Both sides are
        rounded half-up to the cent and compared as integers, so 1.5 matches "1.50" and 1.51
        does not. (A tariff with sub-cent digits, e.g. 0.895/kWh, matches a shown 0.90.)
        Raises ValueError when a shown value is not a finite number.
        """
        return to_cents(price) == to_cents(self.price_per_kwh) and to_cents(
            fixed_connection_cost
        ) == to_cents(self.fixed_connection_fee)
