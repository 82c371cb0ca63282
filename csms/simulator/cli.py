"""`csms simulate`: the command line over `run_simulation`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import sys
from typing import Any

from csms.simulator.results import OCPP_CHOICES, SimulationConfig
from csms.simulator.runner import run_simulation

# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default="ws://127.0.0.1:8080/ocpp",
        help="central system websocket URL; the station id is appended as a path segment",
    )
    parser.add_argument("--stations", type=_positive_int, default=1, help="number of stations")
    parser.add_argument(
        "--ocpp", choices=OCPP_CHOICES, default="1.6",
        help="OCPP version the stations speak: 1.6 (subprotocol ocpp1.6), 2.0.1 (ocpp2.0.1: "
        "TransactionEvent, RequestStart/StopTransaction, device model reports), or mixed: a "
        "fleet alternating 1.6 and 2.0.1 stations, the first one 1.6 (default 1.6)",
    )
    parser.add_argument(
        "--id",
        action="append",
        default=[],
        metavar="ID",
        help="a fixed station id (repeat, or comma-separate, for several); replaces "
        "--stations and --id-prefix",
    )
    parser.add_argument(
        "--idle",
        action="store_true",
        help="act like hardware: boot, report Available and wait for RemoteStartTransaction "
        "(2.0.1: RequestStartTransaction); charge until RemoteStopTransaction "
        "(RequestStopTransaction) or a full car; reconnect when dropped; run until Ctrl-C (or "
        "--duration)",
    )
    parser.add_argument(
        "--power-kw", type=_positive_float, default=None,
        help="charging power in kW (default: 3.68, 7.36, 11.04 or 22.08 picked per station)",
    )
    parser.add_argument(
        "--battery-kwh", type=_positive_float, default=None,
        help="energy the car takes before it is full and the station stops (default: no limit)",
    )
    parser.add_argument(
        "--duration", type=_positive_float, default=None,
        help="seconds (default 60; idle: until Ctrl-C)",
    )
    parser.add_argument(
        "--meter-interval", type=_positive_float, default=10.0, help="seconds between MeterValues"
    )
    parser.add_argument(
        "--password", default=None, help="HTTP Basic password (username = station id)"
    )
    parser.add_argument("--id-prefix", default="SIM", help="station id prefix")
    parser.add_argument("--id-tag", default="SIMTAG", help="idTag to authorize and charge with")
    parser.add_argument(
        "--ramp",
        type=float,
        default=None,
        help="seconds over which connections are spread (default min(10, stations/100)); "
        "stations leave spread the same way, each staying duration - ramp seconds",
    )
    parser.add_argument(
        "--processes",
        type=_positive_int,
        default=1,
        help="worker processes to split the stations across (one client process tops out "
        "near 1,900 msgs/s)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=_positive_float,
        default=None,
        help="seconds between Heartbeats (default: the interval BootNotification returns)",
    )
    parser.add_argument(
        "--response-timeout", type=_positive_float, default=30.0, help="seconds per call"
    )
    parser.add_argument(
        "--progress-interval", type=float, default=5.0, help="seconds between progress lines"
    )
    parser.add_argument(
        "--no-validation",
        action="store_true",
        help="skip client-side schema validation of calls and responses (load tests: it is "
        "about half of the client's CPU)",
    )
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON")


def config_from_args(args: argparse.Namespace) -> SimulationConfig:
    ids = tuple(part.strip() for given in args.id for part in given.split(",") if part.strip())
    duration = args.duration or (math.inf if args.idle else 60.0)
    return SimulationConfig(
        url=args.url,
        stations=args.stations,
        ids=ids,
        idle=args.idle,
        verbose=args.idle,
        power_kw=args.power_kw,
        battery_kwh=args.battery_kwh,
        duration=duration,
        meter_interval=args.meter_interval,
        password=args.password,
        id_prefix=args.id_prefix,
        id_tag=args.id_tag,
        ramp=args.ramp,
        processes=args.processes,
        heartbeat_interval=args.heartbeat_interval,
        response_timeout=args.response_timeout,
        progress_interval=0 if args.idle else args.progress_interval,
        validate_messages=not args.no_validation,
        ocpp=args.ocpp,
    )


def run_command(args: argparse.Namespace) -> int:
    """`csms simulate`: run, print the summary; exit code 0 without errors, 1 otherwise."""
    # The library logs every frame at INFO and each CALLERROR at WARNING; we count those.
    logging.getLogger("ocpp").setLevel(logging.CRITICAL)
    config = config_from_args(args)
    try:
        summary = asyncio.run(run_simulation(config))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(summary.format_text())
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    return 0 if summary.ok else 1


def register(subparsers: Any) -> None:
    """Add the `simulate` sub-command to an argparse subparsers object."""
    parser = subparsers.add_parser(
        "simulate",
        help="run simulated OCPP 1.6J / 2.0.1 charge points against a central system",
        description="Simulated OCPP 1.6J and 2.0.1 charge points (demos and load tests).",
    )
    add_arguments(parser)
    parser.set_defaults(func=run_command)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry: `python -m csms.simulator [options]` (same options as `csms simulate`)."""
    parser = argparse.ArgumentParser(prog="python -m csms.simulator")
    subparsers = parser.add_subparsers(dest="command", required=True)
    register(subparsers)
    args = parser.parse_args(["simulate", *(argv if argv is not None else sys.argv[1:])])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

