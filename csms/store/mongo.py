"""MongoDB adapter of the charging store (production), on `pymongo.AsyncMongoClient`.

Every state change is one single-document operation: a conditional `find_one_and_update` with
the expected state in the filter, an `$inc` on a counter, or an insert guarded by a unique index.
Documents (values are written as `csms.store.mongo_support` explains):

    stations      {_id: station id, auth: {provisioned, password_hash, security_profile},
                   boot: {vendor, model, serial_number, firmware_version, at}, connected,
                   seen: {at}, connectors: {"<id>": {status, error_code, info,
                   vendor_error_code, updated_at}}}
    id_tags       {_id: id tag, tag: {status, expiry_date, parent_id_tag}}
    counters      {_id: "transaction_id" | "frames" | "frames:<station>", value}
    transactions  {transaction_id, station_id, connector_id, id_tag, meter_start,
                   started_at, reservation_id, stop: null | {meter_stop, stopped_at, reason,
                   id_tag}, energy: null | {wh, at}}; an OCPP 2.0.1 transaction also has
                   {_id: "<station>\n<station transaction id>[\n<generation>]", ocpp_version,
                   station_transaction_id, generation, start_scope, rev, state:
                   {connector_id, id_tag, meter_start, started_at, remote_start_id, seq_nos,
                   first_energy_at}}: its `_id` makes (station, station transaction id,
                   generation) unique, and every event is one `compare_and_set` on it
    orphan_stops  {station_id, transaction_id, meter_stop, stopped_at, reason, id_tag,
                   received_at}
    meter_values  {station_id, connector_id, transaction_id, at, received_at,
                   samples: [{timestamp, value, measurand, unit, context, phase, location,
                   format}]}           one document per MeterValues frame
    frame_rows    the message log, one document per station per flush (`mongo_frames`)

Three writes touch several documents, and each stays correct after a crash between them:
`append_meter_values` inserts the readings, then moves the transaction's energy register
forward (a crash leaves the register one frame behind; the next frame or the stop moves it);
`append_frames` takes sequence numbers from counters, inserts, then trims (`mongo_frames` says
why a crash between them is harmless); `open_transaction` inserts the start, then stops
each older transaction on its own (a crash leaves some active until the next start on the
connector supersedes them: the decision depends on stored state only), then reads the idTag.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from csms.domain import (
    SUPERSEDED,
    Connector,
    ConstraintViolation,
    IdTag,
    MeterValue,
    NewestEnergy,
    OrphanStop,
    Station,
    Transaction,
    newest_energy,
    utcnow,
)
from csms.station_transactions import (
    EventOutcome,
    TransactionEvent,
    apply_event,
    new_transaction,
    next_generation,
    seq_ranges,
    supersedes,
    tags_to_read,
)
from csms.store.mongo_frames import FRAME_INDEXES, MongoFrames, migrate_frames
from csms.store.mongo_remote_starts import REMOTE_START_INDEXES, MongoRemoteStarts
from csms.store.mongo_reports import REPORT_INDEXES, MongoReports
from csms.store.mongo_support import (
    DEFAULT_TIMEOUT_S,
    Document,
    MongoConnection,
    compare_and_set,
    insert_once,
    next_value,
    store_errors,
    utc,
    utc_req,
)
from csms.store.ports import KEEP, Keep, StartOutcome, StoreError

TRANSACTION_COUNTER = "transaction_id"
# start_scope: "" for a 1.6 transaction, "2.0.1:<station transaction id>" for a 2.0.1 one (never
# null: nx-27017 leaves nulls out of a unique index)
START_KEY = ("station_id", "connector_id", "id_tag", "meter_start", "started_at", "start_scope")
ORPHAN_KEY = ("station_id", "transaction_id", "meter_stop", "stopped_at")
TTL_FIELD = "received_at"

# Every index, next to the queries that need it. `_id` serves stations, id tags and counters.
# (No index includes `_id` with other keys: nx-27017 then refuses every insert.)
INDEXES: dict[str, list[IndexModel]] = {
    "transactions": [
        # get_transaction, stop_transaction, the energy register; list_transactions (no
        # station) newest first; and no id is ever used twice
        IndexModel([("transaction_id", DESCENDING)], unique=True, name="transaction_id"),
        # open_transaction: a retried StartTransaction finds (and can never duplicate) its
        # transaction; active_transaction: (station, connector) prefix, stop null
        # (2.0.1 transactions carry their station transaction id in it, so they never collide)
        IndexModel([(k, ASCENDING) for k in START_KEY], unique=True, name="start_key_v4"),
        # list_transactions(station_id=...): newest first
        IndexModel([("station_id", ASCENDING), ("transaction_id", DESCENDING)],
                   name="by_station"),
        # record_event, get_station_transaction: every generation of a station's
        # transaction id (2.0.1), the newest of which the id names
        IndexModel([("station_id", ASCENDING), ("station_transaction_id", ASCENDING)],
                   name="by_station_transaction"),
    ],
    "orphan_stops": [
        # stop_transaction for an unknown id: a repeated stop is recorded once;
        # list_orphan_stops(station_id) uses the prefix
        IndexModel([(k, ASCENDING) for k in ORPHAN_KEY], unique=True, name="orphan_key"),
    ],
    "meter_values": [
        # list_meter_values(transaction_id), oldest first
        IndexModel([("transaction_id", ASCENDING), ("at", ASCENDING)], name="by_transaction"),
    ],
}


# conversions ------------------------------------------------------------------------------------


def _station(doc: Document) -> Station:
    auth = doc.get("auth") or {}
    boot = doc.get("boot") or {}
    connectors = doc.get("connectors") or {}
    return Station(
        id=doc["_id"],
        password_hash=auth.get("password_hash"),
        vendor=boot.get("vendor"),
        model=boot.get("model"),
        serial_number=boot.get("serial_number"),
        firmware_version=boot.get("firmware_version"),
        connected=bool(doc.get("connected", False)),
        last_seen=utc((doc.get("seen") or {}).get("at")),
        last_boot_at=utc(boot.get("at")),
        provisioned=bool(auth.get("provisioned", False)),
        security_profile=auth.get("security_profile"),
        connectors=[_connector(int(key), value)
                    for key, value in sorted(connectors.items(), key=lambda kv: int(kv[0]))],
    )


def _seen_since(station_id: str, at: datetime) -> UpdateOne:
    """Set the station's `seen` to `at` where it is older or missing: last_seen never moves
    back. Not `$max`: nx-27017 returns `$max` of dates as strings. The filter is an explicit
    `$and`: nx-27017 drops `_id` from a filter that also has a top-level `$or` (and then
    updates other stations). No upsert: the station exists, or stays unknown."""
    return UpdateOne({"$and": [{"_id": station_id},
                               {"$or": [{"seen": None}, {"seen.at": {"$lt": at}}]}]},
                     {"$set": {"seen": {"at": at}}})


def _connector(connector_id: int, doc: Document) -> Connector:
    return Connector(connector_id=connector_id, status=doc["status"],
                     error_code=doc["error_code"], info=doc.get("info"),
                     vendor_error_code=doc.get("vendor_error_code"),
                     updated_at=utc(doc.get("updated_at")))


def _id_tag(doc: Document) -> IdTag:
    tag = doc["tag"]
    return IdTag(id_tag=doc["_id"], status=tag["status"], expiry_date=utc(tag.get("expiry_date")),
                 parent_id_tag=tag.get("parent_id_tag"))


def _transaction(doc: Document) -> Transaction:
    stop = doc.get("stop") or {}
    energy = doc.get("energy") or {}
    state = doc.get("state") or doc  # 2.0.1: what events change, in one subdocument
    return Transaction(
        transaction_id=int(doc["transaction_id"]),
        station_id=doc["station_id"],
        connector_id=state["connector_id"],
        id_tag=state["id_tag"],
        meter_start=state["meter_start"],
        started_at=utc_req(state["started_at"]),
        reservation_id=doc.get("reservation_id"),
        meter_stop=stop.get("meter_stop"),
        stopped_at=utc(stop.get("stopped_at")),
        stop_reason=stop.get("reason"),
        stop_id_tag=stop.get("id_tag"),
        last_energy_wh=energy.get("wh"),
        last_energy_at=utc(energy.get("at")),
        ocpp_version=doc.get("ocpp_version", "1.6"),
        station_transaction_id=doc.get("station_transaction_id"),
        remote_start_id=state.get("remote_start_id"),
        seq_nos=seq_ranges(state.get("seq_nos") or ()),
        first_energy_at=utc(state.get("first_energy_at")),
        generation=int(doc.get("generation", 0)),
    )


def _event_fields(tx: Transaction) -> Document:
    """What an event may change on a 2.0.1 transaction document: whole subdocuments (see
    `csms.store.mongo_support` on types), and the connector for the connector queries."""
    stop = None
    if tx.stopped_at is not None:
        stop = {"meter_stop": tx.meter_stop, "stopped_at": tx.stopped_at,
                "reason": tx.stop_reason, "id_tag": tx.stop_id_tag}
    energy = None
    if tx.last_energy_at is not None:
        energy = {"wh": tx.last_energy_wh, "at": tx.last_energy_at}
    state = {"connector_id": tx.connector_id, "id_tag": tx.id_tag,
             "meter_start": tx.meter_start, "started_at": tx.started_at,
             "remote_start_id": tx.remote_start_id, "seq_nos": [list(r) for r in tx.seq_nos],
             "first_energy_at": tx.first_energy_at}
    return {"state": state, "stop": stop, "energy": energy, "connector_id": tx.connector_id}


def _station_key(station_id: str, station_transaction_id: str, generation: int = 0) -> str:
    """A station id never holds a newline, so stations never collide. A reused id's later
    generations get a suffix; a station whose own ids end like one could make two of its
    transactions collide, which `record_event` refuses rather than mixing them."""
    key = f"{station_id}\n{station_transaction_id}"
    return f"{key}\n{generation}" if generation else key


def _orphan(doc: Document) -> OrphanStop:
    return OrphanStop(station_id=doc["station_id"], transaction_id=doc["transaction_id"],
                      meter_stop=doc["meter_stop"], stopped_at=utc_req(doc["stopped_at"]),
                      reason=doc.get("reason"), id_tag=doc.get("id_tag"),
                      received_at=utc(doc.get("received_at")))


def _sample(value: MeterValue) -> Document:
    return {"timestamp": value.timestamp, "value": value.value, "measurand": value.measurand,
            "unit": value.unit, "context": value.context, "phase": value.phase,
            "location": value.location, "format": value.format}


def _meter_documents(values: Sequence[MeterValue], received_at: datetime) -> list[Document]:
    """One document per (station, connector, transaction) in the call: a MeterValues frame."""
    groups: dict[tuple[str, int, int | None], list[MeterValue]] = {}
    for value in values:
        groups.setdefault((value.station_id, value.connector_id, value.transaction_id),
                          []).append(value)
    return [{"station_id": station, "connector_id": connector, "transaction_id": tx,
             "at": min(v.timestamp for v in group), TTL_FIELD: received_at,
             "samples": [_sample(v) for v in group]}
            for (station, connector, tx), group in groups.items()]


def _meter_values(doc: Document) -> list[MeterValue]:
    return [MeterValue(station_id=doc["station_id"], connector_id=doc["connector_id"],
                       transaction_id=doc["transaction_id"],
                       timestamp=utc_req(sample["timestamp"]), value=sample["value"],
                       measurand=sample.get("measurand"), unit=sample.get("unit"),
                       context=sample.get("context"), phase=sample.get("phase"),
                       location=sample.get("location"), format=sample.get("format"))
            for sample in doc["samples"]]


@store_errors
class MongoStore(MongoReports, MongoRemoteStarts, MongoFrames, MongoConnection):
    """`Store` on a MongoDB database (or any server speaking its wire protocol); device-model
    reports in `csms.store.mongo_reports`, remote starts in `csms.store.mongo_remote_starts`,
    the message log in `csms.store.mongo_frames`."""

    INDEXES = {**INDEXES, **REPORT_INDEXES, **REMOTE_START_INDEXES, **FRAME_INDEXES}

    def __init__(self, url: str, database: str, *, meter_values_ttl_days: int = 0,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        super().__init__(url, database, timeout_s=timeout_s)
        self.meter_values_ttl_days = meter_values_ttl_days
        self._frame_bytes: int | None = None  # bytes of frames in the log, once summed
        self._frame_bytes_at = 0.0  # time.monotonic() of that sum
        self._frame_since: dict[str, int] = {}  # station -> its log's `since`, once known

    async def _prepare(self, db: AsyncDatabase[Document]) -> None:
        await self._ensure_retention(db)
        await next_value(db.counters, TRANSACTION_COUNTER, 0)  # exists before any $inc
        # before schema 4 the start key had no station transaction id: it would bind 2.0.1
        if any([index["name"] == "start_key" async for index
                in await db.transactions.list_indexes()]):
            await db.transactions.drop_index("start_key")
        await db.transactions.update_many({"start_scope": {"$exists": False}},
                                          {"$set": {"start_scope": ""}})
        await migrate_frames(db)

    async def _ensure_retention(self, db: AsyncDatabase[Document]) -> None:
        """`store.meter_values_ttl_days`: a TTL index on received_at; 0 drops it (keep all)."""
        existing = [index async for index in await db.meter_values.list_indexes()
                    if list(index["key"]) == [TTL_FIELD]]
        seconds = self.meter_values_ttl_days * 86400
        if existing and existing[0].get("expireAfterSeconds") == seconds:
            return
        for index in existing:
            await db.meter_values.drop_index(index["name"])
        if seconds > 0:
            await db.meter_values.create_index([(TTL_FIELD, ASCENDING)],
                                               expireAfterSeconds=seconds, name="retention")

    # stations ---------------------------------------------------------------------------------

    async def _upsert_station(self, station_id: str, update: Document) -> Station:
        doc = await self.db.stations.find_one_and_update(
            {"_id": station_id}, update, upsert=True, return_document=ReturnDocument.AFTER)
        return _station(doc)

    async def provision_station(self, station_id: str, password_hash: str | None, *,
                                keep_password: bool = False,
                                security_profile: int | Keep | None = KEEP) -> Station:
        """One upsert of `auth`'s fields one by one: a kept one is not set, so it stays (a new
        station reads it as absent). `auth.provisioned` is a scalar boolean: read with bool()."""
        update: Document = {"auth.provisioned": True}
        if not keep_password:
            update["auth.password_hash"] = password_hash
        if security_profile is not KEEP:
            update["auth.security_profile"] = security_profile
        return await self._upsert_station(station_id, {"$set": update})

    async def get_station(self, station_id: str) -> Station | None:
        doc = await self.db.stations.find_one({"_id": station_id})
        return None if doc is None else _station(doc)

    async def list_stations(self) -> list[Station]:
        return [_station(doc) async for doc in self.db.stations.find({}).sort("_id", ASCENDING)]

    async def register_boot(self, station_id: str, *, vendor: str, model: str,
                            serial_number: str | None, firmware_version: str | None,
                            at: datetime) -> None:
        """One ordered bulk write (one round trip): the boot (creating the station), then
        `seen` where it is older, as `set_connections` does."""
        await self.db.stations.bulk_write([
            UpdateOne({"_id": station_id}, {"$set": {"boot": {
                "vendor": vendor, "model": model, "serial_number": serial_number,
                "firmware_version": firmware_version, "at": at}}}, upsert=True),
            _seen_since(station_id, at)], ordered=True)

    async def set_connected(self, station_id: str, connected: bool, at: datetime) -> None:
        await self.db.stations.update_one(
            {"_id": station_id}, {"$set": {"connected": connected, "seen": {"at": at}}},
            upsert=True)

    async def set_connections(self, states: Mapping[str, tuple[bool, datetime]]) -> None:
        """One ordered bulk write, two updates per station: the flag (creating the station),
        then `seen` where it is older (`_seen_since`)."""
        updates: list[UpdateOne] = []
        for station_id, (connected, at) in states.items():
            updates.append(UpdateOne({"_id": station_id}, {"$set": {"connected": connected}},
                                     upsert=True))
            updates.append(_seen_since(station_id, at))
        if updates:
            await self.db.stations.bulk_write(updates, ordered=True)

    async def mark_all_disconnected(self) -> None:
        await self.db.stations.update_many({}, {"$set": {"connected": False}})

    async def touch_station(self, station_id: str, at: datetime) -> None:
        await self.db.stations.update_one({"_id": station_id}, {"$set": {"seen": {"at": at}}})

    async def touch_stations(self, seen: Mapping[str, datetime]) -> None:
        """One bulk write, `seen` where it is older (`_seen_since`)."""
        if seen:
            await self.db.stations.bulk_write(
                [_seen_since(station_id, at) for station_id, at in seen.items()], ordered=False)

    async def set_connector_status(self, station_id: str, connector_id: int, *, status: str,
                                   error_code: str, info: str | None = None,
                                   vendor_error_code: str | None = None,
                                   at: datetime) -> None:
        connector = {"status": status, "error_code": error_code, "info": info,
                     "vendor_error_code": vendor_error_code, "updated_at": at}
        await self.db.stations.update_one(
            {"_id": station_id}, {"$set": {f"connectors.{int(connector_id)}": connector}},
            upsert=True)

    # id tags ----------------------------------------------------------------------------------

    async def upsert_id_tag(self, tag: IdTag) -> IdTag:
        doc = await self.db.id_tags.find_one_and_update(
            {"_id": tag.id_tag},
            {"$set": {"tag": {"status": tag.status, "expiry_date": tag.expiry_date,
                              "parent_id_tag": tag.parent_id_tag}}},
            upsert=True, return_document=ReturnDocument.AFTER)
        return _id_tag(doc)

    async def get_id_tag(self, id_tag: str) -> IdTag | None:
        doc = await self.db.id_tags.find_one({"_id": id_tag})
        return None if doc is None else _id_tag(doc)

    async def list_id_tags(self) -> list[IdTag]:
        return [_id_tag(doc) async for doc in self.db.id_tags.find({}).sort("_id", ASCENDING)]

    # transactions -----------------------------------------------------------------------------

    async def next_transaction_id(self) -> int:
        return await next_value(self.db.counters, TRANSACTION_COUNTER)

    async def _start_transaction(self, station_id: str, connector_id: int, id_tag: str,
                                 meter_start: int, started_at: datetime,
                                 reservation_id: int | None = None,
                                 ) -> tuple[Transaction, bool]:
        """`open_transaction`'s start: (transaction, created). Insert under the unique start
        key; a retry (or a racing twin) finds the first.

        A racing twin burns one transaction id; ids are never reused, so a gap is harmless.
        """
        key = dict(zip(START_KEY, (station_id, connector_id, id_tag, meter_start,
                                   started_at.astimezone(UTC), ""), strict=True))
        existing = await self.db.transactions.find_one(key)
        if existing is not None:
            return _transaction(existing), False
        doc = {"transaction_id": await next_value(self.db.counters, TRANSACTION_COUNTER), **key,
               "reservation_id": reservation_id, "stop": None, "energy": None}
        if await insert_once(self.db.transactions, doc):
            return _transaction(doc), True
        existing = await self.db.transactions.find_one(key)
        if existing is None:  # the duplicate was the id: a counter behind its transactions
            raise StoreError("transaction id counter is behind the transactions collection")
        return _transaction(existing), False

    async def open_transaction(self, station_id: str, connector_id: int, id_tag: str,
                               meter_start: int, started_at: datetime,
                               reservation_id: int | None = None) -> StartOutcome:
        """The three operations in order (no multi-document transaction here): the start,
        the supersede when it created one, the idTag. A crash after the start leaves older
        ones active until the next start supersedes them, as `_supersede_transactions`
        describes."""
        transaction, created = await self._start_transaction(
            station_id, connector_id, id_tag, meter_start, started_at, reservation_id)
        superseded = await self._supersede_transactions(transaction) if created else []
        return StartOutcome(transaction, created, superseded, await self.get_id_tag(id_tag))

    async def _supersede_transactions(self, newer: Transaction) -> list[Transaction]:
        """Stop every other active transaction on `newer`'s connector (as `open_transaction`
        describes), each with its own conditional update (`stop: null` in the filter: a
        concurrent stop or supersede wins and the transaction is not returned here).

        The decision reads only stored state and every write is idempotent, so a crash after
        some of the stops leaves the rest active until the next supersede on the connector
        (the next start there) stops them the same way, then at that start's time. A reading
        stored between the read and the stop may move the register past meter_stop: the stop
        is then ordered before it, as a reading after a stop would be.
        """
        cursor = self.db.transactions.find(
            {"station_id": newer.station_id, "connector_id": newer.connector_id, "stop": None,
             "transaction_id": {"$ne": newer.transaction_id}})
        others = [_transaction(doc) async for doc in cursor]
        ended_by = newer.started_at
        stopped = []
        for tx in others:
            stop = {"meter_stop": max(tx.meter_start, tx.last_energy_wh or tx.meter_start),
                    "stopped_at": max(ended_by, tx.started_at), "reason": SUPERSEDED,
                    "id_tag": None}
            # `rev` moves too: an event's compare-and-set read before this stop must miss,
            # not write the running transaction back over it (1.6 documents gain a rev)
            doc = await self.db.transactions.find_one_and_update(
                {"transaction_id": tx.transaction_id, "stop": None},
                {"$set": {"stop": stop}, "$inc": {"rev": 1}},
                return_document=ReturnDocument.AFTER)
            if doc is not None:
                stopped.append(_transaction(doc))
        return stopped

    async def stop_transaction(self, station_id: str, transaction_id: int, *, meter_stop: int,
                               stopped_at: datetime, reason: str | None, id_tag: str | None,
                               ) -> tuple[Transaction | None, bool]:
        stop = {"meter_stop": meter_stop, "stopped_at": stopped_at, "reason": reason,
                "id_tag": id_tag}
        doc = await self.db.transactions.find_one_and_update(
            {"transaction_id": transaction_id, "station_id": station_id, "stop": None},
            {"$set": {"stop": stop}}, return_document=ReturnDocument.AFTER)
        if doc is not None:
            return _transaction(doc), True
        doc = await self.db.transactions.find_one({"transaction_id": transaction_id})
        if doc is not None and doc["station_id"] == station_id:
            return _transaction(doc), False
        orphan = dict(zip(ORPHAN_KEY, (station_id, transaction_id, meter_stop,
                                       stopped_at.astimezone(UTC)), strict=True))
        inserted = await insert_once(self.db.orphan_stops, {
            **orphan, "reason": reason, "id_tag": id_tag, "received_at": utcnow()})
        return None, inserted

    async def get_transaction(self, transaction_id: int) -> Transaction | None:
        doc = await self.db.transactions.find_one({"transaction_id": transaction_id})
        return None if doc is None else _transaction(doc)

    async def _newest_station_transaction(self, station_id: str, station_transaction_id: str,
                                          ) -> Document | None:
        docs = [doc async for doc in self.db.transactions.find(
            {"station_id": station_id, "station_transaction_id": station_transaction_id})]
        return max(docs, key=lambda doc: int(doc.get("generation", 0)), default=None)

    async def get_station_transaction(self, station_id: str,
                                      station_transaction_id: str) -> Transaction | None:
        doc = await self._newest_station_transaction(station_id, station_transaction_id)
        return None if doc is None else _transaction(doc)

    async def record_event(self, event: TransactionEvent) -> EventOutcome:
        """Insert the transaction under its `_id` if the event creates one (a new id, or a
        reused one's next generation: a racing twin loses the insert and applies its event to
        the winner's), then one compare-and-set per event."""
        newest = await self._newest_station_transaction(event.station_id,
                                                        event.station_transaction_id)
        generation = next_generation(None if newest is None else _transaction(newest), event)
        created = False
        if generation is None:
            assert newest is not None
            key = newest["_id"]
        else:
            key = _station_key(event.station_id, event.station_transaction_id, generation)
            tx = new_transaction(event, await next_value(self.db.counters, TRANSACTION_COUNTER),
                                 generation)
            scope = f"2.0.1:{tx.station_transaction_id}" + (f"#{generation}" if generation
                                                           else "")
            created = await insert_once(self.db.transactions, {
                "_id": key, "transaction_id": tx.transaction_id, "station_id": tx.station_id,
                "id_tag": tx.id_tag, "meter_start": tx.meter_start, "started_at": tx.started_at,
                "ocpp_version": tx.ocpp_version, "station_transaction_id":
                tx.station_transaction_id, "generation": generation, "reservation_id": None,
                "rev": 0, "start_scope": scope, **_event_fields(tx)})
        outcomes: list[EventOutcome] = []

        def change(doc: Document) -> Document | None:
            if doc.get("station_transaction_id") != event.station_transaction_id:
                raise ConstraintViolation(
                    f"transactionId {event.station_transaction_id!r} collides with another "
                    "of this station's transaction ids")
            outcomes[:] = [apply_event(_transaction(doc), event)]
            if outcomes[0].duplicate:
                return None
            fields = _event_fields(outcomes[0].transaction)
            if fields["connector_id"] == doc["connector_id"]:
                del fields["connector_id"]  # unchanged: no scalar write (nx-27017's types)
            return fields

        if await compare_and_set(self.db.transactions, key, change) is None:
            raise StoreError(f"transaction {key!r} vanished while an event was applied")
        outcome = outcomes[0]
        outcome.created = created
        if event.values and not outcome.duplicate:
            # after the event: MongoDB without multi-document transactions cannot make the
            # two one step (SQLite does), so a crash in between loses these readings
            tx = outcome.transaction
            for value in event.values:
                value.connector_id, value.transaction_id = tx.connector_id, tx.transaction_id
            await self.append_meter_values(event.values)
        if supersedes(outcome, event):
            outcome.superseded = await self._supersede_transactions(outcome.transaction)
        outcome.id_tags = {tag: await self.get_id_tag(tag) for tag in tags_to_read(outcome, event)}
        return outcome

    async def list_transactions(self, *, station_id: str | None = None,
                                active: bool | None = None, limit: int = 100,
                                ) -> list[Transaction]:
        if limit <= 0:
            return []  # MongoDB reads limit 0 as "no limit"
        query: Document = {}
        if station_id is not None:
            query["station_id"] = station_id
        if active is not None:
            query["stop"] = None if active else {"$ne": None}
        cursor = self.db.transactions.find(query).sort("transaction_id", DESCENDING).limit(limit)
        return [_transaction(doc) async for doc in cursor]

    async def active_transaction(self, station_id: str, connector_id: int) -> Transaction | None:
        cursor = self.db.transactions.find(
            {"station_id": station_id, "connector_id": connector_id, "stop": None}
        ).sort("transaction_id", DESCENDING).limit(1)
        docs = [doc async for doc in cursor]
        return _transaction(docs[0]) if docs else None

    async def list_orphan_stops(self, station_id: str | None = None) -> list[OrphanStop]:
        query = {} if station_id is None else {"station_id": station_id}
        return [_orphan(doc) async for doc in self.db.orphan_stops.find(query).sort("_id", 1)]

    # meter values -----------------------------------------------------------------------------

    async def append_meter_values(self, values: Sequence[MeterValue],
                                  newest: NewestEnergy | None = None) -> None:
        """Insert the frame's readings, then move each transaction's register forward.

        The register update is conditional on the stored reading being older, so late and
        concurrent frames never move it back. The filter is an explicit `$and`: nx-27017
        drops the other fields of a filter that has a top-level `$or` (it moved every
        transaction of the station, a superseded one's too).
        """
        if not values:
            return
        await self.db.meter_values.insert_many(_meter_documents(values, utcnow()),
                                               ordered=False)
        if newest is None:
            newest = newest_energy(values)
        for (tx, station), (at, wh) in newest.items():
            await self.db.transactions.update_one(
                {"$and": [{"transaction_id": tx, "station_id": station},
                          {"$or": [{"energy": None}, {"energy.at": {"$lt": at}}]}]},
                {"$set": {"energy": {"wh": wh, "at": at}}})

    async def list_meter_values(self, transaction_id: int) -> list[MeterValue]:
        cursor = self.db.meter_values.find({"transaction_id": transaction_id}).sort(
            [("at", ASCENDING), ("_id", ASCENDING)])
        values = [value async for doc in cursor for value in _meter_values(doc)]
        return sorted(values, key=lambda v: v.timestamp)  # stable: arrival order within ties
