"""Domain helpers made cheaper in round five of issue 15 give what they gave before:
`energy_wh` reads whole-digit readings with int(), for every reading text what the Decimal
rule alone gave; `utcnow_text` is `isoformat(utcnow())` made once per millisecond."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from hypothesis import given
from hypothesis import strategies as st

from csms.domain import (
    ENERGY_REGISTER,
    MAX_REGISTER_WH,
    MeterValue,
    Transaction,
    apply_energy_readings,
    energy_wh,
    newest_energy,
    parse_timestamp,
    utcnow,
    utcnow_text,
)
from tests.support.ocpp_frames import readings

NOW = datetime(2026, 11, 22, 10, tzinfo=UTC)


def by_decimal(text: str, unit: str | None) -> int | None:
    """The rule before the int() shortcut (0965e79)."""
    try:
        amount = Decimal(text.strip()) * (1000 if unit == "kWh" else 1)
    except ArithmeticError:
        return None
    if not amount.is_finite() or not -MAX_REGISTER_WH <= amount <= MAX_REGISTER_WH:
        return None
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


digits = st.text(st.sampled_from("0123456789"), min_size=0, max_size=20)
texts = st.one_of(digits, readings, st.integers(0, 2**60).map(str),
                  st.sampled_from(["9007199254740991", "9007199254740992", "9007199254740",
                                   "9007199254741", "0000000000000000000001", "٣٤", "²",
                                   "1_000", " 12", "+5", "-0"]))


@given(texts, st.sampled_from([None, "Wh", "kWh"]))
def test_energy_readings_are_what_the_decimal_rule_gives(text: str, unit: str | None) -> None:
    value = MeterValue("CP", 1, 7, NOW, text, measurand=ENERGY_REGISTER, unit=unit)
    assert energy_wh(value) == by_decimal(text, unit)


def test_utcnow_text_is_the_current_millisecond_as_isoformat_writes_it() -> None:
    for _ in range(2000):
        before = utcnow()
        text = utcnow_text()
        after = utcnow()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text), text
        moment = parse_timestamp(text)
        assert before - timedelta(microseconds=before.microsecond % 1000) <= moment <= after


def test_a_transactions_register_moves_to_its_newest_reading_and_never_back() -> None:
    """`apply_energy_readings` takes `newest_energy` of the values (computed once for the store
    and the loop's copy, round six): the transaction's own station and id only, later in the
    call winning a tie, and an older reading leaving the register alone."""
    def reading(station: str, seconds: int, wh: str) -> MeterValue:
        return MeterValue(station, 1, 7, NOW + timedelta(seconds=seconds), wh)

    tx = Transaction(7, "CP", 1, "T", 0, NOW)
    values = [reading("CP", 2, "200"), reading("CP", 2, "250"), reading("CP", 1, "100"),
              reading("CP2", 9, "999"),  # another station's transaction 7: not this one
              MeterValue("CP", 1, 7, NOW + timedelta(seconds=5), "7", "Power.Active.Import")]
    assert apply_energy_readings(tx, newest_energy(values))
    assert (tx.last_energy_wh, tx.last_energy_at) == (250, NOW + timedelta(seconds=2))
    assert not apply_energy_readings(tx, newest_energy([reading("CP", 1, "500")]))
    assert not apply_energy_readings(tx, {})
    assert (tx.last_energy_wh, tx.last_energy_at) == (250, NOW + timedelta(seconds=2))
