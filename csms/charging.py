"""Charging domain service: what happens when a station boots, authorizes, charges and meters.

Version-neutral: the OCPP 1.6 handlers (and later 2.0.1) map their payloads to domain values
(parsed timestamps, `MeterValue`s) and call these methods; no OCPP payload shape reaches here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from csms.connection_writer import ConnectionWriter
from csms.device_model import ReportPart
from csms.domain import (
    ConstraintViolation,
    IdTag,
    MeterValue,
    Transaction,
    apply_energy_readings,
    newest_energy,
    utcnow,
)
from csms.events import (
    Authorization,
    ChargingListener,
    ConnectorStatusChanged,
    MeterSample,
    TransactionStarted,
    TransactionStopped,
)
from csms.last_seen import LastSeenWriter
from csms.settings import OcppSettings
from csms.station_transactions import ENDED, TransactionEvent
from csms.store import Store

log = logging.getLogger(__name__)

# How long a remote start's remoteStartId -> idTag link is kept for the transaction that names
# it (2.0.1). Billing voids a session whose Started is later than `ocpp.remote_start_timeout`,
# but the link must outlive that: a late Started named by its remoteStartId alone still gets
# the session's refusal. A day covers a station that was offline for hours; after that nothing
# names it any more.
REMOTE_START_LINK_TTL = timedelta(days=1)


def check_connector(connector_id: int, *, lowest: int = 0) -> None:
    """Connector 0 is the station as a whole; a transaction needs a real one (>= 1)."""
    if connector_id < lowest:
        raise ConstraintViolation(f"connectorId must be at least {lowest}, not {connector_id}")


class ChargingService:
    def __init__(self, store: Store, settings: OcppSettings,
                 listeners: Sequence[ChargingListener] = ()) -> None:
        self.store = store
        self.settings = settings
        self.listeners: list[ChargingListener] = list(listeners)
        # Active transactions this process has seen, so MeterValues (the bulk of all traffic)
        # needs no read. Filled at StartTransaction, dropped at StopTransaction; a miss (after
        # a restart) falls back to the store.
        self._active: dict[int, Transaction] = {}
        # Heartbeats' times, written in batches (a documented window: `csms.last_seen`)
        self.last_seen = LastSeenWriter(store, settings.last_seen_interval)
        # connects and disconnects, written off the station's path (`csms.connection_writer`)
        self.connections = ConnectionWriter(store)

    # station lifecycle -----------------------------------------------------------------------
    async def boot(self, station_id: str, *, vendor: str, model: str,
                   serial_number: str | None, firmware_version: str | None) -> None:
        await self.store.register_boot(station_id, vendor=vendor, model=model,
                                       serial_number=serial_number,
                                       firmware_version=firmware_version, at=utcnow())

    async def heartbeat(self, station_id: str) -> None:
        if self.settings.last_seen_interval > 0:
            self.last_seen.note(station_id, utcnow())
        else:
            await self.store.touch_station(station_id, utcnow())

    async def connector_status(self, station_id: str, connector_id: int, *, status: str,
                               error_code: str, info: str | None,
                               vendor_error_code: str | None,
                               timestamp: datetime | None) -> None:
        check_connector(connector_id)
        at = timestamp or utcnow()
        await self.store.set_connector_status(station_id, connector_id, status=status,
                                              error_code=error_code, info=info,
                                              vendor_error_code=vendor_error_code, at=at)
        event = ConnectorStatusChanged(station_id, connector_id, status, error_code)
        for listener in self.listeners:
            await listener.connector_status(event)

    async def report_part(self, part: ReportPart) -> None:
        """Keep one part of a device-model report; the report shows once it is complete."""
        report = await self.store.add_report_part(part, utcnow())
        if report is not None:
            log.info("%s: report %d complete (%d part(s), %d variable(s))", part.station_id,
                     report.request_id, report.parts, len(report.variables))

    async def connected(self, station_id: str) -> None:
        self.last_seen.forget(station_id)
        self.connections.note(station_id, True, utcnow())
        for listener in self.listeners:
            await listener.station_connected(station_id)

    async def disconnected(self, station_id: str) -> None:
        self.last_seen.forget(station_id)
        self.connections.note(station_id, False, utcnow())
        for listener in self.listeners:
            await listener.station_disconnected(station_id)

    # authorization ---------------------------------------------------------------------------
    async def _id_tag_status(self, id_tag: str,
                             known: Mapping[str, IdTag | None] | None = None) -> Authorization:
        """The verdict on `id_tag`, from `known` (tags the store read with a write) or read."""
        if known is not None and id_tag in known:
            return self._tag_status(known[id_tag])
        return self._tag_status(await self.store.get_id_tag(id_tag))

    def _tag_status(self, tag: IdTag | None) -> Authorization:
        """The verdict on an idTag as stored (None: unknown)."""
        if tag is None:
            return Authorization("Accepted" if self.settings.accept_unknown_id_tags else "Invalid")
        status = tag.status
        if status == "Accepted" and tag.expiry_date is not None and tag.expiry_date <= utcnow():
            status = "Expired"
        return Authorization(status, tag.expiry_date, tag.parent_id_tag)

    async def authorize(self, station_id: str, id_tag: str,
                        known: Mapping[str, IdTag | None] | None = None) -> Authorization:
        result = await self._id_tag_status(id_tag, known)
        for listener in self.listeners:
            result = await listener.authorize(station_id, id_tag, result)
        return result

    # transactions ----------------------------------------------------------------------------
    async def start_transaction(self, station_id: str, *, connector_id: int, id_tag: str,
                                meter_start: int, timestamp: datetime,
                                reservation_id: int | None) -> tuple[Transaction, Authorization]:
        """Record the transaction whatever the idTag status (the station decides to go on or
        stop per its StopTransactionOnInvalidId); a retried start gets the same id.

        A connector runs one transaction at a time: a different start on a busy connector
        (a station that lost its transaction in a reboot and never sent the stop) supersedes
        the older one, which stops at its last register reading and is billed as stopped.
        Refusing the newer one instead would lock the connector until an operator steps in."""
        check_connector(connector_id, lowest=1)
        # one store operation: the start, the older ones it supersedes and the idTag
        opened = await self.store.open_transaction(
            station_id, connector_id, id_tag, meter_start, timestamp, reservation_id)
        transaction, created = opened.transaction, opened.created
        result = self._tag_status(opened.id_tag)
        for older in opened.superseded:
            await self._stopped(older, changed=True)
        event = TransactionStarted(
            station_id=transaction.station_id, connector_id=transaction.connector_id,
            transaction_id=transaction.transaction_id, id_tag=transaction.id_tag,
            meter_start=transaction.meter_start, started_at=transaction.started_at,
            created=created)
        for listener in self.listeners:
            result = await listener.transaction_started(event, result)
        if transaction.active:
            self._active[transaction.transaction_id] = transaction
        return transaction, result

    async def stop_transaction(self, station_id: str, *, transaction_id: int, meter_stop: int,
                               timestamp: datetime, reason: str | None, id_tag: str | None,
                               transaction_data: Sequence[MeterValue] = (),
                               ) -> Authorization | None:
        """Always accepted: a station retries a refused stop for ever. Unknown ids are kept.

        `transaction_data` values are attached here to the transaction's connector and id (or
        to none when the transaction is unknown or another station's)."""
        known = await self.store.get_transaction(transaction_id)
        if known is not None and known.station_id != station_id:
            log.warning("%s: StopTransaction for transaction %s of station %s; recorded as orphan",
                        station_id, transaction_id, known.station_id)
        if transaction_data:
            connector_id = known.connector_id if known else 0
            tx_id = transaction_id if known and known.station_id == station_id else None
            for value in transaction_data:
                value.connector_id, value.transaction_id = connector_id, tx_id
            await self.store.append_meter_values(list(transaction_data))
        self._active.pop(transaction_id, None)
        transaction, changed = await self.store.stop_transaction(
            station_id, transaction_id, meter_stop=meter_stop,
            stopped_at=timestamp, reason=reason, id_tag=id_tag)
        # again: a MeterValues still in flight (say, on a replaced connection) may have read
        # the transaction before the stop was stored and cached it as active
        self._active.pop(transaction_id, None)
        if transaction is not None and transaction.stopped_at is not None:
            await self._stopped(transaction, changed)
        if id_tag is None:
            return None
        return await self._id_tag_status(id_tag)

    async def _stopped(self, transaction: Transaction, changed: bool) -> None:
        """Tell the listeners (billing) that a transaction stopped."""
        self._active.pop(transaction.transaction_id, None)
        assert transaction.stopped_at is not None
        event = TransactionStopped(
            station_id=transaction.station_id, connector_id=transaction.connector_id,
            transaction_id=transaction.transaction_id, id_tag=transaction.id_tag,
            meter_start=transaction.meter_start,
            meter_stop=transaction.meter_stop if transaction.meter_stop is not None
            else transaction.meter_start,
            energy_wh=transaction.energy_wh, started_at=transaction.started_at,
            stopped_at=transaction.stopped_at, reason=transaction.stop_reason,
            changed=changed)
        for listener in self.listeners:
            await listener.transaction_stopped(event)

    async def _transaction(self, transaction_id: int) -> Transaction | None:
        cached = self._active.get(transaction_id)
        if cached is not None:
            return cached
        transaction = await self.store.get_transaction(transaction_id)
        if transaction is not None and transaction.active:
            self._active[transaction_id] = transaction
        return transaction

    # transactions whose id the station owns (OCPP 2.0.1) -------------------------------------
    async def expect_remote_start(self, station_id: str, remote_start_id: int,
                                  id_tag: str) -> None:
        """A remote start was sent with `remote_start_id` for `id_tag`: the transaction that
        names it is that idTag's even when its events carry no idToken. Kept in the store, so
        a restart, or another node receiving the events, still links it."""
        now = utcnow()
        await self.store.expect_remote_start(station_id, remote_start_id, id_tag, at=now,
                                             expires_at=now + REMOTE_START_LINK_TTL)

    async def forget_remote_start(self, station_id: str, remote_start_id: int) -> None:
        """The station refused that remote start: no transaction will name it."""
        await self.store.forget_remote_start(station_id, remote_start_id)

    async def transaction_event(self, event: TransactionEvent) -> Authorization | None:
        """Record one event of a station-owned transaction (see `csms.station_transactions`);
        returns the idToken's verdict when the event carries one, else None; and a refusal of
        the idToken of our remote start that the event names by its remoteStartId alone (a
        session canceled or timed out before the Started came): the station was given that
        token, and the answer is the only way to tell it not to charge.

        Listeners hear of it as of a 1.6 transaction: TransactionStarted once it has an idTag
        (again, created=False, when a later event repeats that idTag: billing's verdict is
        the idTokenInfo), MeterSample while it runs, TransactionStopped when it ends (again,
        changed=False, when the Ended is repeated, so a crash between the two is healed).

        An empty idToken of type NoAuthorization is answered Accepted and links no idTag (a
        remote start named by its remoteStartId still does)."""
        if event.connector_id is not None:
            check_connector(event.connector_id, lowest=1)
        presented = event.id_tag
        if not presented and event.remote_start_id is not None:
            event.id_tag = await self.store.remote_start_tag(
                event.station_id, event.remote_start_id, utcnow())
        # stores the event's values too, supersedes older transactions and reads the idTags
        outcome = await self.store.record_event(event)
        tx, tags = outcome.transaction, outcome.id_tags
        if outcome.linked and tx.remote_start_id is not None:
            await self.store.forget_remote_start(tx.station_id, tx.remote_start_id)
        for older in outcome.superseded:
            await self._stopped(older, changed=True)
        result: Authorization | None = None
        if tx.id_tag and (outcome.linked or (event.id_tag == tx.id_tag and tx.active)):
            result = await self._id_tag_status(tx.id_tag, tags)
            started = TransactionStarted(
                station_id=tx.station_id, connector_id=tx.connector_id,
                transaction_id=tx.transaction_id, id_tag=tx.id_tag,
                meter_start=tx.meter_start, started_at=tx.started_at, created=outcome.linked)
            for listener in self.listeners:
                result = await listener.transaction_started(started, result)
        elif presented:
            result = (await self._id_tag_status(presented, tags) if not tx.active
                      else await self.authorize(tx.station_id, presented, tags))
        if tx.active:
            if not outcome.duplicate and event.values and self.listeners:
                sample = MeterSample(tx.station_id, tx.connector_id, tx.transaction_id,
                                     tx.energy_wh, tx.last_energy_at)
                for listener in self.listeners:
                    await listener.meter_sample(sample)
        elif outcome.ended or (outcome.duplicate and event.event_type == ENDED):
            await self._stopped(tx, changed=outcome.ended)
        if event.no_authorization and result is None:
            result = Authorization("Accepted")  # free vend: nobody to check, nobody billed
        refused = result is not None and result.status != "Accepted"
        return result if presented or event.no_authorization or refused else None

    async def meter_values(self, station_id: str, *, connector_id: int,
                           transaction_id: int | None, values: list[MeterValue]) -> None:
        """Store `values`, attached to the transaction when it is known and this station's."""
        check_connector(connector_id)
        transaction = None
        if transaction_id is not None:
            transaction = await self._transaction(transaction_id)
            if transaction is None or transaction.station_id != station_id:
                log.warning("%s: MeterValues for unknown transaction %s", station_id,
                            transaction_id)
                transaction = None
        if transaction is None:
            if values:
                await self.store.append_meter_values(values)
            return
        for value in values:
            value.transaction_id = transaction.transaction_id
        # the newest register once, for the store's copy of the transaction and the loop's
        newest = newest_energy(values)
        if values:
            await self.store.append_meter_values(values, newest)
        apply_energy_readings(transaction, newest)  # what the store just did, no re-read
        if self.listeners:
            event = MeterSample(station_id, transaction.connector_id, transaction.transaction_id,
                                transaction.energy_wh, transaction.last_energy_at)
            for listener in self.listeners:
                await listener.meter_sample(event)

