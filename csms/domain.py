"""Version-neutral charging domain types shared by the hub, the store and the surfaces."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

ENERGY_REGISTER = "Energy.Active.Import.Register"
# A station id (OCPP chargeBoxIdentity, the last segment of /ocpp/{id}): printable, no slash,
# at most 48 characters, and no "." or "..": URLs normalise dot segments away, so neither the
# operator API nor a proxy could address such a station. Python and ECMA regex alike.
STATION_ID_PATTERN = r"^(?!\.$)(?!.*\.\.)[A-Za-z0-9._:\-*+|@~]{1,48}$"
STATION_ID_RULE = "1 to 48 of A-Z a-z 0-9 . _ : - * + | @ ~, and no '..'"
_STATION_ID = re.compile(STATION_ID_PATTERN)
# stop reason of a transaction closed because a newer one started on its connector
SUPERSEDED = "Superseded"
# The largest energy register reading taken as one, in Wh: JSON readers (the dashboard's
# JavaScript) read integers up to 2^53 exactly; a reading beyond is kept as sent, not used.
MAX_REGISTER_WH = 2**53 - 1
# OCPP security profiles: 1 HTTP Basic, 2 TLS + Basic, 3 mutual TLS (certificate CN = station id)
SECURITY_PROFILES = (1, 2, 3)


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(moment: datetime | None) -> str | None:
    """RFC 3339 UTC with a `Z`, millisecond precision (what OCPP and our APIs emit)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# (millisecond since the epoch, its `isoformat` text): the text `utcnow_text` last made
_now_text: tuple[int, str] = (-1, "")


def utcnow_text() -> str:
    """`isoformat(utcnow())`, made once per millisecond: a busy hub answers several Heartbeats
    in one (each carries the current time), and formatting cost ~1.3 us of each, ~0.1 us
    when the millisecond's text is made already."""
    global _now_text
    ms = time.time_ns() // 1_000_000
    if _now_text[0] != ms:
        moment = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
        _now_text = (ms, isoformat(moment) or "")
    return _now_text[1]


class ConstraintViolation(ValueError):
    """A value of the right type that cannot be right (a transaction on connector 0): the
    station's message is refused, never stored."""


def valid_station_id(text: str) -> bool:
    """The whole of `text` is a station id (`re.match` with `$` let "ID\\n" through)."""
    return _STATION_ID.fullmatch(text) is not None


class InvalidTimestamp(ConstraintViolation):
    """A dateTime field that is not ISO 8601."""


def parse_timestamp(text: str) -> datetime:
    """Parse an OCPP dateTime; naive values are taken as UTC.

    A moment that has no UTC equivalent inside years 1-9999 (`0001-01-01T00:00:00+05:00`) is
    as invalid as one that does not parse."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, AttributeError) as exc:
        raise InvalidTimestamp(f"not an ISO 8601 date-time: {text!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidTimestamp(f"outside the years 1-9999 in UTC: {text!r}") from None


@dataclass(slots=True)
class Connector:
    connector_id: int
    status: str
    error_code: str = "NoError"
    info: str | None = None
    vendor_error_code: str | None = None
    updated_at: datetime | None = None


@dataclass(slots=True)
class Station:
    id: str
    password_hash: str | None = None
    vendor: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware_version: str | None = None
    connected: bool = False
    last_seen: datetime | None = None
    last_boot_at: datetime | None = None
    provisioned: bool = False
    connectors: list[Connector] = field(default_factory=list)
    security_profile: int | None = None  # None: the server's `ocpp.security_profile`

    def profile(self, default: int) -> int:
        """The security profile this station connects with: its own, else `default`."""
        return default if self.security_profile is None else self.security_profile


@dataclass(slots=True)
class IdTag:
    id_tag: str
    status: str = "Accepted"  # Accepted | Blocked | Expired | Invalid
    expiry_date: datetime | None = None
    parent_id_tag: str | None = None


@dataclass(slots=True)
class Transaction:
    transaction_id: int
    station_id: str
    connector_id: int
    id_tag: str
    meter_start: int
    started_at: datetime
    reservation_id: int | None = None
    meter_stop: int | None = None
    stopped_at: datetime | None = None
    stop_reason: str | None = None
    stop_id_tag: str | None = None
    last_energy_wh: int | None = None  # latest Energy.Active.Import.Register reading, Wh
    last_energy_at: datetime | None = None
    # OCPP 2.0.1: the station owns the transaction's id (a string, unique per station); our
    # integer `transaction_id` stays the internal key every other part (billing) uses.
    ocpp_version: str = "1.6"
    station_transaction_id: str | None = None
    remote_start_id: int | None = None
    # TransactionEvent seqNos received, as [first, last] ranges (`csms.station_transactions`)
    seq_nos: list[list[int]] = field(default_factory=list)
    first_energy_at: datetime | None = None  # time of the register reading in meter_start
    # OCPP 2.0.1: how many transactions of this station used the same station transaction id
    # before this one (a station that reuses ids after a reboot; `csms.station_transactions`)
    generation: int = 0

    @property
    def active(self) -> bool:
        return self.stopped_at is None

    @property
    def energy_wh(self) -> int:
        """Energy so far (active) or delivered (stopped), from the transaction's own readings."""
        end = self.meter_stop if self.meter_stop is not None else self.last_energy_wh
        if end is None:
            return 0
        return max(0, end - self.meter_start)


