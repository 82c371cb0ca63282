"""`csms simulate`: simulated OCPP 1.6J charge points for demos and load tests.

Each simulated station is an `ocpp` library `ChargePoint` client over a `websockets`
connection. It boots, reports its connector Available, authorizes, starts a transaction on
connector 1, reports Charging, sends MeterValues every `meter_interval` seconds (energy register
in Wh and active power in W, context Sample.Periodic), a Heartbeat now and then, and when the run
ends stops the transaction (meterStop plus a small transactionData), reports Available and
closes. While it runs it answers the calls a central system sends it (RemoteStart/Stop, Reset,
ChangeAvailability, UnlockConnector, Get/ChangeConfiguration, TriggerMessage, ClearCache,
DataTransfer).

Latency is measured per call, from just before `ChargePoint.call()` to its return, so it
includes the library's own (synchronous) schema validation on this side. "msgs/s" counts the
frames the stations sent per second of the run (one MeterValues each second per station is one
msg/s per station); frames received are reported next to it.

One process of the `ocpp` client tops out near 1,900 msgs/s on one core: beyond that use
`--processes K` to split the stations across K worker processes (one per free core).

The core is `run_simulation(SimulationConfig) -> Summary`, usable in-process by tests and the
benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import math
import multiprocessing
import queue
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import ocpp.messages
from ocpp.exceptions import OCPPError
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import (
    Action,
    AuthorizationStatus,
    AvailabilityStatus,
    AvailabilityType,
    ChargePointErrorCode,
    ChargePointStatus,
    ClearCacheStatus,
    ConfigurationStatus,
    DataTransferStatus,
    MessageTrigger,
    Reason,
    RegistrationStatus,
    RemoteStartStopStatus,
    ResetStatus,
    ResetType,
    TriggerMessageStatus,
    UnlockStatus,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

# Validation in the thread pool is the slowest option for both throughput and tail latency.
ocpp.messages.ASYNC_VALIDATION = False

LOGGER = logging.getLogger("csms.simulator")

VENDOR = "CSMS-Sim"
MODEL = "SimCharger-22"
FIRMWARE = "1.0.0"
CONNECTOR_ID = 1
# Nominal charging powers (W) a station picks from: 1-phase 16 A, 1-phase 32 A, 3-phase 16 A / 32 A.
POWERS_W = (3_680, 7_360, 11_040, 22_080)

# Error kinds counted in Summary.errors.
CONNECT_FAILED = "connect_failed"
DISCONNECTED = "disconnected"
TIMEOUT = "timeout"
CALL_ERROR = "call_error"
BOOT_REJECTED = "boot_rejected"
AUTHORIZE_REJECTED = "authorize_rejected"
START_REJECTED = "start_rejected"
WORKER_FAILED = "worker_failed"

MAX_ERROR_SAMPLES = 10


# --------------------------------------------------------------------------------------------
# configuration and results
# --------------------------------------------------------------------------------------------


@dataclass
class SimulationConfig:
    url: str = "ws://127.0.0.1:8080/ocpp"
    stations: int = 1
    duration: float = 60.0
    meter_interval: float = 10.0
    password: str | None = None
    id_prefix: str = "SIM"
    id_tag: str = "SIMTAG"
    ramp: float | None = None  # None: min(10, stations / 100); at most duration / 2
    processes: int = 1
    heartbeat_interval: float | None = None  # None: the interval BootNotification returns
    response_timeout: float = 30.0
    connect_timeout: float = 30.0
    progress_interval: float = 5.0  # seconds between progress lines; 0: none
    # Validate our calls and the server's responses against the OCPP schemas. Off for load
    # tests: it is about half of the client's CPU, and the server validates anyway.
    validate_messages: bool = True

    def effective_ramp(self) -> float:
        if self.ramp is not None:
            return max(0.0, self.ramp)
        return min(10.0, self.stations / 100)

    def station_id(self, index: int) -> str:
        width = max(4, len(str(self.stations)))
        return f"{self.id_prefix}{index + 1:0{width}d}"


@dataclass
class Stats:
    """Raw counters of one process; merged across worker processes."""

    messages_sent: int = 0
    messages_received: int = 0
    connected: int = 0  # currently open connections
    stations_connected: int = 0  # stations whose websocket opened at least once
    stations_booted: int = 0
    transactions_started: int = 0
    transactions_stopped: int = 0
    sampled_values_sent: int = 0  # sampled values in MeterValues calls sent
    sampled_values_acked: int = 0  # ... and answered with a CALLRESULT
    transaction_data_values_sent: int = 0  # sampled values in StopTransaction.transactionData
    calls: Counter = field(default_factory=Counter)  # CALLs sent, by action
    latencies: dict[str, list[float]] = field(default_factory=dict)  # seconds, by action
    errors: Counter = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    server_calls: Counter = field(default_factory=Counter)  # CALLs received, by action
    # Frames sent in each second of the run (index: whole seconds since t0, a wall-clock time).
    sent_per_second: list[int] = field(default_factory=list)
    t0: float = 0.0

    def count_sent(self) -> None:
        self.messages_sent += 1
        second = int(time.time() - self.t0)
        if second >= 0:
            timeline = self.sent_per_second
            if second >= len(timeline):
                timeline.extend([0] * (second + 1 - len(timeline)))
            timeline[second] += 1

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(f"{kind}: {detail}")

    def merge(self, other: Stats) -> None:
        for name in (
            "messages_sent",
            "messages_received",
            "connected",
            "stations_connected",
            "stations_booted",
            "transactions_started",
            "transactions_stopped",
            "sampled_values_sent",
            "sampled_values_acked",
            "transaction_data_values_sent",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.calls.update(other.calls)
        for action, values in other.latencies.items():
            self.latencies.setdefault(action, []).extend(values)
        self.errors.update(other.errors)
        room = MAX_ERROR_SAMPLES - len(self.error_samples)
        self.error_samples.extend(other.error_samples[: max(0, room)])
        self.server_calls.update(other.server_calls)
        if len(other.sent_per_second) > len(self.sent_per_second):
            missing = len(other.sent_per_second) - len(self.sent_per_second)
            self.sent_per_second.extend([0] * missing)
        for second, count in enumerate(other.sent_per_second):
            self.sent_per_second[second] += count


@dataclass
class LatencyStats:
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class Summary:
    url: str
    stations: int
    duration_s: float  # wall time of the run, first connection to last close
    messages_sent: int
    messages_received: int
    msgs_per_s: float  # frames sent by the stations per second, averaged over the run
    msgs_per_s_peak: float  # the same over the busiest 5 s window
    stations_connected: int
    stations_booted: int
    transactions_started: int
    transactions_stopped: int
    sampled_values_sent: int
    sampled_values_acked: int
    transaction_data_values_sent: int
    calls: dict[str, int]
    latency: dict[str, LatencyStats]  # by action, plus "overall"
    errors: dict[str, int]
    error_samples: list[str]
    server_calls: dict[str, int]
    processes: int = 1

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["error_count"] = self.error_count
        return data

    def format_text(self) -> str:
        lines = [
            f"url:          {self.url}",
            f"stations:     {self.stations} (connected {self.stations_connected}, "
            f"booted {self.stations_booted}; processes {self.processes})",
            f"duration:     {self.duration_s:.1f} s",
            f"messages:     {self.messages_sent} sent, {self.messages_received} received",
            f"msgs/s:       {self.msgs_per_s:.1f} sent (busiest 5 s: {self.msgs_per_s_peak:.1f})",
            f"transactions: {self.transactions_started} started, "
            f"{self.transactions_stopped} stopped",
            f"sampled values: {self.sampled_values_sent} in MeterValues "
            f"({self.sampled_values_acked} acknowledged), "
            f"{self.transaction_data_values_sent} in transactionData",
            "latency (ms):",
            f"  {'action':<22} {'count':>8} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}",
        ]
        for action, lat in self.latency.items():
            lines.append(
                f"  {action:<22} {lat.count:>8} {lat.p50_ms:>8.1f} {lat.p95_ms:>8.1f} "
                f"{lat.p99_ms:>8.1f} {lat.max_ms:>8.1f}"
            )
        if self.server_calls:
            answered = ", ".join(f"{k} {v}" for k, v in sorted(self.server_calls.items()))
            lines.append(f"answered calls from the server: {answered}")
        if self.errors:
            kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items()))
            lines.append(f"errors:       {self.error_count} ({kinds})")
            lines.extend(f"  e.g. {sample}" for sample in self.error_samples)
        else:
            lines.append("errors:       0")
        return "\n".join(lines)


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _latency_stats(values: Iterable[float]) -> LatencyStats:
    ordered = sorted(values)
    return LatencyStats(
        count=len(ordered),
        p50_ms=_percentile(ordered, 50) * 1000,
        p95_ms=_percentile(ordered, 95) * 1000,
        p99_ms=_percentile(ordered, 99) * 1000,
        max_ms=(ordered[-1] * 1000) if ordered else 0.0,
    )


def _peak_rate(per_second: list[int], window: int) -> float:
    """Highest mean rate over `window` consecutive seconds (or the whole timeline if shorter)."""
    if not per_second:
        return 0.0
    if len(per_second) <= window:
        return sum(per_second) / len(per_second)
    return (
        max(sum(per_second[i : i + window]) for i in range(len(per_second) - window + 1)) / window
    )


def build_summary(config: SimulationConfig, stats: Stats, elapsed: float) -> Summary:
    latency = {action: _latency_stats(v) for action, v in sorted(stats.latencies.items())}
    latency["overall"] = _latency_stats(v for values in stats.latencies.values() for v in values)
    return Summary(
        url=config.url,
        stations=config.stations,
        duration_s=elapsed,
        messages_sent=stats.messages_sent,
        messages_received=stats.messages_received,
        msgs_per_s=stats.messages_sent / elapsed if elapsed > 0 else 0.0,
        msgs_per_s_peak=_peak_rate(stats.sent_per_second, 5),
        stations_connected=stats.stations_connected,
        stations_booted=stats.stations_booted,
        transactions_started=stats.transactions_started,
        transactions_stopped=stats.transactions_stopped,
        sampled_values_sent=stats.sampled_values_sent,
        sampled_values_acked=stats.sampled_values_acked,
        transaction_data_values_sent=stats.transaction_data_values_sent,
        calls=dict(sorted(stats.calls.items())),
        latency=latency,
        errors=dict(sorted(stats.errors.items())),
        error_samples=list(stats.error_samples),
        server_calls=dict(sorted(stats.server_calls.items())),
        processes=config.processes,
    )


# --------------------------------------------------------------------------------------------
# one simulated station
# --------------------------------------------------------------------------------------------


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _CountingConnection:
    """The websocket as the `ocpp` ChargePoint sees it, counting frames both ways."""

    def __init__(self, websocket: ClientConnection, stats: Stats) -> None:
        self._websocket = websocket
        self._stats = stats

    async def send(self, message: str) -> None:
        await self._websocket.send(message)
        self._stats.count_sent()

    async def recv(self) -> str | bytes:
        message = await self._websocket.recv()
        self._stats.messages_received += 1
        return message


class SimulatedChargePoint(ChargePoint):
    """A charge point with one connector that charges until the run ends."""

    def __init__(
        self,
        station_id: str,
        connection: _CountingConnection,
        config: SimulationConfig,
        stats: Stats,
    ) -> None:
        super().__init__(station_id, connection, response_timeout=config.response_timeout)
        self.config = config
        self.stats = stats
        rng = random.Random(station_id)
        self.meter_wh = float(rng.randint(0, 500_000))  # lifetime register, Wh
        self.power_w = float(rng.choice(POWERS_W))
        self.rng = rng
        self.transaction_id: int | None = None
        self.meter_start = 0
        self.id_tag = config.id_tag
        self.connector_status = ChargePointStatus.available
        self.last_sample_at = 0.0
        # Set by handlers of server calls, acted on by the session loop.
        self.wake = asyncio.Event()
        self.stop_requested: str | None = None  # stop reason
        self.start_requested: str | None = None  # id tag
        self.triggered: list[str] = []
        self.configuration: dict[str, tuple[str, bool]] = {  # key: (value, read-only)
            "HeartbeatInterval": ("300", False),
            "MeterValueSampleInterval": (str(int(config.meter_interval) or 1), False),
            "MeterValuesSampledData": (
                "Energy.Active.Import.Register,Power.Active.Import",
                False,
            ),
            "ClockAlignedDataInterval": ("0", False),
            "ConnectionTimeOut": ("60", False),
            "AuthorizeRemoteTxRequests": ("false", False),
            "LocalAuthorizeOffline": ("true", False),
            "StopTransactionOnEVSideDisconnect": ("true", False),
            "NumberOfConnectors": ("1", True),
            "SupportedFeatureProfiles": ("Core,RemoteTrigger", True),
        }

    # calls we send ---------------------------------------------------------------------------

    async def timed_call(self, payload: Any) -> Any | None:
        """Send one CALL; record its latency; None (and an error counted) on failure."""
        action = type(payload).__name__
        self.stats.calls[action] += 1
        started = time.perf_counter()
        try:
            response = await self.call(
                payload,
                suppress=False,
                skip_schema_validation=not self.config.validate_messages,
            )
        except TimeoutError:
            self.stats.error(TIMEOUT, f"{self.id} {action}: no response")
            return None
        except OCPPError as exc:
            self.stats.error(CALL_ERROR, f"{self.id} {action}: {type(exc).__name__} {exc!r}")
            return None
        self.stats.latencies.setdefault(action, []).append(time.perf_counter() - started)
        return response

    async def send_status(
        self, status: ChargePointStatus, connector_id: int = CONNECTOR_ID
    ) -> None:
        if connector_id == CONNECTOR_ID:
            self.connector_status = status
        await self.timed_call(
            call.StatusNotification(
                connector_id=connector_id,
                error_code=ChargePointErrorCode.no_error,
                status=status,
                timestamp=_now_iso(),
            )
        )

    def _energy_sample(self, context: str) -> dict[str, str]:
        return {
            "value": str(int(self.meter_wh)),
            "context": context,
            "measurand": "Energy.Active.Import.Register",
            "location": "Outlet",
            "unit": "Wh",
        }

    def _advance_meter(self) -> float:
        """Accumulate energy since the last sample at a slightly varying power; return W."""
        now = time.monotonic()
        power = self.power_w * self.rng.uniform(0.95, 1.02)
        self.meter_wh += power * max(0.0, now - self.last_sample_at) / 3600
        self.last_sample_at = now
        return power

    async def send_meter_values(self) -> None:
        if self.transaction_id is None:
            return
        power = self._advance_meter()
        values = [
            self._energy_sample("Sample.Periodic"),
            {
                "value": str(int(power)),
                "context": "Sample.Periodic",
                "measurand": "Power.Active.Import",
                "location": "Outlet",
                "unit": "W",
            },
        ]
        self.stats.sampled_values_sent += len(values)
        response = await self.timed_call(
            call.MeterValues(
                connector_id=CONNECTOR_ID,
                transaction_id=self.transaction_id,
                meter_value=[{"timestamp": _now_iso(), "sampledValue": values}],
            )
        )
        if response is not None:
            self.stats.sampled_values_acked += len(values)

    async def begin_transaction(self, id_tag: str, *, authorize: bool) -> None:
        if authorize:
            response = await self.timed_call(call.Authorize(id_tag=id_tag))
            if response is None:
                return
            status = response.id_tag_info.get("status")
            if status != AuthorizationStatus.accepted:
                self.stats.error(AUTHORIZE_REJECTED, f"{self.id} Authorize {id_tag}: {status}")
                return
        await self.send_status(ChargePointStatus.preparing)
        meter_start = int(self.meter_wh)
        response = await self.timed_call(
            call.StartTransaction(
                connector_id=CONNECTOR_ID,
                id_tag=id_tag,
                meter_start=meter_start,
                timestamp=_now_iso(),
            )
        )
        if response is None:
            await self.send_status(ChargePointStatus.available)
            return
        status = response.id_tag_info.get("status")
        if status != AuthorizationStatus.accepted:
            # A real charger stops a transaction the central system did not accept.
            self.stats.error(START_REJECTED, f"{self.id} StartTransaction {id_tag}: {status}")
            self.transaction_id = response.transaction_id
            self.meter_start = meter_start
            await self.end_transaction(Reason.de_authorized)
            return
        self.transaction_id = response.transaction_id
        self.meter_start = meter_start
        self.id_tag = id_tag
        self.stats.transactions_started += 1
        self.last_sample_at = time.monotonic()
        await self.send_status(ChargePointStatus.charging)

    async def end_transaction(self, reason: str) -> None:
        if self.transaction_id is None:
            return
        self._advance_meter()
        meter_stop = int(self.meter_wh)
        transaction_data = [
            {
                "timestamp": _now_iso(),
                "sampledValue": [
                    {**self._energy_sample("Transaction.End"), "value": str(meter_stop)},
                    {
                        "value": str(meter_stop - self.meter_start),
                        "context": "Transaction.End",
                        "measurand": "Energy.Active.Import.Interval",
                        "location": "Outlet",
                        "unit": "Wh",
                    },
                ],
            }
        ]
        self.stats.transaction_data_values_sent += 2
        transaction_id, self.transaction_id = self.transaction_id, None
        await self.send_status(ChargePointStatus.finishing)
        response = await self.timed_call(
            call.StopTransaction(
                meter_stop=meter_stop,
                timestamp=_now_iso(),
                transaction_id=transaction_id,
                reason=reason,
                id_tag=self.id_tag if reason == Reason.local else None,
                transaction_data=transaction_data,
            )
        )
        if response is not None:
            self.stats.transactions_stopped += 1
        await self.send_status(ChargePointStatus.available)

    async def send_triggered(self, message: str) -> None:
        if message == MessageTrigger.heartbeat:
            await self.timed_call(call.Heartbeat())
        elif message == MessageTrigger.status_notification:
            await self.send_status(self.connector_status)
        elif message == MessageTrigger.meter_values:
            await self.send_meter_values()
        elif message == MessageTrigger.boot_notification:
            await self.timed_call(
                call.BootNotification(
                    charge_point_model=MODEL, charge_point_vendor=VENDOR, firmware_version=FIRMWARE
                )
            )

    async def run_session(self, end_at: float) -> None:
        """The station's life on an open connection, until loop time `end_at`."""
        loop = asyncio.get_running_loop()
        boot = await self.timed_call(
            call.BootNotification(
                charge_point_model=MODEL,
                charge_point_vendor=VENDOR,
                charge_point_serial_number=f"SN-{self.id}",
                firmware_version=FIRMWARE,
            )
        )
        if boot is None:
            return
        if boot.status != RegistrationStatus.accepted:
            self.stats.error(BOOT_REJECTED, f"{self.id} BootNotification: {boot.status}")
            return
        self.stats.stations_booted += 1
        heartbeat_interval = self.config.heartbeat_interval or boot.interval or 300
        await self.timed_call(call.Heartbeat())  # clock sync, as many chargers do after boot
        await self.send_status(ChargePointStatus.available, connector_id=0)
        await self.send_status(ChargePointStatus.available)
        await self.begin_transaction(self.config.id_tag, authorize=True)

        interval = self.config.meter_interval
        next_meter = loop.time() + interval
        next_heartbeat = loop.time() + heartbeat_interval
        while True:
            self.wake.clear()
            now = loop.time()
            if now >= end_at:
                break
            if self.stop_requested is not None:
                reason, self.stop_requested = self.stop_requested, None
                await self.end_transaction(reason)
            if self.start_requested is not None:
                id_tag, self.start_requested = self.start_requested, None
                if self.transaction_id is None:
                    await self.begin_transaction(id_tag, authorize=False)
                    next_meter = loop.time() + interval
            while self.triggered:
                await self.send_triggered(self.triggered.pop(0))
            if self.transaction_id is not None and loop.time() >= next_meter:
                await self.send_meter_values()
                next_meter += interval
                if next_meter <= loop.time():  # fell behind: skip, don't burst
                    next_meter = loop.time() + interval
            if loop.time() >= next_heartbeat:
                await self.timed_call(call.Heartbeat())
                next_heartbeat = loop.time() + heartbeat_interval
            wake_at = min(end_at, next_heartbeat)
            if self.transaction_id is not None:
                wake_at = min(wake_at, next_meter)
            delay = wake_at - loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self.wake.wait()
        await self.end_transaction(Reason.local)

    # calls the central system sends us ---------------------------------------------------------

    def _request(self, action: str) -> None:
        self.stats.server_calls[action] += 1

    @on(Action.remote_stop_transaction)
    def on_remote_stop_transaction(self, transaction_id: int, **kwargs: Any):
        self._request("RemoteStopTransaction")
        if self.transaction_id is not None and transaction_id == self.transaction_id:
            return call_result.RemoteStopTransaction(status=RemoteStartStopStatus.accepted)
        return call_result.RemoteStopTransaction(status=RemoteStartStopStatus.rejected)

    @after(Action.remote_stop_transaction)
    def after_remote_stop_transaction(self, transaction_id: int, **kwargs: Any) -> None:
        if self.transaction_id is not None and transaction_id == self.transaction_id:
            self.stop_requested = Reason.remote
            self.wake.set()

    @on(Action.remote_start_transaction)
    def on_remote_start_transaction(self, id_tag: str, **kwargs: Any):
        self._request("RemoteStartTransaction")
        connector_id = kwargs.get("connector_id", CONNECTOR_ID)
        if self.transaction_id is None and connector_id == CONNECTOR_ID:
            self.start_requested = id_tag
            self.wake.set()
            return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.accepted)
        return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.rejected)

    @on(Action.reset)
    def on_reset(self, type: str, **kwargs: Any):
        self._request("Reset")
        if self.transaction_id is not None:
            self.stop_requested = Reason.hard_reset if type == ResetType.hard else Reason.soft_reset
            self.wake.set()
        return call_result.Reset(status=ResetStatus.accepted)

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str, **kwargs: Any):
        self._request("ChangeAvailability")
        if connector_id not in (0, CONNECTOR_ID):
            return call_result.ChangeAvailability(status=AvailabilityStatus.rejected)
        if type == AvailabilityType.inoperative and self.transaction_id is not None:
            return call_result.ChangeAvailability(status=AvailabilityStatus.scheduled)
        return call_result.ChangeAvailability(status=AvailabilityStatus.accepted)

    @on(Action.unlock_connector)
    def on_unlock_connector(self, connector_id: int, **kwargs: Any):
        self._request("UnlockConnector")
        if connector_id != CONNECTOR_ID:
            return call_result.UnlockConnector(status=UnlockStatus.not_supported)
        if self.transaction_id is not None:
            self.stop_requested = Reason.unlock_command
            self.wake.set()
        return call_result.UnlockConnector(status=UnlockStatus.unlocked)

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None, **kwargs: Any):
        self._request("GetConfiguration")
        wanted = key or list(self.configuration)
        known = [
            {"key": k, "readonly": self.configuration[k][1], "value": self.configuration[k][0]}
            for k in wanted
            if k in self.configuration
        ]
        unknown = [k for k in wanted if k not in self.configuration]
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str, **kwargs: Any):
        self._request("ChangeConfiguration")
        if key not in self.configuration:
            return call_result.ChangeConfiguration(status=ConfigurationStatus.not_supported)
        if self.configuration[key][1]:
            return call_result.ChangeConfiguration(status=ConfigurationStatus.rejected)
        self.configuration[key] = (value, False)
        return call_result.ChangeConfiguration(status=ConfigurationStatus.accepted)

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, **kwargs: Any):
        self._request("TriggerMessage")
        supported = (
            MessageTrigger.boot_notification,
            MessageTrigger.heartbeat,
            MessageTrigger.meter_values,
            MessageTrigger.status_notification,
        )
        if requested_message not in supported:
            return call_result.TriggerMessage(status=TriggerMessageStatus.not_implemented)
        return call_result.TriggerMessage(status=TriggerMessageStatus.accepted)

    @after(Action.trigger_message)
    def after_trigger_message(self, requested_message: str, **kwargs: Any) -> None:
        # The requested message goes out after the TriggerMessage answer, as the spec asks.
        if requested_message in (
            MessageTrigger.boot_notification,
            MessageTrigger.heartbeat,
            MessageTrigger.meter_values,
            MessageTrigger.status_notification,
        ):
            self.triggered.append(requested_message)
            self.wake.set()

    @on(Action.clear_cache)
    def on_clear_cache(self, **kwargs: Any):
        self._request("ClearCache")
        return call_result.ClearCache(status=ClearCacheStatus.accepted)

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **kwargs: Any):
        self._request("DataTransfer")
        if vendor_id != VENDOR:
            return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)
        return call_result.DataTransfer(status=DataTransferStatus.accepted, data=kwargs.get("data"))


