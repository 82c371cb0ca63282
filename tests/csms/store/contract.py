"""Backend-independent contract of the store port (`csms.store.ports.Store`).

A backend runs it by subclassing `StoreContract` in its own test module and providing a `store`
fixture that yields an opened, empty store (and closes it afterwards):

    class TestMongoStore(StoreContract):
        pass

Timestamps here have millisecond precision, the finest every backend keeps (BSON dates).
Listings whose order the port does not define (stations, id tags, orphan stops) are compared
as sets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone

from csms.domain import (
    ENERGY_REGISTER,
    MAX_REGISTER_WH,
    SUPERSEDED,
    FrameEntry,
    IdTag,
    LoggedFrame,
    MeterValue,
    newest_energy,
    utcnow,
)
from csms.station_transactions import MAX_SEQ_RANGES, TransactionEvent
from csms.store.ports import Store

T0 = datetime(2026, 3, 1, 10, 0, 0, 123000, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """T0 plus `seconds` (millisecond precision)."""
    return T0 + timedelta(milliseconds=round(seconds * 1000))


def assert_utc(moment: datetime | None) -> None:
    assert moment is not None
    assert moment.utcoffset() == timedelta(0), moment


def energy(
    tx: int | None,
    value: str,
    ts: datetime,
    *,
    station: str = "CP1",
    unit: str | None = "Wh",
    measurand: str = ENERGY_REGISTER,
    phase: str | None = None,
) -> MeterValue:
    return MeterValue(
        station_id=station,
        connector_id=1,
        transaction_id=tx,
        timestamp=ts,
        value=value,
        measurand=measurand,
        unit=unit,
        context="Sample.Periodic",
        phase=phase,
        location="Outlet",
        format="Raw",
    )


def frame(station: str, n: int, direction: str = "in") -> LoggedFrame:
    return LoggedFrame(station_id=station, direction=direction, frame=f'[2,"{n}"]', at=at(n))


def grouped(frames: Iterable[LoggedFrame]) -> dict[str, list[FrameEntry]]:
    """Frames as `append_frames` takes them (and the hub's FrameLog buffers them): per station
    in first-seen order, each station's in order."""
    groups: dict[str, list[FrameEntry]] = {}
    for f in frames:
        groups.setdefault(f.station_id, []).append((f.direction, f.at, f.frame))
    return groups


async def start(
    store: Store,
    station: str = "CP1",
    connector: int = 1,
    *,
    tag: str = "TAG",
    meter: int = 1000,
    when: datetime = T0,
) -> int:
    opened = await store.open_transaction(station, connector, tag, meter, when)
    assert opened.created
    return opened.transaction.transaction_id


async def stop(store: Store, station: str, tx: int, meter: int, when: datetime, reason=None):
    return await store.stop_transaction(
        station, tx, meter_stop=meter, stopped_at=when, reason=reason, id_tag=None
    )


class StoreContract:
    """Tests every backend of the store port must pass (needs a `store` fixture)."""

    # lifecycle ----------------------------------------------------------------------------------

    async def test_open_is_idempotent(self, store: Store) -> None:
        await store.open()
        assert await store.list_stations() == []

    # stations -----------------------------------------------------------------------------------

    async def test_unknown_station_is_none(self, store: Store) -> None:
        assert await store.get_station("nope") is None
        assert await store.list_stations() == []

    async def test_provision_can_keep_the_password(self, store: Store) -> None:
        await store.provision_station("CP1", "hash-1")
        kept = await store.provision_station("CP1", None, keep_password=True)
        assert kept.password_hash == "hash-1"
        new = await store.provision_station("CP2", None, keep_password=True)
        assert new.password_hash is None and new.provisioned

    async def test_provision_creates_and_updates_password(self, store: Store) -> None:
        station = await store.provision_station("CP1", "hash-1")
        assert station.id == "CP1"
        assert station.provisioned is True
        assert station.password_hash == "hash-1"
        assert station.connected is False
        assert station.connectors == []

        again = await store.provision_station("CP1", None)
        assert again.provisioned is True
        assert again.password_hash is None
        fetched = await store.get_station("CP1")
        assert fetched is not None and fetched.password_hash is None and fetched.provisioned

    async def test_security_profile_round_trip(self, store: Store) -> None:
        """A station's own profile is stored, kept when not given, and cleared with None."""
        new = await store.provision_station("CP1", "hash-1", security_profile=3)
        assert (new.security_profile, new.password_hash) == (3, "hash-1")
        assert (await store.provision_station("CP2", None)).security_profile is None
        await store.register_boot(
            "CP1", vendor="V", model="M", serial_number=None, firmware_version=None, at=at(1))
        await store.set_connected("CP1", True, at(2))
        kept = await store.provision_station("CP1", "hash-2")
        assert (kept.security_profile, kept.password_hash) == (3, "hash-2")
        kept = await store.provision_station("CP1", None, keep_password=True)
        assert (kept.security_profile, kept.password_hash) == (3, "hash-2")
        changed = await store.provision_station("CP1", None, keep_password=True,
                                                security_profile=2)
        assert (changed.security_profile, changed.password_hash) == (2, "hash-2")
        listed = {s.id: s for s in await store.list_stations()}
        assert (listed["CP1"].security_profile, listed["CP2"].security_profile) == (2, None)
        assert type(listed["CP1"].security_profile) is int
        cleared = await store.provision_station("CP1", None, keep_password=True,
                                                security_profile=None)
        assert cleared.security_profile is None and cleared.password_hash == "hash-2"
        fetched = await store.get_station("CP1")
        assert fetched is not None and fetched.security_profile is None
        assert fetched.vendor == "V" and fetched.provisioned

    async def test_register_boot_creates_unprovisioned_station(self, store: Store) -> None:
        await store.register_boot(
            "CP1", vendor="ACME", model="X1", serial_number="S1", firmware_version="1.0", at=at(1)
        )
        station = await store.get_station("CP1")
        assert station is not None and station.id == "CP1"
        assert station.provisioned is False
        assert station.password_hash is None
        assert (station.vendor, station.model) == ("ACME", "X1")
        assert (station.serial_number, station.firmware_version) == ("S1", "1.0")
        assert station.last_boot_at == at(1)
        assert_utc(station.last_boot_at)

        await store.register_boot(
            "CP1", vendor="ACME", model="X2", serial_number=None, firmware_version="2.0", at=at(9)
        )
        again = await store.get_station("CP1")
        assert again is not None and again.model == "X2"
        assert again.serial_number is None
        assert again.firmware_version == "2.0"
        assert again.last_boot_at == at(9)

    async def test_boot_keeps_provisioning_and_provisioning_keeps_boot(self, store: Store) -> None:
        await store.provision_station("CP1", "h")
        await store.register_boot(
            "CP1", vendor="V", model="M", serial_number=None, firmware_version=None, at=at(1)
        )
        station = await store.provision_station("CP1", "h2")
        assert station.provisioned is True
        assert station.password_hash == "h2"
        assert (station.vendor, station.model, station.last_boot_at) == ("V", "M", at(1))

    async def test_set_connected_creates_and_toggles(self, store: Store) -> None:
        await store.set_connected("CP1", True, at(1))
        station = await store.get_station("CP1")
        assert station is not None
        assert station.connected is True
        assert station.provisioned is False
        assert station.last_seen == at(1)
        assert_utc(station.last_seen)

        await store.set_connected("CP1", False, at(2))
        station = await store.get_station("CP1")
        assert station is not None
        assert station.connected is False
        assert station.last_seen == at(2)

    async def test_set_connections_writes_many_and_never_moves_last_seen_back(
            self, store: Store) -> None:
        await store.set_connected("CP2", False, at(9))  # a later time written first
        await store.set_connections({"CP1": (True, at(1)), "CP2": (True, at(5))})
        await store.set_connections({})
        seen = {s.id: (s.connected, s.last_seen) for s in await store.list_stations()}
        assert seen == {"CP1": (True, at(1)), "CP2": (True, at(9))}, seen
        await store.set_connections({"CP1": (False, at(2)), "CP2": (False, at(10))})
        seen = {s.id: (s.connected, s.last_seen) for s in await store.list_stations()}
        assert seen == {"CP1": (False, at(2)), "CP2": (False, at(10))}, seen
        station = await store.get_station("CP1")
        assert station is not None and station.provisioned is False
        assert_utc(station.last_seen)

    async def test_mark_all_disconnected(self, store: Store) -> None:
        for name in ("A", "B", "C"):
            await store.set_connected(name, True, at(1))
        await store.set_connected("C", False, at(2))
        await store.mark_all_disconnected()
        stations = await store.list_stations()
        assert {s.id for s in stations} == {"A", "B", "C"}
        assert not any(s.connected for s in stations)

    async def test_touch_station_updates_last_seen(self, store: Store) -> None:
        await store.set_connected("CP1", True, at(1))
        await store.touch_station("CP1", at(5))
        station = await store.get_station("CP1")
        assert station is not None
        assert station.last_seen == at(5)
        assert station.connected is True
        await store.touch_station("unknown", at(5))  # must not raise

    async def test_touch_stations_writes_many_and_never_moves_back(self, store: Store) -> None:
        await store.set_connected("CP1", True, at(1))
        await store.set_connected("CP2", False, at(9))
        await store.touch_stations({"CP1": at(5), "CP2": at(6), "unknown": at(5)})
        await store.touch_stations({})
        seen = {s.id: s.last_seen for s in await store.list_stations()}
        assert seen == {"CP1": at(5), "CP2": at(9)}, seen

    async def test_boot_is_the_station_seen_never_moving_last_seen_back(
            self, store: Store) -> None:
        """A BootNotification is the station seen: its time becomes last_seen, as a connect's
        or a Heartbeat's does, except that an older time never replaces a newer one (a batched
        connect or Heartbeat may have written a later one first)."""
        async def boot(station: str, when: datetime) -> None:
            await store.register_boot(station, vendor="V", model="M", serial_number=None,
                                      firmware_version=None, at=when)

        await boot("CP1", at(1))  # unknown: created, seen at its boot
        await store.set_connected("CP2", True, at(2))
        await boot("CP2", at(5))
        await store.set_connected("CP3", True, at(9))  # a later time written first
        await boot("CP3", at(5))
        stations = {s.id: s for s in await store.list_stations()}
        seen = {s.id: (s.last_seen, s.last_boot_at, s.connected) for s in stations.values()}
        assert seen == {"CP1": (at(1), at(1), False), "CP2": (at(5), at(5), True),
                        "CP3": (at(9), at(5), True)}, seen
        assert_utc(stations["CP1"].last_seen)
        await store.touch_stations({"CP1": at(20)})
        await boot("CP1", at(15))
        station = await store.get_station("CP1")
        assert station is not None and (station.last_seen, station.last_boot_at) == \
            (at(20), at(15))

    async def test_connector_status_upsert_and_order(self, store: Store) -> None:
        await store.set_connected("CP1", True, at(0))
        await store.set_connector_status(
            "CP1", 2, status="Available", error_code="NoError", at=at(1)
        )
        await store.set_connector_status(
            "CP1", 0, status="Available", error_code="NoError", at=at(1)
        )
        await store.set_connector_status(
            "CP1",
            1,
            status="Faulted",
            error_code="GroundFailure",
            info="rcd",
            vendor_error_code="E42",
            at=at(2),
        )
        station = await store.get_station("CP1")
        assert station is not None
        assert [c.connector_id for c in station.connectors] == [0, 1, 2]
        faulted = station.connectors[1]
        assert (faulted.status, faulted.error_code) == ("Faulted", "GroundFailure")
        assert (faulted.info, faulted.vendor_error_code) == ("rcd", "E42")
        assert faulted.updated_at == at(2)
        assert_utc(faulted.updated_at)

        await store.set_connector_status(
            "CP1", 1, status="Available", error_code="NoError", at=at(3)
        )
        station = await store.get_station("CP1")
        assert station is not None
        assert len(station.connectors) == 3
        fixed = station.connectors[1]
        assert (fixed.status, fixed.error_code, fixed.info, fixed.vendor_error_code) == (
            "Available",
            "NoError",
            None,
            None,
        )
        assert fixed.updated_at == at(3)

    async def test_connector_status_creates_station(self, store: Store) -> None:
        await store.set_connector_status(
            "CP9", 1, status="Charging", error_code="NoError", at=at(1)
        )
        station = await store.get_station("CP9")
        assert station is not None
        assert station.provisioned is False
        assert [(c.connector_id, c.status) for c in station.connectors] == [(1, "Charging")]

    async def test_list_stations_includes_connectors(self, store: Store) -> None:
        await store.provision_station("B", None)
        await store.set_connected("A", True, at(1))
        await store.set_connector_status("A", 1, status="Available", error_code="NoError", at=at(1))
        await store.set_connector_status("B", 2, status="Preparing", error_code="NoError", at=at(1))
        await store.set_connector_status("B", 1, status="Charging", error_code="NoError", at=at(1))
        stations = {s.id: s for s in await store.list_stations()}
        assert set(stations) == {"A", "B"}
        assert [c.connector_id for c in stations["A"].connectors] == [1]
        assert [(c.connector_id, c.status) for c in stations["B"].connectors] == [
            (1, "Charging"),
            (2, "Preparing"),
        ]
        assert stations["B"].provisioned and not stations["A"].provisioned

    # id tags ------------------------------------------------------------------------------------

    async def test_id_tags(self, store: Store) -> None:
        assert await store.get_id_tag("T1") is None
        created = await store.upsert_id_tag(IdTag("T1"))
        assert created == IdTag("T1", "Accepted", None, None)
        expiry = datetime(2027, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=-3)))
        updated = await store.upsert_id_tag(IdTag("T1", "Blocked", expiry, "PARENT"))
        assert updated.status == "Blocked"
        assert updated.expiry_date == expiry
        assert_utc(updated.expiry_date)
        assert updated.parent_id_tag == "PARENT"
        assert await store.get_id_tag("T1") == updated
        await store.upsert_id_tag(IdTag("T0", "Expired"))
        tags = {t.id_tag: t for t in await store.list_id_tags()}
        assert set(tags) == {"T0", "T1"}
        assert tags["T0"].status == "Expired"
        assert tags["T1"] == updated

    # transactions -------------------------------------------------------------------------------

    async def test_next_transaction_id_starts_at_one_and_never_repeats(self, store: Store) -> None:
        first = await store.next_transaction_id()
        second = await store.next_transaction_id()
        assert first == 1
        assert second == 2
        tx_id = await start(store)
        assert tx_id not in (first, second)
        assert tx_id > 0
        assert await store.next_transaction_id() not in (first, second, tx_id)

    async def test_open_transaction(self, store: Store) -> None:
        opened = await store.open_transaction("CP1", 2, "TAG", 1500, at(1), reservation_id=7)
        assert (opened.created, opened.superseded, opened.id_tag) == (True, [], None)
        tx = opened.transaction
        assert tx.transaction_id >= 1
        assert (tx.station_id, tx.connector_id, tx.id_tag) == ("CP1", 2, "TAG")
        assert (tx.meter_start, tx.started_at, tx.reservation_id) == (1500, at(1), 7)
        assert_utc(tx.started_at)
        assert tx.active
        assert tx.meter_stop is None and tx.stopped_at is None
        assert tx.last_energy_wh is None and tx.last_energy_at is None
        assert tx.energy_wh == 0
        assert await store.get_transaction(tx.transaction_id) == tx

    async def test_open_transaction_retry_returns_same(self, store: Store) -> None:
        first = await store.open_transaction("CP1", 1, "TAG", 1000, at(1))
        assert first.created
        tx = first.transaction
        again = await store.open_transaction("CP1", 1, "TAG", 1000, at(1))
        assert (again.transaction, again.created, again.superseded) == (tx, False, [])
        # the same instant in another zone is the same key
        shifted = at(1).astimezone(timezone(timedelta(hours=5, minutes=30)))
        third = await store.open_transaction("CP1", 1, "TAG", 1000, shifted)
        assert (third.transaction.transaction_id, third.created) == (tx.transaction_id, False)
        # any part of the key different: a new transaction
        for args in (
            ("CP2", 1, "TAG", 1000, at(1)),
            ("CP1", 2, "TAG", 1000, at(1)),
            ("CP1", 1, "TAG2", 1000, at(1)),
            ("CP1", 1, "TAG", 1001, at(1)),
            ("CP1", 1, "TAG", 1000, at(2)),
        ):
            other = await store.open_transaction(*args)
            assert other.created, args
            assert other.transaction.transaction_id != tx.transaction_id
        assert len(await store.list_transactions()) == 6
        # a retry of a start that was superseded since: the same (stopped) transaction, and
        # the start that superseded it stays the active one
        late = await store.open_transaction("CP1", 1, "TAG", 1000, at(1))
        assert (late.transaction.transaction_id, late.created, late.superseded) == \
            (tx.transaction_id, False, [])
        assert late.transaction.stop_reason == SUPERSEDED
        active = await store.active_transaction("CP1", 1)
        assert active is not None and active.started_at == at(2)

    async def test_a_start_supersedes_the_active_transaction_on_its_connector(
            self, store: Store) -> None:
        """Stopped when the newer one started, at its latest energy register reading, else
        at its meterStart; the other connector's transaction runs on."""
        first = await start(store, tag="A", meter=1000, when=at(1))
        await store.append_meter_values([MeterValue("CP1", 1, first, at(2), "1300")])
        other_connector = await start(store, connector=2, when=at(1))
        second = await store.open_transaction("CP1", 1, "B", 1400, at(5))
        [stopped] = second.superseded
        assert (stopped.transaction_id, stopped.meter_stop, stopped.stopped_at,
                stopped.stop_reason) == (first, 1300, at(5), SUPERSEDED)
        assert await store.get_transaction(first) == stopped
        third = await store.open_transaction("CP1", 1, "C", 1500, at(8))  # no reading
        [stopped] = third.superseded
        assert (stopped.transaction_id, stopped.meter_stop, stopped.stopped_at,
                stopped.stop_reason) == (second.transaction.transaction_id, 1400, at(8),
                                         SUPERSEDED)
        active = await store.list_transactions(station_id="CP1", active=True)
        assert sorted(tx.transaction_id for tx in active) == \
            sorted([other_connector, third.transaction.transaction_id])

    async def test_a_start_supersedes_by_arrival_not_by_the_latest_stamp(
            self, store: Store) -> None:
        """A station that lost its transaction in a reboot often lost its clock too: its new
        start is stamped before the lost one, and it is still the one that runs."""
        lost = await start(store, tag="LOST", meter=100, when=at(9))
        await store.append_meter_values([MeterValue("CP1", 1, lost, at(10), "400")])
        arrived = await store.open_transaction("CP1", 1, "NEW", 500, at(1))
        [stopped] = arrived.superseded
        assert stopped.transaction_id == lost
        assert (stopped.meter_stop, stopped.stopped_at, stopped.stop_reason) == \
            (400, at(9), SUPERSEDED)  # never before its own start
        active = await store.list_transactions(station_id="CP1", active=True)
        assert [tx.transaction_id for tx in active] == [arrived.transaction.transaction_id]

    async def test_open_transaction_reads_the_tag_as_stored_then(self, store: Store) -> None:
        """The start's idTag comes with the outcome, a retry's too; a retry supersedes
        nothing again."""
        first = await store.open_transaction("CP1", 1, "OLD", 1000, at(1))
        assert (first.created, first.superseded, first.id_tag) == (True, [], None)
        older = first.transaction.transaction_id
        await store.append_meter_values([MeterValue("CP1", 1, older, at(2), "1300")])
        await store.upsert_id_tag(IdTag("TAG", "Blocked", at(100), "PARENT"))

        newer = await store.open_transaction("CP1", 1, "TAG", 1400, at(5))
        assert newer.created
        assert newer.id_tag == IdTag("TAG", "Blocked", at(100), "PARENT")
        [stopped] = newer.superseded
        assert (stopped.transaction_id, stopped.meter_stop, stopped.stopped_at,
                stopped.stop_reason) == (older, 1300, at(5), SUPERSEDED)
        assert newer.transaction == await store.get_transaction(
            newer.transaction.transaction_id)

        await store.upsert_id_tag(IdTag("TAG", "Accepted"))
        retried = await store.open_transaction("CP1", 1, "TAG", 1400, at(5))
        assert (retried.transaction, retried.created, retried.superseded) == \
            (newer.transaction, False, [])
        assert retried.id_tag == IdTag("TAG", "Accepted")
        active = await store.list_transactions(station_id="CP1", active=True)
        assert [tx.transaction_id for tx in active] == [newer.transaction.transaction_id]

    async def test_stop_transaction(self, store: Store) -> None:
        tx_id = await start(store, meter=1000)
        tx, changed = await store.stop_transaction(
            "CP1", tx_id, meter_stop=4500, stopped_at=at(60), reason="Local", id_tag="TAG"
        )
        assert changed is True
        assert tx is not None
        assert (tx.meter_stop, tx.stopped_at, tx.stop_reason, tx.stop_id_tag) == (
            4500,
            at(60),
            "Local",
            "TAG",
        )
        assert_utc(tx.stopped_at)
        assert not tx.active
        assert tx.energy_wh == 3500
        assert await store.get_transaction(tx_id) == tx
        assert await store.list_orphan_stops() == []

    async def test_stop_repeat_keeps_first_stop(self, store: Store) -> None:
        tx_id = await start(store)
        first, changed = await stop(store, "CP1", tx_id, 2000, at(10), "Local")
        assert changed
        again, changed_again = await stop(store, "CP1", tx_id, 9999, at(99), "Remote")
        assert changed_again is False
        assert again == first
        assert again is not None and again.meter_stop == 2000 and again.stop_reason == "Local"

    async def test_stop_unknown_transaction_records_orphan(self, store: Store) -> None:
        tx, changed = await store.stop_transaction(
            "CP1", 4242, meter_stop=777, stopped_at=at(5), reason="EVDisconnected", id_tag="T"
        )
        assert (tx, changed) == (None, True)
        tx, changed = await store.stop_transaction(
            "CP1", 4242, meter_stop=777, stopped_at=at(5), reason="EVDisconnected", id_tag="T"
        )
        assert (tx, changed) == (None, False)
        orphans = await store.list_orphan_stops()
        assert len(orphans) == 1
        orphan = orphans[0]
        assert (orphan.station_id, orphan.transaction_id, orphan.meter_stop) == ("CP1", 4242, 777)
        assert (orphan.stopped_at, orphan.reason, orphan.id_tag) == (at(5), "EVDisconnected", "T")
        assert_utc(orphan.stopped_at)
        assert_utc(orphan.received_at)
        assert await store.get_transaction(4242) is None

    async def test_orphan_stops_dedup_key_and_filter(self, store: Store) -> None:
        assert (await stop(store, "CP1", 1, 10, at(1)))[1] is True
        assert (await stop(store, "CP1", 1, 11, at(1)))[1] is True  # other meter_stop
        assert (await stop(store, "CP1", 1, 10, at(2)))[1] is True  # other stopped_at
        assert (await stop(store, "CP2", 1, 10, at(1)))[1] is True  # other station
        assert (await stop(store, "CP1", 2, 10, at(1)))[1] is True  # other transaction
        assert (await stop(store, "CP1", 1, 10, at(1)))[1] is False  # repeat
        assert len(await store.list_orphan_stops()) == 5
        cp2 = await store.list_orphan_stops("CP2")
        assert [(o.station_id, o.transaction_id) for o in cp2] == [("CP2", 1)]
        assert await store.list_orphan_stops("CP3") == []

    async def test_stop_from_other_station_does_not_close(self, store: Store) -> None:
        tx_id = await start(store, "CP1")
        tx, changed = await stop(store, "EVIL", tx_id, 99999, at(5))
        assert (tx, changed) == (None, True)
        own = await store.get_transaction(tx_id)
        assert own is not None and own.active
        assert [o.station_id for o in await store.list_orphan_stops()] == ["EVIL"]

    async def test_get_unknown_transaction(self, store: Store) -> None:
        assert await store.get_transaction(1) is None
        assert await store.list_transactions() == []

    async def test_list_transactions(self, store: Store) -> None:
        a1 = await start(store, "A", 1, when=at(1))
        b1 = await start(store, "B", 1, when=at(2))
        a2 = await start(store, "A", 2, when=at(3))
        await stop(store, "A", a1, 2000, at(4))
        assert [t.transaction_id for t in await store.list_transactions()] == [a2, b1, a1]
        listed = await store.list_transactions(station_id="A")
        assert [t.transaction_id for t in listed] == [a2, a1]
        listed = await store.list_transactions(active=True)
        assert [t.transaction_id for t in listed] == [a2, b1]
        listed = await store.list_transactions(active=False)
        assert [t.transaction_id for t in listed] == [a1]
        listed = await store.list_transactions(station_id="A", active=True)
        assert [t.transaction_id for t in listed] == [a2]
        assert [t.transaction_id for t in await store.list_transactions(limit=2)] == [a2, b1]
        assert await store.list_transactions(station_id="C") == []

    async def test_active_transaction(self, store: Store) -> None:
        assert await store.active_transaction("CP1", 1) is None
        tx_id = await start(store, "CP1", 1)
        other = await start(store, "CP1", 2)
        active = await store.active_transaction("CP1", 1)
        assert active is not None and active.transaction_id == tx_id
        assert await store.active_transaction("CP2", 1) is None
        await stop(store, "CP1", tx_id, 2000, at(9))
        assert await store.active_transaction("CP1", 1) is None
        still = await store.active_transaction("CP1", 2)
        assert still is not None and still.transaction_id == other

    # meter values -------------------------------------------------------------------------------

    async def test_meter_values_round_trip_oldest_first(self, store: Store) -> None:
        tx_id = await start(store)
        later = energy(tx_id, "1300", at(20))
        earlier = energy(tx_id, "1100", at(10))
        power = MeterValue("CP1", 1, tx_id, at(15), "7.2", "Power.Active.Import", "kW")
        await store.append_meter_values([later, earlier])
        await store.append_meter_values([power])
        await store.append_meter_values([])
        values = await store.list_meter_values(tx_id)
        assert values == [earlier, power, later]
        for value in values:
            assert_utc(value.timestamp)
        assert await store.list_meter_values(tx_id + 1) == []

    async def test_meter_values_update_latest_energy(self, store: Store) -> None:
        tx_id = await start(store, meter=1000)
        await store.append_meter_values([energy(tx_id, "1200", at(10))])
        tx = await store.get_transaction(tx_id)
        assert tx is not None
        assert (tx.last_energy_wh, tx.last_energy_at) == (1200, at(10))
        assert_utc(tx.last_energy_at)
        assert tx.energy_wh == 200

        await store.append_meter_values([energy(tx_id, "1500", at(20))])
        tx = await store.get_transaction(tx_id)
        assert tx is not None and (tx.last_energy_wh, tx.last_energy_at) == (1500, at(20))

    async def test_late_older_reading_does_not_move_energy_back(self, store: Store) -> None:
        tx_id = await start(store, meter=1000)
        await store.append_meter_values([energy(tx_id, "1500", at(20))])
        await store.append_meter_values([energy(tx_id, "1200", at(10))])
        tx = await store.get_transaction(tx_id)
        assert tx is not None and (tx.last_energy_wh, tx.last_energy_at) == (1500, at(20))
        assert len(await store.list_meter_values(tx_id)) == 2  # still stored

    async def test_a_later_call_at_the_same_time_leaves_the_register(self, store: Store) -> None:
        """Calls apply in order, each moving the register only to a strictly newer reading (as
        the charging service moves its own copy, `apply_energy_readings`): a later call's
        reading at the register's very time leaves it, however the calls are written."""
        tx_id = await start(store, meter=0)
        await store.append_meter_values([energy(tx_id, "1500", at(20))])
        await store.append_meter_values([energy(tx_id, "1600", at(20))])
        tx = await store.get_transaction(tx_id)
        assert tx is not None and (tx.last_energy_wh, tx.last_energy_at) == (1500, at(20))
        assert len(await store.list_meter_values(tx_id)) == 2

    async def test_newest_in_one_call_wins_regardless_of_order(self, store: Store) -> None:
        tx_id = await start(store, meter=0)
        await store.append_meter_values(
            [
                energy(tx_id, "300", at(30)),
                energy(tx_id, "100", at(10)),
                energy(tx_id, "200", at(20)),
            ]
        )
        tx = await store.get_transaction(tx_id)
        assert tx is not None and (tx.last_energy_wh, tx.last_energy_at) == (300, at(30))

    async def test_only_unphased_energy_register_counts(self, store: Store) -> None:
        tx_id = await start(store, meter=0)
        await store.append_meter_values(
            [
                energy(tx_id, "999", at(50), phase="L1"),
                energy(tx_id, "888", at(50), measurand="Energy.Active.Export.Register"),
                energy(tx_id, "777", at(50), measurand="Power.Active.Import", unit="W"),
                energy(tx_id, "not-a-number", at(50)),
            ]
        )
        tx = await store.get_transaction(tx_id)
        assert tx is not None and tx.last_energy_wh is None and tx.last_energy_at is None
        assert len(await store.list_meter_values(tx_id)) == 4

    async def test_energy_in_kwh_and_fractions_round_to_wh(self, store: Store) -> None:
        tx_id = await start(store, meter=0)
        await store.append_meter_values([energy(tx_id, "1.2345", at(1), unit="kWh")])
        tx = await store.get_transaction(tx_id)
        assert tx is not None and tx.last_energy_wh == 1235  # 1234.5 Wh, half up
        await store.append_meter_values([energy(tx_id, "2000.4", at(2))])
        tx = await store.get_transaction(tx_id)
        assert tx is not None and tx.last_energy_wh == 2000
        await store.append_meter_values([energy(tx_id, "3000", at(3), unit=None)])
        tx = await store.get_transaction(tx_id)
        assert tx is not None and tx.last_energy_wh == 3000
        # the raw reading is stored as sent
        stored = await store.list_meter_values(tx_id)
        assert [(v.value, v.unit) for v in stored] == [
            ("1.2345", "kWh"),
            ("2000.4", "Wh"),
            ("3000", None),
        ]

    async def test_readings_beyond_max_register_never_become_the_register(
            self, store: Store) -> None:
        tx_id = await start(store, meter=0)
        await store.append_meter_values([energy(tx_id, str(MAX_REGISTER_WH), at(1))])
        await store.append_meter_values([
            energy(tx_id, str(MAX_REGISTER_WH + 1), at(2)),
            energy(tx_id, "1e30", at(3), unit="kWh"),
            energy(tx_id, f"-{MAX_REGISTER_WH + 1}", at(4)),
        ])
        tx = await store.get_transaction(tx_id)
        assert tx is not None and (tx.last_energy_wh, tx.last_energy_at) == \
            (MAX_REGISTER_WH, at(1))
        assert len(await store.list_meter_values(tx_id)) == 4  # kept as sent

    async def test_readings_only_touch_their_transaction(self, store: Store) -> None:
        one = await start(store, "CP1", 1)
        two = await start(store, "CP1", 2)
        await store.append_meter_values([energy(one, "5000", at(5))])
        tx_two = await store.get_transaction(two)
        assert tx_two is not None and tx_two.last_energy_wh is None
        # unknown or absent transaction ids are stored without error
        await store.append_meter_values([energy(None, "1", at(1)), energy(987654, "2", at(2))])
        assert await store.get_transaction(987654) is None

    # frames -------------------------------------------------------------------------------------

    async def test_frames_newest_first_with_limit(self, store: Store) -> None:
        await store.append_frames(grouped([frame("CP1", 1), frame("CP1", 2, "out")]), keep=100)
        await store.append_frames(grouped([frame("CP1", 3), frame("CP2", 1)]), keep=100)
        listed = await store.list_frames("CP1")
        assert listed == [frame("CP1", 3), frame("CP1", 2, "out"), frame("CP1", 1)]
        assert_utc(listed[0].at)
        assert await store.list_frames("CP1", limit=2) == [frame("CP1", 3), frame("CP1", 2, "out")]
        assert await store.list_frames("CP2") == [frame("CP2", 1)]
        assert await store.list_frames("CP3") == []
        await store.append_frames({}, keep=100)

    async def test_frames_capped_per_station(self, store: Store) -> None:
        for n in range(1, 11):
            await store.append_frames(grouped([frame("CP1", n)]), keep=3)
        await store.append_frames(grouped([frame("CP2", n) for n in range(1, 3)]), keep=3)
        assert [f.frame for f in await store.list_frames("CP1")] == [
            frame("CP1", n).frame for n in (10, 9, 8)
        ]
        assert len(await store.list_frames("CP2")) == 2
        # one call bigger than keep
        await store.append_frames(grouped([frame("CP2", n) for n in range(3, 9)]), keep=4)
        assert [f.frame for f in await store.list_frames("CP2")] == [
            frame("CP2", n).frame for n in (8, 7, 6, 5)
        ]
        assert len(await store.list_frames("CP1")) == 3

    async def test_frames_capped_in_bytes_across_stations(self, store: Store) -> None:
        def big(station: str, n: int) -> LoggedFrame:
            return LoggedFrame(station, "in", f"{n:03d}" + "é" * 48, at(n))  # 99 bytes

        for n in range(10):
            await store.append_frames(grouped([big(f"CP{n}", n)]), keep=100, max_bytes=500)
        await store.append_frames(grouped([big("CPX", n) for n in range(10, 13)]), keep=100,
                                  max_bytes=500)
        kept = {station: [f.frame[:3] for f in await store.list_frames(station)]
                for station in [f"CP{n}" for n in range(10)] + ["CPX"]}
        assert {k: v for k, v in kept.items() if v} == {
            "CP8": ["008"], "CP9": ["009"], "CPX": ["012", "011", "010"]}
        # still counted right after the oldest went
        await store.append_frames(grouped([big("CP1", 20)]), keep=100, max_bytes=500)
        assert await store.list_frames("CP8") == []
        assert len(await store.list_frames("CP1")) == 1

    async def test_frames_keep_zero_stores_nothing(self, store: Store) -> None:
        await store.append_frames(grouped([frame("CP1", 1)]), keep=0)
        assert await store.list_frames("CP1") == []

    async def test_frames_across_appends_show_exactly_the_newest_keep(
            self, store: Store) -> None:
        """Several frames per station per append, stations interleaved, `keep` not a multiple
        of any append's size: the newest `keep` frames, newest first, across appends."""
        appended: dict[str, list[LoggedFrame]] = {"CP1": [], "CP2": []}
        n = 0
        for size in (3, 1, 4, 2, 5, 3, 1):
            batch = []
            for _ in range(size):
                n += 1
                for station in ("CP1", "CP2"):
                    f = frame(station, n, "in" if n % 3 else "out")
                    batch.append(f)
                    appended[station].append(f)
            await store.append_frames(grouped(batch), keep=7)
            for station, frames in appended.items():
                assert await store.list_frames(station) == frames[::-1][:7], (size, station)
        newest = appended["CP1"][::-1]
        for limit in (0, 1, 2, 3, 5, 7, 50):
            assert await store.list_frames("CP1", limit=limit) == newest[:min(limit, 7)]

    async def test_frames_keep_lowered_and_raised(self, store: Store) -> None:
        """A lower `keep` shows fewer at once; a higher one never brings trimmed frames back,
        and the log grows to it."""
        await store.append_frames(grouped([frame("CP1", n) for n in range(1, 6)]), keep=5)
        await store.append_frames(grouped([frame("CP1", 6)]), keep=2)
        assert [f.frame for f in await store.list_frames("CP1")] == [
            frame("CP1", n).frame for n in (6, 5)]
        await store.append_frames(grouped([frame("CP1", n) for n in (7, 8)]), keep=10)
        assert [f.frame for f in await store.list_frames("CP1")] == [
            frame("CP1", n).frame for n in (8, 7, 6, 5)]

    async def test_frames_unicode_and_byte_cap_inside_an_append(self, store: Store) -> None:
        """Non-ASCII frames come back as written, and the byte cap drops exactly the oldest
        frames, also from the middle of one station's append."""

        def wide(station: str, n: int) -> LoggedFrame:  # 99 bytes, 51 characters
            return LoggedFrame(station, "out", f"{n:03d}" + "é" * 46 + "😀", at(n))

        await store.append_frames(grouped([wide("CP1", n) for n in range(5)]), keep=100,
                                  max_bytes=350)
        assert await store.list_frames("CP1") == [wide("CP1", n) for n in (4, 3, 2)]
        await store.append_frames(grouped([wide("CP2", 5), wide("CP1", 6)]), keep=100,
                                  max_bytes=350)
        assert await store.list_frames("CP1") == [wide("CP1", n) for n in (6, 4)]
        assert await store.list_frames("CP2") == [wide("CP2", 5)]
        # the count still holds after the cut: one more frame pushes exactly one out
        await store.append_frames(grouped([wide("CP3", 7)]), keep=100, max_bytes=350)
        assert await store.list_frames("CP1") == [wide("CP1", 6)]
        assert await store.list_frames("CP3") == [wide("CP3", 7)]

    async def test_frame_times_come_back_in_utc(self, store: Store) -> None:
        """Also when a frame was logged with another offset."""
        plus_two = timezone(timedelta(hours=2))
        logged = [LoggedFrame("CP1", "in", "a", at(1)),
                  LoggedFrame("CP1", "out", "b", at(2).astimezone(plus_two))]
        await store.append_frames(grouped(logged), keep=10)
        listed = await store.list_frames("CP1")
        assert [(f.frame, f.at) for f in listed] == [("b", at(2)), ("a", at(1))]
        for f in listed:
            assert_utc(f.at)

    # concurrency --------------------------------------------------------------------------------

    async def test_concurrent_distinct_starts_get_distinct_ids(self, store: Store) -> None:
        results = await asyncio.gather(
            *(
                store.open_transaction(f"CP{n % 20}", n // 20 + 1, "TAG", n, at(n))
                for n in range(200)
            )
        )
        ids = [outcome.transaction.transaction_id for outcome in results]
        assert all(outcome.created and not outcome.superseded for outcome in results)
        assert len(set(ids)) == 200
        assert len(await store.list_transactions(limit=1000)) == 200

    async def test_concurrent_identical_starts_make_one_transaction(self, store: Store) -> None:
        results = await asyncio.gather(
            *(store.open_transaction("CP1", 1, "TAG", 100, at(1)) for _ in range(50))
        )
        assert sum(outcome.created for outcome in results) == 1
        assert len({outcome.transaction.transaction_id for outcome in results}) == 1
        assert all(outcome.superseded == [] for outcome in results)
        assert len(await store.list_transactions()) == 1

    async def test_concurrent_stop_repeats_change_once(self, store: Store) -> None:
        tx_id = await start(store)
        results = await asyncio.gather(
            *(stop(store, "CP1", tx_id, 2000 + n, at(10 + n)) for n in range(30))
        )
        assert sum(changed for _, changed in results) == 1
        winner = next(tx for tx, changed in results if changed)
        assert winner is not None
        for tx, _ in results:
            assert tx is not None and tx.meter_stop == winner.meter_stop
        stored = await store.get_transaction(tx_id)
        assert stored is not None and stored.meter_stop == winner.meter_stop

    async def test_concurrent_orphan_stop_repeats_record_once(self, store: Store) -> None:
        results = await asyncio.gather(*(stop(store, "CP1", 77, 5, at(1)) for _ in range(30)))
        assert sum(changed for _, changed in results) == 1
        assert len(await store.list_orphan_stops()) == 1

    async def test_concurrent_next_transaction_id(self, store: Store) -> None:
        ids = await asyncio.gather(*(store.next_transaction_id() for _ in range(100)))
        assert sorted(ids) == list(range(1, 101))

    async def test_concurrent_readings_keep_newest_energy(self, store: Store) -> None:
        tx_id = await start(store, meter=0)
        order = [37, 5, 99, 12, 64, 0, 81, 50, 23, 70]
        await asyncio.gather(
            *(store.append_meter_values([energy(tx_id, str(n * 10), at(n))]) for n in order)
        )
        tx = await store.get_transaction(tx_id)
        assert tx is not None and (tx.last_energy_wh, tx.last_energy_at) == (990, at(99))
        assert len(await store.list_meter_values(tx_id)) == len(order)

    async def test_readings_with_the_callers_newest_register(self, store: Store) -> None:
        """The charging service hands over `newest_energy` of the values, computed once for the
        store and its own copy: stored as when the store computes it, never moving back."""
        tx_id = await start(store, meter=0)
        values = [energy(tx_id, "300", at(3)), energy(tx_id, "200", at(2))]
        await store.append_meter_values(values, newest_energy(values))
        late = [energy(tx_id, "100", at(1))]
        await store.append_meter_values(late, newest_energy(late))
        tx = await store.get_transaction(tx_id)
        assert tx is not None and (tx.last_energy_wh, tx.last_energy_at) == (300, at(3))
        stored = await store.list_meter_values(tx_id)
        assert [(v.value, v.timestamp) for v in stored] == [
            ("100", at(1)), ("200", at(2)), ("300", at(3))]

    # station-owned transactions (OCPP 2.0.1 TransactionEvent) ---------------------------------

    async def test_events_make_one_transaction_per_station_and_id(self, store: Store) -> None:
        first = await store.record_event(event("Started", "T-1", 0, 0, wh=100, tag="TAG"))
        assert (first.created, first.linked, first.duplicate) == (True, True, False)
        tx = first.transaction
        assert (tx.station_transaction_id, tx.ocpp_version, tx.id_tag, tx.meter_start,
                tx.connector_id) == ("T-1", "2.0.1", "TAG", 100, 1)
        again = await store.record_event(event("Updated", "T-1", 1, 60, wh=400))
        assert not again.created and again.transaction.transaction_id == tx.transaction_id
        other = await store.record_event(event("Started", "T-1", 0, 0, station="CP2"))
        assert other.created and other.transaction.transaction_id != tx.transaction_id
        stored = await store.get_station_transaction("CP1", "T-1")
        assert stored is not None and (stored.last_energy_wh, stored.seq_nos) == (400, [[0, 1]])
        assert stored.transaction_id == tx.transaction_id
        assert await store.get_station_transaction("CP3", "T-1") is None
        by_id = await store.get_transaction(tx.transaction_id)
        assert by_id is not None and by_id.station_transaction_id == "T-1"
        # a 1.6 start with the same start fields is another transaction
        assert (await store.open_transaction("CP1", 1, "TAG", 100, at(0))).created

    async def test_event_registers_by_time_not_arrival(self, store: Store) -> None:
        await store.record_event(event("Updated", "T-2", 2, 120, wh=900))
        await store.record_event(event("Started", "T-2", 0, 0, wh=300, tag="TAG"))
        await store.record_event(event("Updated", "T-2", 1, 60, wh=600))
        ended = await store.record_event(event("Ended", "T-2", 3, 180))
        tx = ended.transaction
        assert ended.ended and (tx.meter_start, tx.meter_stop, tx.energy_wh) == (300, 900, 600)
        assert (tx.started_at, tx.stopped_at, tx.stop_reason) == (at(0), at(180), "Local")
        stored = await store.get_station_transaction("CP1", "T-2")
        assert stored is not None and (stored.meter_stop, stored.started_at) == (900, at(0))

    async def test_a_repeated_seq_no_changes_nothing(self, store: Store) -> None:
        await store.record_event(event("Started", "T-3", 0, 0, wh=10))
        repeat = await store.record_event(event("Started", "T-3", 0, 5, wh=50, tag="X"))
        assert repeat.duplicate and not repeat.linked
        tx = await store.get_station_transaction("CP1", "T-3")
        assert tx is not None and (tx.meter_start, tx.id_tag, tx.started_at) == (10, "", at(0))

    async def test_an_ended_transaction_is_frozen(self, store: Store) -> None:
        await store.record_event(event("Started", "T-4", 0, 0, wh=0, tag="TAG"))
        await store.record_event(event("Ended", "T-4", 2, 100, wh=500, reason="EVDisconnected"))
        late = await store.record_event(event("Updated", "T-4", 3, 200, wh=9000))
        assert not late.duplicate and not late.ended
        early = await store.record_event(event("Updated", "T-4", 1, -50, wh=-7))
        tx = early.transaction
        assert (tx.meter_start, tx.meter_stop, tx.stopped_at, tx.started_at, tx.stop_reason) \
            == (0, 500, at(100), at(0), "EVDisconnected")
        assert tx.seq_nos == [[0, 3]]

    async def test_seq_nos_stay_few_however_many_events(self, store: Store) -> None:
        """A long transaction is one range; a station that leaves a gap at every other seqNo
        cannot grow what is kept past MAX_SEQ_RANGES (its oldest gaps close), and its Ended
        still ends the transaction."""
        for n in range(150):
            await store.record_event(event("Updated", "T-6", n, n))
        tx = await store.get_station_transaction("CP1", "T-6")
        assert tx is not None and tx.seq_nos == [[0, 149]]
        for n in range(0, 2 * MAX_SEQ_RANGES + 20, 2):
            await store.record_event(event("Updated", "T-7", n, n))
        tx = await store.get_station_transaction("CP1", "T-7")
        assert tx is not None and len(tx.seq_nos) == MAX_SEQ_RANGES
        assert tx.seq_nos[-1] == [2 * MAX_SEQ_RANGES + 18] * 2
        assert (await store.record_event(event("Updated", "T-7", 1, 1))).duplicate
        assert not (await store.record_event(event("Updated", "T-7", 2 * MAX_SEQ_RANGES + 17,
                                                   9))).duplicate
        ended = await store.record_event(event("Ended", "T-7", 3, 500, wh=5))
        assert ended.ended and ended.transaction.meter_stop == 5

    async def test_a_started_event_supersedes_and_reads_the_id_tags(self, store: Store) -> None:
        """A live Started that creates its transaction stops the older ones on its connector
        within record_event, which also reads the idTags of the transaction and the event."""
        await store.upsert_id_tag(IdTag("NEW", "Blocked"))
        older = await store.record_event(event("Started", "T-OLD", 0, 0, wh=100, tag="OLD"))
        assert older.superseded == [] and older.id_tags == {"OLD": None}
        newer = await store.record_event(event("Started", "T-NEW", 0, 10, wh=300, tag="NEW"))
        [stopped] = newer.superseded
        assert (stopped.transaction_id, stopped.meter_stop, stopped.stopped_at,
                stopped.stop_reason) == (older.transaction.transaction_id, 100, at(10),
                                         SUPERSEDED), stopped
        assert newer.id_tags == {"NEW": IdTag("NEW", "Blocked")}
        again = await store.record_event(event("Updated", "T-NEW", 1, 20, wh=400, tag="OLD"))
        assert again.superseded == [] and again.id_tags == {"OLD": None}  # the one presented
        same = await store.record_event(event("Updated", "T-NEW", 2, 21, tag="NEW"))
        assert same.id_tags == {"NEW": IdTag("NEW", "Blocked")}  # its own, repeated
        # the meter values' Updated events carry no idToken: their answer needs no verdict,
        # and reading one anyway was a round trip more per event on MongoDB
        plain = await store.record_event(event("Updated", "T-NEW", 3, 22, wh=450))
        assert plain.superseded == [] and plain.id_tags == {}
        late = event("Started", "T-LATE", 0, 30, wh=500)
        late.offline = True  # an offline start arrives late: it supersedes nothing
        assert (await store.record_event(late)).superseded == []
        active = await store.list_transactions(station_id="CP1", active=True)
        assert {tx.transaction_id for tx in active} == {
            newer.transaction.transaction_id, (await store.get_station_transaction(
                "CP1", "T-LATE")).transaction_id}  # type: ignore[union-attr]

    async def test_an_event_stores_its_values_once(self, store: Store) -> None:
        started = await store.record_event(event("Started", "T-6", 0, 0, wh=100, tag="TAG"))
        tx_id = started.transaction.transaction_id
        await store.record_event(event("Updated", "T-6", 1, 60, wh=400))
        repeat = await store.record_event(event("Updated", "T-6", 1, 60, wh=400))
        assert repeat.duplicate
        stored = await store.list_meter_values(tx_id)
        assert [(v.value, v.transaction_id, v.connector_id) for v in stored] \
            == [("100", tx_id, 1), ("400", tx_id, 1)]

    async def test_concurrent_first_events_make_one_transaction(self, store: Store) -> None:
        outcomes = await asyncio.gather(
            *(store.record_event(event("Updated", "T-5", n, n, wh=n)) for n in range(20)))
        assert len({o.transaction.transaction_id for o in outcomes}) == 1
        tx = await store.get_station_transaction("CP1", "T-5")
        assert tx is not None and tx.seq_nos == [[0, 19]]
        assert (tx.meter_start, tx.last_energy_wh) == (0, 19)

    async def test_a_reused_transaction_id_starts_a_new_transaction_after_the_end(
            self, store: Store) -> None:
        """A station that reuses a transactionId after a reboot: a Started stamped after the
        old transaction's end, or with a seqNo received before but stamped before the old
        start (a reset clock), starts a new transaction; true late events stay the old one's."""
        first = await store.record_event(event("Started", "T-8", 0, 0, wh=100, tag="A"))
        old_id = first.transaction.transaction_id
        await store.record_event(event("Ended", "T-8", 1, 100, wh=500))
        late = await store.record_event(event("Started", "T-8", 0, 0, wh=100, tag="A"))
        assert late.duplicate and late.transaction.transaction_id == old_id
        again = await store.record_event(event("Started", "T-8", 0, 200, wh=600, tag="B"))
        new = again.transaction
        assert again.created and not again.duplicate and new.transaction_id != old_id
        assert (new.id_tag, new.meter_start, new.active, new.station_transaction_id) == (
            "B", 600, True, "T-8")
        updated = await store.record_event(event("Updated", "T-8", 1, 260, wh=900))
        assert not updated.duplicate and updated.transaction.transaction_id == new.transaction_id
        ended = await store.record_event(event("Ended", "T-8", 2, 300, wh=1000))
        assert ended.ended and ended.transaction.energy_wh == 400
        newest = await store.get_station_transaction("CP1", "T-8")
        assert newest is not None and newest.transaction_id == new.transaction_id
        old = await store.get_transaction(old_id)
        assert old is not None and (old.id_tag, old.meter_stop, old.stopped_at) == (
            "A", 500, at(100))
        reset = await store.record_event(event("Started", "T-8", 0, -500, wh=0, tag="C"))
        assert reset.created and reset.transaction.transaction_id not in (
            old_id, new.transaction_id)
        assert len(await store.list_transactions(station_id="CP1")) == 3

    async def test_a_late_started_within_an_ended_transaction_stays_in_it(
            self, store: Store) -> None:
        first = await store.record_event(event("Updated", "T-9", 1, 10, wh=50))
        await store.record_event(event("Ended", "T-9", 2, 100, wh=400))
        late = await store.record_event(event("Started", "T-9", 0, 5, wh=20, tag="A"))
        tx = late.transaction
        assert not late.created and tx.transaction_id == first.transaction.transaction_id
        assert (tx.meter_start, tx.meter_stop, tx.seq_nos) == (50, 400, [[0, 2]])

    # remote starts awaiting their transaction (OCPP 2.0.1 remoteStartId) ---------------------

    async def test_a_remote_start_links_until_forgotten_or_expired(self, store: Store) -> None:
        # times from now: a backend may drop expired links by the wall clock (a TTL index)
        now = utcnow().replace(microsecond=0)

        def later(seconds: int) -> datetime:
            return now + timedelta(seconds=seconds)

        await store.expect_remote_start("CP1", 7, "TAG", at=now, expires_at=later(100))
        assert await store.remote_start_tag("CP1", 7, later(50)) == "TAG"
        assert await store.remote_start_tag("CP2", 7, later(50)) is None  # another station's
        assert await store.remote_start_tag("CP1", 8, later(50)) is None
        assert await store.remote_start_tag("CP1", 7, later(100)) is None  # expired
        await store.expect_remote_start("CP1", 7, "OTHER", at=now, expires_at=later(200))
        assert await store.remote_start_tag("CP1", 7, later(150)) == "OTHER"  # replaced
        await store.forget_remote_start("CP1", 7)
        await store.forget_remote_start("CP1", 7)  # twice: no error
        assert await store.remote_start_tag("CP1", 7, later(150)) is None

    async def test_remote_starts_survive_reopening(self, store: Store) -> None:
        now = utcnow()
        await store.expect_remote_start("CP1", 9, "TAG", at=now,
                                        expires_at=now + timedelta(days=1))
        await store.close()
        await store.open()
        assert await store.remote_start_tag("CP1", 9, now) == "TAG"

def event(event_type: str, tx_id: str, seq_no: int, seconds: float, *, wh: int | None = None,
          tag: str | None = None, station: str = "CP1",
          reason: str | None = None) -> TransactionEvent:
    values = [] if wh is None else [energy(None, str(wh), at(seconds), station=station)]
    return TransactionEvent(
        station_id=station, station_transaction_id=tx_id, ocpp_version="2.0.1",
        event_type=event_type, seq_no=seq_no, timestamp=at(seconds), connector_id=1,
        id_tag=tag, stop_reason=reason, values=values)
