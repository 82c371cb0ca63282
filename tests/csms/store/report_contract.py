"""Backend-independent contract of the `ReportStore` port (device-model reports).

A backend runs it by subclassing `ReportStoreContract` in its own test module, next to
`StoreContract`, with the same `store` fixture.
"""

from __future__ import annotations

from csms.device_model import ReportedVariable, ReportPart
from csms.store.ports import Store
from tests.csms.store.contract import assert_utc, at


def variable(name: str, value: str, **details: object) -> ReportedVariable:
    return ReportedVariable(component="OCPPCommCtrlr", variable=name, value=value,
                            **details)  # type: ignore[arg-type]


def part(seq_no: int, *names: str, request_id: int = 1, tbc: bool = False,
         station: str = "CP1", value: str = "1") -> ReportPart:
    return ReportPart(station_id=station, request_id=request_id, seq_no=seq_no, tbc=tbc,
                      generated_at=at(seq_no), variables=[variable(n, value) for n in names])


def names(report: object) -> list[str]:
    return [v.variable for v in report.variables]  # type: ignore[attr-defined]


class ReportStoreContract:
    async def test_no_report_is_none(self, store: Store) -> None:
        assert await store.latest_report("CP1") is None

    async def test_a_report_completes_with_its_last_part(self, store: Store) -> None:
        assert await store.add_report_part(part(0, "A", "B", tbc=True), at(10)) is None
        assert await store.add_report_part(part(1, "C", tbc=True), at(11)) is None
        assert await store.latest_report("CP1") is None  # in progress: nothing to show yet
        done = await store.add_report_part(part(2, "D"), at(12))
        assert done is not None and names(done) == ["A", "B", "C", "D"]
        latest = await store.latest_report("CP1")
        assert latest == done
        assert (latest.request_id, latest.parts) == (1, 3)
        assert latest.generated_at == at(0) and latest.completed_at == at(12)
        assert_utc(latest.generated_at)
        assert_utc(latest.completed_at)

    async def test_every_field_of_a_variable_round_trips(self, store: Store) -> None:
        full = ReportedVariable(
            component="EVSE", variable="Power", attribute_type="MaxSet", value="22000.5",
            component_instance="main", variable_instance="L1", evse_id=2, connector_id=1,
            mutability="ReadOnly", persistent=True, constant=True, data_type="decimal",
            unit="W", min_limit=0.0, max_limit=22000.5, values_list=None,
            supports_monitoring=True)
        bare = ReportedVariable(component="Clock", variable="TimeSource", value=None,
                                mutability="WriteOnly", values_list="NTP,GPS")
        report = await store.add_report_part(ReportPart(
            "CP1", 9, 0, False, at(0), [full, bare]), at(1))
        assert report is not None and report.variables == [full, bare]

    async def test_a_new_complete_report_replaces_the_old_one(self, store: Store) -> None:
        await store.add_report_part(part(0, "OLD"), at(1))
        # the operator asks again with the same requestId: a new report, not a repeat
        await store.add_report_part(part(0, "NEW1", tbc=True), at(2))
        assert names(await store.latest_report("CP1")) == ["OLD"]  # until the new completes
        await store.add_report_part(part(1, "NEW2"), at(3))
        latest = await store.latest_report("CP1")
        assert names(latest) == ["NEW1", "NEW2"] and latest.completed_at == at(3)

    async def test_a_repeated_part_changes_nothing(self, store: Store) -> None:
        await store.add_report_part(part(0, "A", tbc=True), at(1))
        await store.add_report_part(part(1, "B", tbc=True), at(2))
        await store.add_report_part(part(1, "B-again", tbc=True), at(3))
        done = await store.add_report_part(part(2, "C"), at(4))
        assert names(done) == ["A", "B", "C"]

    async def test_a_report_with_a_missing_part_never_completes(self, store: Store) -> None:
        await store.add_report_part(part(0, "OLD"), at(1))
        await store.add_report_part(part(0, "A", request_id=2, tbc=True), at(2))
        assert await store.add_report_part(part(2, "C", request_id=2), at(3)) is None
        assert names(await store.latest_report("CP1")) == ["OLD"]

    async def test_another_request_id_drops_the_unfinished_report(self, store: Store) -> None:
        await store.add_report_part(part(0, "A", request_id=5, tbc=True), at(1))
        # report 6 begins before 5 finished; 5's later parts then belong to nothing complete
        await store.add_report_part(part(0, "X", request_id=6, tbc=True), at(2))
        assert await store.add_report_part(part(1, "B", request_id=5), at(3)) is None
        assert await store.latest_report("CP1") is None
        await store.add_report_part(part(0, "Y", request_id=7), at(4))
        latest = await store.latest_report("CP1")
        assert (latest.request_id, names(latest)) == (7, ["Y"])

    async def test_an_empty_report_completes(self, store: Store) -> None:
        done = await store.add_report_part(part(0), at(1))
        assert done is not None and done.variables == [] and done.parts == 1

    async def test_reports_are_per_station(self, store: Store) -> None:
        await store.add_report_part(part(0, "A", station="CP1", tbc=True), at(1))
        await store.add_report_part(part(0, "Z", station="CP2"), at(2))
        await store.add_report_part(part(1, "B", station="CP1"), at(3))
        assert names(await store.latest_report("CP1")) == ["A", "B"]
        assert names(await store.latest_report("CP2")) == ["Z"]