async def _run_station(
    config: SimulationConfig, index: int, start_at: float, end_at: float, stats: Stats
) -> None:
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, start_at - loop.time()))
    station_id = config.station_id(index)
    url = config.url.rstrip("/") + "/" + station_id
    headers = None
    if config.password is not None:
        token = base64.b64encode(f"{station_id}:{config.password}".encode()).decode()
        headers = {"Authorization": f"Basic {token}"}
    try:
        websocket = await connect(
            url,
            subprotocols=["ocpp1.6"],
            additional_headers=headers,
            compression=None,
            open_timeout=config.connect_timeout,
        )
    except Exception as exc:  # refused, HTTP 401/404, timeout, bad handshake...
        stats.error(CONNECT_FAILED, f"{station_id}: {type(exc).__name__}: {exc}")
        return
    stats.stations_connected += 1
    stats.connected += 1
    charge_point = SimulatedChargePoint(
        station_id, _CountingConnection(websocket, stats), config, stats
    )
    reader = asyncio.create_task(charge_point.start())
    session = asyncio.create_task(charge_point.run_session(end_at))
    try:
        await asyncio.wait({reader, session}, return_when=asyncio.FIRST_COMPLETED)
        if session.done():
            exc = session.exception()
            if isinstance(exc, ConnectionClosed):
                stats.error(DISCONNECTED, f"{station_id}: {exc}")
            elif exc is not None:
                stats.error(type(exc).__name__, f"{station_id}: {exc!r}")
        else:  # the connection closed under a running session
            session.cancel()
            exc = reader.exception()
            stats.error(DISCONNECTED, f"{station_id}: {exc or 'reader ended'}")
    finally:
        for task in (reader, session):
            task.cancel()
        await asyncio.gather(reader, session, return_exceptions=True)
        with contextlib.suppress(Exception):
            await websocket.close()
        stats.connected -= 1


