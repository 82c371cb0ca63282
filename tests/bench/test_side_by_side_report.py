"""`bench/side_by_side.py`'s plan and report: rounds rotate the servers, and each ratio is taken
within a round, so a host that slows down between rounds moves every server alike and the
ratios stay put. Runs no server: the runs are made up."""

from __future__ import annotations

import argparse

from bench import side_by_side
from bench.side_by_side import Run


def _args(**overrides: object) -> argparse.Namespace:
    values = dict(servers="csms,csms-window,ocpp-rpc,floor", scenarios="closed16,closed201,connect",
                  rounds=3, quick=False, stations=1000, duration=20.0, connect_stations=10000,
                  server_core="0", generator_core="1", uvloop=False)
    values.update(overrides)
    return argparse.Namespace(**values)


def test_each_round_runs_every_server_once_per_scenario_in_a_rotated_order() -> None:
    plan = side_by_side.plan(_args())
    closed16 = [(r, name) for r, name, scenario in plan if scenario == "closed16"]
    assert closed16 == [
        (1, "csms"), (1, "csms-window"), (1, "ocpp-rpc"), (1, "floor"),
        (2, "csms-window"), (2, "ocpp-rpc"), (2, "floor"), (2, "csms"),
        (3, "ocpp-rpc"), (3, "floor"), (3, "csms"), (3, "csms-window")]
    assert not any(name == "floor" for _, name, scenario in plan if scenario == "closed201")
    connect = [(r, name) for r, name, scenario in plan if scenario == "connect"]
    # the library's 10,000 ChargePoints take minutes to boot: once; the window is csms's alone
    assert sorted(connect) == [(1, "csms"), (1, "floor"), (1, "ocpp-rpc"), (2, "csms"),
                               (2, "ocpp-rpc"), (3, "csms"), (3, "ocpp-rpc")]
    # the scenarios run one after the other, so one scenario's runs stay close in time
    scenarios = [scenario for _, _, scenario in plan]
    assert scenarios == sorted(scenarios, key=["closed16", "closed201", "connect"].index)


def _closed(server: str, round_: int, rate: float, p99: float, cpu: float) -> Run:
    run = Run(server, "closed16", {"msgsPerSecond": rate, "p50": 1.0, "p95": 2.0, "p99": p99,
                                   "errors": {}, "stations": 1000, "ready": 1000,
                                   "sampledValuesAcked": 10},
              round=round_, server_cpu=cpu, generator_cpu=0.5)
    if server.startswith("csms"):
        run.stored = 10
    return run


def test_ratios_are_taken_within_each_round_and_reported_as_their_median() -> None:
    # the host runs at full speed, at half speed, then at 0.8: every server alike
    runs = [_closed(server, round_, rate * speed, p99 / speed, 0.9)
            for round_, speed in ((1, 1.0), (2, 0.5), (3, 0.8))
            for server, rate, p99 in (("csms", 12_000, 300), ("ocpp-rpc", 24_000, 100))]
    text = side_by_side.report(runs, _args(servers="csms,ocpp-rpc", scenarios="closed16"),
                               "python bench/side_by_side.py")
    assert "msgs/s **0.50x** ocpp-rpc's (rounds: 0.50, 0.50, 0.50) " \
        "[target >= 0.6x: not met]" in text
    assert "p99 **3.00x** ocpp-rpc's (rounds: 3.00, 3.00, 3.00) [target <= 2x: not met]" in text
    # the table shows the median and the range of each server's own rates
    assert "| 1.6 | csms | 9,600 (6,000-12,000) |" in text
    assert "| 30 / 30 |" in text  # values acknowledged / stored over the three rounds


def test_a_round_missing_a_server_leaves_that_round_out_of_its_ratios() -> None:
    runs = [_closed("csms", 1, 15_000, 100, 0.9), _closed("ocpp-rpc", 1, 20_000, 80, 0.9),
            _closed("csms", 2, 10_000, 100, 0.9)]
    text = side_by_side.report(runs, _args(servers="csms,ocpp-rpc", scenarios="closed16"),
                               "python bench/side_by_side.py")
    assert "msgs/s **0.75x** ocpp-rpc's [target >= 0.6x: met]" in text
