"""The SQLite store's timestamp text (`ts`, built by hand in round six of issue 15 for speed) is
exactly `isoformat(timespec="microseconds")` of the moment in UTC, for every moment: naive ones
taken as UTC, other offsets converted, days at the ends of the calendar, and past the day cache's
bound."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from csms.store import sqlite_support
from csms.store.sqlite_support import MAX_DAYS, ts

OFFSETS = st.one_of(st.none(), st.just(UTC), st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-23 * 60, 23 * 60)))


def reference(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                    timezones=OFFSETS))
def test_ts_is_isoformat_in_utc(moment: datetime) -> None:
    assert ts(moment) == reference(moment)


def test_ts_past_the_day_cache_bound() -> None:
    start = datetime(2026, 1, 1, 23, 59, 59, 999999, tzinfo=UTC)
    moments = [start + timedelta(days=n) for n in range(MAX_DAYS + 10)]
    assert [ts(m) for m in moments] == [reference(m) for m in moments]
    assert len(sqlite_support._DAYS) <= MAX_DAYS
    assert ts(datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)) == "2026-11-22T10:00:00.000000+00:00"
