"""Money primitives: amounts are integer minor units (cents); never floats.

Decimal currency units (as written in config or shown by a driver app) are converted to cents
with ROUND_HALF_UP. A float that reaches us (a JSON number such as 1.5) is converted through its
shortest `repr`, so 1.5 becomes Decimal("1.5") and never 1.5000000000000000277...
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator

CENT = Decimal("0.01")

Amount = Decimal | int | str | float


def to_decimal(value: Amount) -> Decimal:
    """A finite Decimal from a Decimal, int, numeric string or float (via repr, no float math)."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str | float):
        raise ValueError(f"not an amount: {value!r}")
    if isinstance(value, float):
        value = repr(value)
    try:
        result = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"not a finite amount: {value!r}")
    return result


def non_negative_amount(value: Any) -> Decimal:
    """`to_decimal`, refusing amounts below zero: a price, a fee, a shown price."""
    amount = to_decimal(value)
    if amount < 0:
        raise ValueError(f"must be a non-negative amount: {value!r}")
    return amount


# The one validator for a price in currency units in a pydantic model (config, request bodies):
# JSON numbers go through `repr`, never float math; NaN, infinities and negatives are refused.
PriceAmount = Annotated[Decimal, BeforeValidator(non_negative_amount)]


def round_to_cent(amount: Amount) -> Decimal:
    """The amount rounded half-up to the cent (two decimal places)."""
    return to_decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)


def to_cents(amount: Amount) -> int:
    """Currency units -> integer cents, rounded half-up: Decimal("20.5175") -> 2052."""
    return int(round_to_cent(amount).scaleb(2))


def from_cents(cents: int) -> Decimal:
    """Integer cents -> Decimal currency units with two places: 2052 -> Decimal("20.52")."""
    if isinstance(cents, bool) or not isinstance(cents, int):
        raise ValueError(f"cents must be an integer: {cents!r}")
    return Decimal(cents).scaleb(-2).quantize(CENT)


def format_cents(cents: int, currency: str) -> str:
    """Human-readable amount for receipts and logs: format_cents(2052, "BRL") -> "BRL 20.52"."""
    return f"{currency} {from_cents(cents)}"
