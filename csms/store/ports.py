"""The charging store's ports, one per aggregate, composed into `Store`.

Each part of the core can depend on the narrowest port it needs (the frame log on
`FrameLogStore`, say); an adapter implements them all. Every state change is one atomic
operation in the backend (a SQL transaction or a `find_one_and_update`-style conditional
update), never a read followed by a write in the caller. Adapters: `csms.store.sqlite`
(embedded); MongoDB comes next.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Literal, Protocol

from csms.device_model import DeviceReport, ReportPart
from csms.domain import (
    FrameEntry,
    IdTag,
    LoggedFrame,
    MeterValue,
    NewestEnergy,
    OrphanStop,
    Station,
    Transaction,
)
from csms.station_transactions import EventOutcome, TransactionEvent


class StoreError(Exception):
    """The backend failed or refused an operation."""


class Keep(Enum):
    """A stored value left as it is (re-provisioning must not reset what it was not given)."""

    KEEP = "keep"


KEEP: Literal[Keep.KEEP] = Keep.KEEP


class StationStore(Protocol):
    """Stations and their connectors."""

    async def provision_station(self, station_id: str, password_hash: str | None, *,
                                keep_password: bool = False,
                                security_profile: int | Keep | None = KEEP) -> Station:
        """Create or update a provisioned station (password hash None: no password).

        keep_password: leave an existing station's password as it is (`password_hash` is
        then ignored); re-provisioning must not remove a password by omission.
        security_profile: the station's own profile (1-3), None for the server's default, or
        KEEP (the default): a new station gets None, an existing one keeps its own."""

    async def get_station(self, station_id: str) -> Station | None: ...

    async def list_stations(self) -> list[Station]: ...

    async def register_boot(
        self,
        station_id: str,
        *,
        vendor: str,
        model: str,
        serial_number: str | None,
        firmware_version: str | None,
        at: datetime,
    ) -> None:
        """Record BootNotification data; creates the station row if unknown. A boot is the
        station seen: `at` becomes last_seen, except that an older time never replaces a
        newer one (as in `set_connections`). Nothing is read back: a boot's answer needs
        none of it (on SQLite the read was half the op)."""

    async def set_connected(self, station_id: str, connected: bool, at: datetime) -> None:
        """Mark connected/disconnected and update last_seen; creates the row if unknown."""

    async def set_connections(self, states: Mapping[str, tuple[bool, datetime]]) -> None:
        """`set_connected` for many stations in one write ((connected, at) per station:
        batched connects and disconnects, `csms.connection_writer`), except that an older
        time never replaces a newer last_seen (a boot may have written a later one first)."""

    async def mark_all_disconnected(self) -> None:
        """At start-up: no station is connected to a process that just started."""

    async def touch_station(self, station_id: str, at: datetime) -> None:
        """Update last_seen (Heartbeat and any other message); an unknown station stays unknown."""

    async def touch_stations(self, seen: Mapping[str, datetime]) -> None:
        """`touch_station` for many stations in one write (batched Heartbeats), except that
        an older time never replaces a newer last_seen (a batch may land after a connect or
        disconnect wrote a later one)."""

    async def set_connector_status(
        self,
        station_id: str,
        connector_id: int,
        *,
        status: str,
        error_code: str,
        info: str | None = None,
        vendor_error_code: str | None = None,
        at: datetime,
    ) -> None:
        """Upsert one connector's status (connector 0 is the station itself).

        Creates the station row (provisioned=False) if unknown.
        """


class IdTagStore(Protocol):
    """RFID cards and other id tags, with their status."""

    async def upsert_id_tag(self, tag: IdTag) -> IdTag: ...

    async def get_id_tag(self, id_tag: str) -> IdTag | None: ...

    async def list_id_tags(self) -> list[IdTag]: ...


@dataclass(frozen=True, slots=True)
class StartOutcome:
    """What `open_transaction` did: the transaction (new or the retried start's), whether it
    was created, the older ones it superseded, and the start's idTag as stored then."""

    transaction: Transaction
    created: bool
    superseded: list[Transaction] = field(default_factory=list)
    id_tag: IdTag | None = None


class TransactionStore(Protocol):
    """Transactions, from start to stop, and stops for transactions we never saw."""

    async def next_transaction_id(self) -> int:
        """Atomically allocate the next positive transaction id (never reused)."""

    async def open_transaction(
        self,
        station_id: str,
        connector_id: int,
        id_tag: str,
        meter_start: int,
        started_at: datetime,
        reservation_id: int | None = None,
    ) -> StartOutcome:
        """A 1.6 StartTransaction in one operation (issue 15: it was three round trips).

        Open the transaction, unless a retry with the same (station, connector, id_tag,
        meter_start, started_at) finds it: that one is returned with created=False and
        supersedes nothing, so a station that resends StartTransaction gets the same
        transactionId. A start that created its transaction leaves it the one active
        transaction on its connector: arrival decides, not the station's clock (a station
        that lost its transaction in a reboot often lost its clock too, and a hostile one
        could stamp the future). The others stop when the new one started (never before
        their own start), at their latest energy register reading (else their meterStart),
        with reason SUPERSEDED, and are returned in `superseded`. The start's idTag is read
        as `get_id_tag` reads it. SQLite does it all as one atomic write; MongoDB as those
        steps in that order (`csms.store.mongo` says why a crash between them is harmless)."""

    async def stop_transaction(
        self,
        station_id: str,
        transaction_id: int,
        *,
        meter_stop: int,
        stopped_at: datetime,
        reason: str | None,
        id_tag: str | None,
    ) -> tuple[Transaction | None, bool]:
        """Close a transaction; returns (transaction, changed).

        A repeat leaves the first stop in place and returns changed=False. A stop for an unknown
        transaction id is recorded as an `OrphanStop` and returns (None, changed) where changed is
        False when the same orphan stop was already recorded. A transaction of another station
        counts as unknown: recorded as an orphan stop, the other station's transaction untouched.
        """

    async def get_transaction(self, transaction_id: int) -> Transaction | None: ...

    async def get_station_transaction(self, station_id: str,
                                      station_transaction_id: str) -> Transaction | None:
        """A transaction by the id its station gave it (OCPP 2.0.1)."""

    async def record_event(self, event: TransactionEvent) -> EventOutcome:
        """Apply one station transaction event atomically, by the rules of
        `csms.station_transactions`: create the transaction keyed by (station, station
        transaction id) with a fresh integer id if unknown, ignore a seq_no received before,
        move its registers and stop it on Ended, and freeze its totals after Ended. The
        event's meter values are stored with it (as `append_meter_values` would, attached to
        the transaction's id and connector), unless the event is a duplicate: one write per
        event, and (SQLite) in the same commit, so a station's retry after a crash between the
        two cannot find its seq_no recorded and its values lost.

        In the same operation (issue 15: one round trip on SQLite, the steps in order on
        MongoDB): a start that `supersedes` older transactions stops them as
        `open_transaction` does (`outcome.superseded`), and the idTags the answer may need are
        read (`outcome.id_tags`, `tags_to_read`)."""

    async def list_transactions(
        self, *, station_id: str | None = None, active: bool | None = None, limit: int = 100
    ) -> list[Transaction]:
        """Newest first."""

    async def active_transaction(self, station_id: str, connector_id: int) -> Transaction | None:
        ...

    async def list_orphan_stops(self, station_id: str | None = None) -> list[OrphanStop]: ...


class RemoteStartStore(Protocol):
    """Remote starts sent to stations that name their own transactions (OCPP 2.0.1), each
    keyed by (station, remoteStartId) with the idTag it was sent for, until the transaction
    that names it is linked or it expires. Durable, so a restart or another node handling the
    transaction's events still links it."""

    async def expect_remote_start(self, station_id: str, remote_start_id: int, id_tag: str, *,
                                  at: datetime, expires_at: datetime) -> None:
        """Record the link (a second one for the same key replaces the first); links expired
        by `at` may go at the same time."""

    async def remote_start_tag(self, station_id: str, remote_start_id: int,
                               at: datetime) -> str | None:
        """The idTag of the link, unless it is missing or expired by `at`."""

    async def forget_remote_start(self, station_id: str, remote_start_id: int) -> None:
        """Drop the link (linked, or refused by the station); a missing one is no error."""


class MeterValueStore(Protocol):
    """Sampled values, and each transaction's latest energy register."""

    async def append_meter_values(self, values: Sequence[MeterValue],
                                  newest: NewestEnergy | None = None) -> None:
        """Store sampled values; for each transaction keep the latest energy register.

        The latest register is the Energy.Active.Import.Register (Wh, unphased or summed) with the
        newest timestamp; an older reading arriving late does not move it back. `newest` is
        `newest_energy(values)` when the caller has it already (the charging service computes
        it once for the store and for its own copy of the transaction); else it is computed here.
        """

    async def list_meter_values(self, transaction_id: int) -> list[MeterValue]:
        """Oldest first."""


class FrameLogStore(Protocol):
    """The OCPP message log per station."""

    async def append_frames(self, frames: Mapping[str, Sequence[FrameEntry]], keep: int,
                            max_bytes: int = 0) -> None:
        """Append OCPP frames, station id -> its frames oldest first (stations in the order
        they first logged one), keeping at most `keep` newest frames per station and, when
        `max_bytes` > 0, at most that many bytes of frames (UTF-8) in the whole log, the oldest
        going first whichever station they belong to.

        "Newest" is append order; keep <= 0 stores nothing (and clears the named stations' log).
        """

    async def list_frames(self, station_id: str, limit: int = 100) -> list[LoggedFrame]:
        """Newest first."""


class ReportStore(Protocol):
    """Device-model reports (OCPP 2.0.1 NotifyReport parts): the latest complete one per
    station, and at most one report in progress beside it."""

    async def add_report_part(self, part: ReportPart, received_at: datetime,
                              ) -> DeviceReport | None:
        """Keep one part of a report.

        A part with seqNo 0, or of another requestId than the station's report in progress,
        begins a new report in progress (an unfinished one is dropped); a repeated part changes
        nothing. When `part` completes its report (tbc false, and every seqNo before it kept),
        that report becomes the station's latest, the previous latest is dropped, and it is
        returned; otherwise None."""

    async def latest_report(self, station_id: str) -> DeviceReport | None:
        """The station's latest complete report, its variables in seqNo order."""


class Store(StationStore, IdTagStore, TransactionStore, RemoteStartStore, MeterValueStore,
            FrameLogStore, ReportStore, Protocol):
    """The whole charging store, as one adapter implements it."""

    async def open(self) -> None:
        """Connect and create the schema/indexes if missing (idempotent)."""

    async def close(self) -> None: ...
