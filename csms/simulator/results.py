"""What a simulation run is asked to do (`SimulationConfig`) and what it measured (`Stats`,
`Summary`)."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

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
OCPP_CHOICES = ("1.6", "2.0.1", "mixed")


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
    ids: tuple[str, ...] = ()  # fixed station ids; empty: id_prefix + a number
    # Idle: boot, report Available and wait for RemoteStart, like a charger nobody plugged in
    # yet; reconnect when the connection drops. Not idle: charge at once (load tests).
    idle: bool = False
    power_kw: float | None = None  # charging power; None: one of POWERS_W picked per station
    battery_kwh: float | None = None  # energy the car takes before it is full; None: unlimited
    verbose: bool = False  # print what each station does (idle mode's default)
    # The OCPP version the stations speak: "1.6", "2.0.1", or "mixed" (a fleet alternating
    # 1.6 and 2.0.1: the first station 1.6, the second 2.0.1, ...).
    ocpp: str = "1.6"

    def __post_init__(self) -> None:
        if self.ocpp not in OCPP_CHOICES:
            raise ValueError(f"ocpp must be one of {', '.join(OCPP_CHOICES)}, not {self.ocpp!r}")
        if self.ids:
            self.stations = len(self.ids)

    def effective_ramp(self) -> float:
        if self.ramp is not None:
            return max(0.0, self.ramp)
        return min(10.0, self.stations / 100)

    def ocpp_version(self, index: int) -> str:
        """The version station `index` speaks."""
        if self.ocpp == "mixed":
            return "1.6" if index % 2 == 0 else "2.0.1"
        return self.ocpp

    def station_id(self, index: int) -> str:
        if self.ids:
            return self.ids[index]
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
    ocpp: str = "1.6"  # 1.6, 2.0.1 or mixed, as asked with --ocpp

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
            f"stations:     {self.stations} on OCPP {self.ocpp} (connected "
            f"{self.stations_connected}, booted {self.stations_booted}; "
            f"processes {self.processes})",
            f"duration:     {self.duration_s:.1f} s",
            f"messages:     {self.messages_sent} sent, {self.messages_received} received",
            f"msgs/s:       {self.msgs_per_s:.1f} sent (busiest 5 s: {self.msgs_per_s_peak:.1f})",
            f"transactions: {self.transactions_started} started, "
            f"{self.transactions_stopped} stopped",
            f"sampled values: {self.sampled_values_sent} while charging "
            f"({self.sampled_values_acked} acknowledged), "
            f"{self.transaction_data_values_sent} with the stop",
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
        ocpp=config.ocpp,
    )

