"""Prometheus metrics, one registry per app so several apps can live in one process (tests).

The per-frame metrics (messages, handler time, errors) are counted in plain Python numbers
and become Prometheus samples only when `/metrics` is scraped. Hand-rolled for measured speed:
`prometheus_client`'s `Counter.inc` and `Histogram.observe` take a lock and several calls
each, ~2.5% of a busy hub's CPU (docs/performance.md, round four). Frames are counted and
`/metrics` is rendered on the event loop's thread, so the counts need no lock. The exposition
is prometheus_client's own for a Counter and a Histogram: the same names, types, labels,
buckets, `_created` samples and order.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Sequence

import prometheus_client.metrics
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import INF, floatToGoString

Labels = tuple[str, ...]


def _with_created() -> bool:
    """Whether Counters and Histograms export `_created` (PROMETHEUS_DISABLE_CREATED_SERIES,
    `disable_created_metrics()`); prometheus_client keeps this in a module global."""
    return getattr(prometheus_client.metrics, "_use_created", True)


class _PlainMetric:
    """What a plain counter and a plain histogram share: name, help, label names, when each
    label set's series began (`_created`), and being a collector of `kind` on a registry."""

    __slots__ = ("_created", "documentation", "labelnames", "name")
    kind = ""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._created: dict[Labels, float] = {}

    def describe(self) -> list[Metric]:
        return [Metric(self.name, self.documentation, self.kind)]

    def _labels(self, labels: Labels) -> dict[str, str]:
        return dict(zip(self.labelnames, labels, strict=True))


class PlainCounter(_PlainMetric):
    """A labelled counter in plain numbers, a collector for a registry."""

    __slots__ = ("_values",)
    kind = "counter"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 registry: CollectorRegistry) -> None:
        super().__init__(name, documentation, labelnames)
        self._values: dict[Labels, float] = {}
        registry.register(self)

    def inc(self, *labels: str) -> None:
        """Add one to the count of this label set (values in `labelnames` order)."""
        values = self._values
        if labels in values:
            values[labels] += 1
        else:
            values[labels] = 1.0
            self._created[labels] = time.time()

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def collect(self) -> list[Metric]:
        metric = Metric(self.name, self.documentation, self.kind)
        created = _with_created()
        for labels, value in list(self._values.items()):
            names = self._labels(labels)
            metric.add_sample(self.name + "_total", names, value)
            if created:
                metric.add_sample(self.name + "_created", names, self._created[labels])
        return [metric]


class PlainHistogram(_PlainMetric):
    """A labelled histogram in plain numbers, a collector for a registry. Per label set: the
    count of each bucket (not cumulative, as prometheus_client keeps them), then the sum."""

    __slots__ = ("_series", "bounds")
    kind = "histogram"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str],
                 registry: CollectorRegistry, buckets: Sequence[float]) -> None:
        super().__init__(name, documentation, labelnames)
        bounds = [float(b) for b in buckets]
        if bounds != sorted(bounds):
            raise ValueError("buckets not in sorted order")
        self.bounds = tuple(bounds) if bounds[-1] == INF else (*bounds, INF)
        self._series: dict[Labels, list[float]] = {}
        registry.register(self)

    def observe(self, amount: float, *labels: str) -> None:
        """Count `amount` in the first bucket whose upper bound is >= it, and in the sum."""
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = [0.0] * (len(self.bounds) + 1)
            self._created[labels] = time.time()
        series[bisect_left(self.bounds, amount)] += 1
        series[-1] += amount

    def collect(self) -> list[Metric]:
        metric = Metric(self.name, self.documentation, self.kind)
        created = _with_created()
        for labels, series in list(self._series.items()):
            names = self._labels(labels)
            total = 0.0
            for bound, count in zip(self.bounds, series[:-1], strict=True):
                total += count
                metric.add_sample(self.name + "_bucket", {**names, "le": floatToGoString(bound)},
                                  total)
            metric.add_sample(self.name + "_count", names, total)
            if self.bounds[0] >= 0:
                metric.add_sample(self.name + "_sum", names, series[-1])
            if created:
                metric.add_sample(self.name + "_created", names, self._created[labels])
        return [metric]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connected_stations = Gauge(
            "csms_connected_stations", "Stations with an open OCPP connection",
            registry=self.registry)
        self.messages = PlainCounter(
            "csms_ocpp_messages", "OCPP messages by action and direction",
            ["action", "direction"], self.registry)
        self.handler_seconds = PlainHistogram(
            "csms_ocpp_handler_seconds", "Time to answer a station's CALL",
            ["action"], self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
        self.errors = PlainCounter(
            "csms_ocpp_errors", "CALLERRORs sent and handler failures by error code",
            ["code"], self.registry)
        self.connections = Counter(
            "csms_ocpp_connections", "Websocket upgrades by outcome", ["outcome"],
            registry=self.registry)
