"""Transactions whose id the station owns (OCPP 2.0.1 TransactionEvent), version-neutral.

A station reports its transaction in numbered events (Started, Updated, Ended, each with a
`seq_no`); after a reconnect it replays the ones it queued offline, late and possibly out of
order, and it may send an Updated or an Ended for a transaction whose Started we never got.
The rules, applied by every store in one atomic step (`TransactionStore.record_event`):

- one transaction per (station, station transaction id); the first event of any type creates it;
- an event whose seq_no was already received changes nothing (a station's retry), except an
  Ended while the transaction runs: no Ended was received, so it repeats none (a station whose
  seqNo counter started again after a reboot), and dropping it would leave the transaction,
  and its bill, open for ever;
- energy comes from the register readings, by their timestamps, never by arrival order:
  meter_start is the earliest Energy.Active.Import.Register reading, the latest one is the
  running register, and meter_stop is the latest reading known when the Ended arrives;
- after Ended the totals (meter_start, meter_stop, energy, stop time and reason) are frozen:
  late events are recorded (seq_no, their meter values) but move nothing a bill was made from;
- a station that reuses a transaction id (forbidden, but seen after reboots) gets a new
  transaction only from a Started that cannot be an event of the ended one (`reuses_id`):
  stamped after that one's stop, or carrying a seqNo it already received while stamped before
  its start (a retried event repeats its timestamp; a reset clock does not). The new one is
  keyed by (station, station transaction id, generation) and every later event of that id goes
  to the newest generation; the ended one keeps its totals and its events. Any other event
  (an Updated or Ended stamped after the stop, a Started inside the old one's span) stays the
  ended transaction's late event and changes nothing, so a station whose new Started is lost
  or whose clock went back to inside the old transaction is not split: we prefer recording a
  late event over opening a transaction that was never there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from csms.domain import IdTag, MeterValue, Transaction, energy_wh

STARTED = "Started"
UPDATED = "Updated"
ENDED = "Ended"
NO_ID_TAG = ""  # a transaction no idToken was presented for (yet)
# The seqNos received are kept as sorted, disjoint, inclusive [first, last] ranges: a station
# counts up, so a transaction is one range however long it runs. One that leaves gaps (or
# forges seqNos) cannot grow them past this many: the oldest gap is then taken as received,
# and an event that fills it later counts as a repeat (an Ended excepted, see above).
MAX_SEQ_RANGES = 100


@dataclass(slots=True)
class TransactionEvent:
    station_id: str
    station_transaction_id: str
    ocpp_version: str
    event_type: str  # Started | Updated | Ended
    seq_no: int
    timestamp: datetime
    connector_id: int | None  # the EVSE, when the event names one
    id_tag: str | None  # the idToken presented, if any
    remote_start_id: int | None = None
    stop_reason: str | None = None
    offline: bool = False
    values: list[MeterValue] = field(default_factory=list)
    # the station presented the empty idToken of type NoAuthorization (free vend): no idTag,
    # but the answer still carries idTokenInfo (OCPP 2.0.1 requires it for any idToken)
    no_authorization: bool = False


@dataclass(slots=True)
class EventOutcome:
    transaction: Transaction
    created: bool  # this event created the transaction
    duplicate: bool  # its seq_no had been received before: nothing changed
    linked: bool  # the transaction got its idTag with this event
    ended: bool  # this event stopped the transaction
    # done and read by `record_event` in the same operation (one round trip on SQLite):
    # the older transactions this start superseded (`supersedes`), and the idTag whose
    # verdict the answer needs, as stored then (`tags_to_read`; none for most events)
    superseded: list[Transaction] = field(default_factory=list)
    id_tags: dict[str, IdTag | None] = field(default_factory=dict)


def supersedes(outcome: EventOutcome, event: TransactionEvent) -> bool:
    """A live Started that created its transaction on a connector leaves only it active
    there, as a 1.6 start does (`TransactionStore.open_transaction`); an offline one arrives
    late."""
    return outcome.created and event.event_type == STARTED and not event.offline \
        and bool(outcome.transaction.connector_id)


def tags_to_read(outcome: EventOutcome, event: TransactionEvent) -> list[str]:
    """The idTag whose verdict the answer to `event` needs (as
    `ChargingService.transaction_event` decides): the transaction's when this event links it
    or repeats it while the transaction runs, else the event's own; none for an event without
    one (the meter values' Updated events: no read, which on MongoDB is a round trip)."""
    tx = outcome.transaction
    if tx.id_tag and (outcome.linked or (event.id_tag == tx.id_tag and tx.active)):
        return [tx.id_tag]
    return [event.id_tag] if event.id_tag else []


def new_transaction(event: TransactionEvent, transaction_id: int,
                    generation: int = 0) -> Transaction:
    """The transaction as the first event of it that arrived describes it (not applied yet)."""
    return Transaction(
        transaction_id=transaction_id, station_id=event.station_id,
        connector_id=event.connector_id or 0, id_tag=NO_ID_TAG, meter_start=0,
        started_at=event.timestamp, ocpp_version=event.ocpp_version,
        station_transaction_id=event.station_transaction_id, generation=generation)


def reuses_id(tx: Transaction, event: TransactionEvent) -> bool:
    """`event`, for the newest transaction `tx` under its id, starts a new transaction under
    the same id: a Started that cannot belong to the ended `tx` (see the module docstring)."""
    if event.event_type != STARTED or tx.stopped_at is None:
        return False
    if event.timestamp > tx.stopped_at:
        return True
    return received(tx.seq_nos, event.seq_no) and event.timestamp < tx.started_at


def next_generation(newest: Transaction | None, event: TransactionEvent) -> int | None:
    """The generation of the transaction `event` creates, or None when it goes to `newest`
    (the newest transaction under its station transaction id, if any)."""
    if newest is None:
        return 0
    return newest.generation + 1 if reuses_id(newest, event) else None


def apply_event(tx: Transaction, event: TransactionEvent) -> EventOutcome:
    """Apply `event` to `tx` in place, by the rules of this module."""
    if received(tx.seq_nos, event.seq_no) and not (event.event_type == ENDED and tx.active):
        return EventOutcome(tx, created=False, duplicate=True, linked=False, ended=False)
    tx.seq_nos = seq_ranges([*tx.seq_nos, [event.seq_no, event.seq_no]])
    linked = False
    if event.id_tag and tx.id_tag == NO_ID_TAG and tx.active:
        tx.id_tag, linked = event.id_tag, True
    if event.remote_start_id is not None and tx.remote_start_id is None:
        tx.remote_start_id = event.remote_start_id
    if not tx.active:  # frozen: recorded above, nothing else moves
        return EventOutcome(tx, created=False, duplicate=False, linked=False, ended=False)
    if event.connector_id and not tx.connector_id:
        tx.connector_id = event.connector_id
    tx.started_at = min(tx.started_at, event.timestamp)
    _apply_registers(tx, event.values)
    ended = event.event_type == ENDED
    if ended:
        tx.meter_stop = max(tx.meter_start, tx.last_energy_wh if tx.last_energy_wh is not None
                            else tx.meter_start)
        tx.stopped_at = max(event.timestamp, tx.started_at)
        tx.stop_reason = event.stop_reason or "Local"  # 2.0.1's default stoppedReason
        if event.id_tag and event.id_tag != tx.id_tag:
            tx.stop_id_tag = event.id_tag
    return EventOutcome(tx, created=False, duplicate=False, linked=linked, ended=ended)


def _apply_registers(tx: Transaction, values: list[MeterValue]) -> None:
    """The earliest register reading is meter_start; the newest is the running register."""
    for value in values:
        wh = energy_wh(value)
        if wh is None:
            continue
        if tx.first_energy_at is None or value.timestamp < tx.first_energy_at:
            tx.first_energy_at, tx.meter_start = value.timestamp, wh
        if tx.last_energy_at is None or value.timestamp >= tx.last_energy_at:
            tx.last_energy_at, tx.last_energy_wh = value.timestamp, wh


def received(ranges: Iterable[Sequence[int]], seq_no: int) -> bool:
    return any(first <= seq_no <= last for first, last in ranges)


def seq_ranges(stored: Iterable[int | Sequence[int]]) -> list[list[int]]:
    """`stored` (ranges, or single seqNos as schema 4 first wrote them) as merged ranges, at
    most MAX_SEQ_RANGES of them."""
    merged: list[list[int]] = []
    for first, last in sorted((int(n), int(n)) if isinstance(n, int) else (int(n[0]), int(n[1]))
                              for n in stored):
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    while len(merged) > MAX_SEQ_RANGES:
        merged[:2] = [[merged[0][0], merged[1][1]]]
    return merged
