"""Prometheus metrics, one registry per app so several apps can live in one process (tests)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connected_stations = Gauge(
            "csms_connected_stations", "Stations with an open OCPP connection",
            registry=self.registry)
        self.messages = Counter(
            "csms_ocpp_messages", "OCPP messages by action and direction",
            ["action", "direction"], registry=self.registry)
        self.handler_seconds = Histogram(
            "csms_ocpp_handler_seconds", "Time to answer a station's CALL",
            ["action"], registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.errors = Counter(
            "csms_ocpp_errors", "CALLERRORs sent and handler failures by error code",
            ["code"], registry=self.registry)
        self.connections = Counter(
            "csms_ocpp_connections", "Websocket upgrades by outcome", ["outcome"],
            registry=self.registry)