@dataclass(slots=True)
class MeterValue:
    station_id: str
    connector_id: int
    transaction_id: int | None
    timestamp: datetime
    value: str
    measurand: str = ENERGY_REGISTER
    unit: str | None = "Wh"
    context: str | None = None
    phase: str | None = None
    location: str | None = None
    format: str | None = None


@dataclass(slots=True)
class OrphanStop:
    """A StopTransaction for a transaction the CSMS does not know (recorded, never refused)."""

    station_id: str
    transaction_id: int
    meter_stop: int
    stopped_at: datetime
    reason: str | None = None
    id_tag: str | None = None
    received_at: datetime | None = None


# A frame as the message log takes it in, grouped per station: (direction, at, frame text).
# Plain tuples of strings and a datetime: the garbage collector stops tracking them, where a
# second's buffered LoggedFrames were ~17% of the log's CPU in its walks (round four).
FrameEntry = tuple[str, datetime, str]


@dataclass(slots=True)
class LoggedFrame:
    station_id: str
    direction: str  # "in" (station -> CSMS) | "out" (CSMS -> station)
    frame: str
    at: datetime


def energy_wh(value: MeterValue) -> int | None:
    """The reading in whole Wh if it is an unphased energy register of a plausible size, else
    None."""
    if value.measurand != ENERGY_REGISTER or value.phase is not None:
        return None
    if value.unit not in (None, "Wh", "kWh"):
        return None
    text = value.value
    # The usual reading is whole digits: int() takes it in ~0.15 us where Decimal's parse,
    # multiply and quantize took ~0.9 us, twice per MeterValues frame (the loop's register and
    # the store's). Up to 16 digits: beyond 2^53 - 1 (16 digits) nothing is a reading anyway.
    if type(text) is str and len(text) <= 16 and text.isascii() and text.isdigit():
        amount = int(text) * (1000 if value.unit == "kWh" else 1)
        return amount if amount <= MAX_REGISTER_WH else None
    try:
        amount = Decimal(value.value.strip()) * (1000 if value.unit == "kWh" else 1)
    except (ArithmeticError, AttributeError):  # not a number, or beyond Decimal's range
        return None
    if not amount.is_finite() or not -MAX_REGISTER_WH <= amount <= MAX_REGISTER_WH:
        return None  # no meter counts that far; it would not fit the store's integer either
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


# (transaction id, station id) -> (timestamp, Wh) of the newest energy register reading
NewestEnergy = dict[tuple[int, str], tuple[datetime, int]]


def newest_energy(values: Sequence[MeterValue]) -> NewestEnergy:
    """The newest energy register per (transaction, station) among `values` (later in the
    sequence wins ties): what every store keeps as a transaction's latest register."""
    newest: NewestEnergy = {}
    for value in values:
        if value.transaction_id is None:
            continue
        wh = energy_wh(value)
        if wh is None:
            continue
        key = (value.transaction_id, value.station_id)
        if key not in newest or newest[key][0] <= value.timestamp:
            newest[key] = (value.timestamp, wh)
    return newest


def apply_energy_readings(transaction: Transaction, newest: NewestEnergy) -> bool:
    """Move the transaction's latest energy register forward (never back) to its reading in
    `newest` (`newest_energy` of the values), the same rule the stores apply; True when it
    moved."""
    reading = newest.get((transaction.transaction_id, transaction.station_id))
    if reading is None:
        return False
    if transaction.last_energy_at is not None and transaction.last_energy_at >= reading[0]:
        return False
    transaction.last_energy_at, transaction.last_energy_wh = reading
    return True