def _progress_line(elapsed: float, stations: int, snap: dict[str, int], rate: float) -> str:
    return (
        f"[{elapsed:6.1f}s] connected {snap['connected']}/{stations}  "
        f"messages {snap['messages_sent']} sent / {snap['messages_received']} recv  "
        f"{rate:7.1f} msgs/s  errors {snap['errors']}"
    )


def _snapshot(stats: Stats) -> dict[str, int]:
    return {
        "connected": stats.connected,
        "messages_sent": stats.messages_sent,
        "messages_received": stats.messages_received,
        "errors": sum(stats.errors.values()),
    }


async def _run_local(
    config: SimulationConfig,
    indices: Iterable[int],
    start_wall: float | None = None,
    on_progress: Callable[[dict[str, int]], None] | None = None,
) -> tuple[Stats, float]:
    """Run the given stations in this process and event loop; returns (stats, elapsed)."""
    loop = asyncio.get_running_loop()
    wait = 0.0 if start_wall is None else max(0.0, start_wall - time.time())
    stats = Stats(t0=time.time() + wait)
    start = loop.time() + wait
    # Stations connect spread over the ramp and leave spread the same way, each one staying
    # duration - ramp seconds, so neither end of the run is a thundering herd.
    ramp = min(config.effective_ramp(), config.duration / 2)
    life = config.duration - ramp
    total = max(1, config.stations)
    tasks = []
    for i in indices:
        start_at = start + ramp * i / total
        tasks.append(asyncio.create_task(_run_station(config, i, start_at, start_at + life, stats)))

    async def report() -> None:
        await asyncio.sleep(wait)
        last_sent, last_at = 0, loop.time()
        while True:
            await asyncio.sleep(config.progress_interval)
            snap = _snapshot(stats)
            if on_progress is not None:
                on_progress(snap)
            else:
                now = loop.time()
                rate = (snap["messages_sent"] - last_sent) / max(1e-9, now - last_at)
                last_sent, last_at = snap["messages_sent"], now
                print(
                    _progress_line(now - start, config.stations, snap, rate),
                    file=sys.stderr,
                    flush=True,
                )

    reporter = asyncio.create_task(report()) if config.progress_interval > 0 else None
    try:
        await asyncio.gather(*tasks)
    finally:
        if reporter is not None:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
    elapsed = loop.time() - start
    return stats, elapsed


# --------------------------------------------------------------------------------------------
# several worker processes
# --------------------------------------------------------------------------------------------


def _worker_main(
    config: SimulationConfig, worker: int, start_wall: float, results: multiprocessing.Queue
) -> None:
    """Entry point of one worker process: stations worker, worker+K, worker+2K, ..."""
    logging.getLogger("ocpp").setLevel(logging.CRITICAL)
    indices = range(worker, config.stations, config.processes)

    def on_progress(snap: dict[str, int]) -> None:
        results.put(("progress", worker, snap))

    try:
        stats, elapsed = asyncio.run(_run_local(config, indices, start_wall, on_progress))
    except BaseException as exc:
        results.put(("failed", worker, f"{type(exc).__name__}: {exc}"))
        raise
    results.put(("done", worker, (stats, elapsed)))


def _run_in_processes(config: SimulationConfig) -> tuple[Stats, float]:
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = context.Queue()
    start_wall = time.time() + 2.0  # time for the workers to import and connect in step
    workers = [
        context.Process(target=_worker_main, args=(config, k, start_wall, results), daemon=True)
        for k in range(config.processes)
    ]
    for process in workers:
        process.start()
    merged = Stats()
    elapsed = 0.0
    snaps: dict[int, dict[str, int]] = {}
    pending = set(range(config.processes))
    last_print, last_sent = time.time(), 0
    while pending:
        try:
            kind, worker, payload = results.get(timeout=1.0)
        except queue.Empty:
            for k in list(pending):
                if not workers[k].is_alive():
                    pending.discard(k)
                    merged.error(WORKER_FAILED, f"worker {k} exited with {workers[k].exitcode}")
            continue
        if kind == "progress":
            snaps[worker] = payload
            if len(snaps) == len(pending) or time.time() - last_print >= config.progress_interval:
                total = {key: sum(s[key] for s in snaps.values()) for key in payload}
                now = time.time()
                rate = (total["messages_sent"] - last_sent) / max(1e-9, now - last_print)
                last_print, last_sent = now, total["messages_sent"]
                print(
                    _progress_line(now - start_wall, config.stations, total, rate),
                    file=sys.stderr,
                    flush=True,
                )
                snaps.clear()
        elif kind == "done":
            stats, worker_elapsed = payload
            merged.merge(stats)
            elapsed = max(elapsed, worker_elapsed)
            pending.discard(worker)
        else:
            merged.error(WORKER_FAILED, f"worker {worker}: {payload}")
            pending.discard(worker)
    for process in workers:
        process.join(timeout=10)
    return merged, elapsed


async def run_simulation(config: SimulationConfig) -> Summary:
    """Run the whole simulation and return its summary (progress lines go to stderr)."""
    if config.stations < 1:
        raise ValueError("stations must be at least 1")
    if config.processes > 1:
        processes = min(config.processes, config.stations)
        config = replace(config, processes=processes)
        stats, elapsed = await asyncio.to_thread(_run_in_processes, config)
    else:
        config = replace(config, processes=1)
        stats, elapsed = await _run_local(config, range(config.stations))
    return build_summary(config, stats, elapsed)


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
    parser.add_argument("--duration", type=_positive_float, default=60.0, help="seconds")
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
    return SimulationConfig(
        url=args.url,
        stations=args.stations,
        duration=args.duration,
        meter_interval=args.meter_interval,
        password=args.password,
        id_prefix=args.id_prefix,
        id_tag=args.id_tag,
        ramp=args.ramp,
        processes=args.processes,
        heartbeat_interval=args.heartbeat_interval,
        response_timeout=args.response_timeout,
        progress_interval=args.progress_interval,
        validate_messages=not args.no_validation,
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
        help="run simulated OCPP 1.6J charge points against a central system",
        description="Simulated OCPP 1.6J charge points (demos and load tests).",
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
