"""The per-frame metrics are counted in plain numbers (csms.metrics); what /metrics shows must be
what prometheus_client's own Counter and Histogram would show for the same counts."""

from __future__ import annotations

import re
from collections.abc import Iterator

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import disable_created_metrics, enable_created_metrics

from csms.metrics import Metrics, PlainHistogram
from tests.conftest import make_settings
from tests.support.raw import raw_exchange


def reference(metrics: Metrics) -> tuple[CollectorRegistry, Counter, Histogram, Counter]:
    """prometheus_client's own metrics with our names, help, labels and buckets, registered
    in the same order as Metrics registers its own."""
    registry = CollectorRegistry()
    Gauge("csms_connected_stations", "Stations with an open OCPP connection",
          registry=registry)
    messages = Counter(metrics.messages.name, metrics.messages.documentation,
                       metrics.messages.labelnames, registry=registry)
    seconds = Histogram(metrics.handler_seconds.name, metrics.handler_seconds.documentation,
                        metrics.handler_seconds.labelnames, registry=registry,
                        buckets=metrics.handler_seconds.bounds)
    errors = Counter(metrics.errors.name, metrics.errors.documentation,
                     metrics.errors.labelnames, registry=registry)
    Counter("csms_ocpp_connections", "Websocket upgrades by outcome", ["outcome"],
            registry=registry)
    return registry, messages, seconds, errors


def exposition(registry: CollectorRegistry) -> str:
    """The text format with the _created times (when each series began) blanked."""
    return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 T", generate_latest(registry).decode())


@pytest.fixture(params=["created", "no created"])
def created_series(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.param == "no created":
        disable_created_metrics()
    try:
        yield
    finally:
        enable_created_metrics()


@pytest.mark.usefixtures("created_series")
def test_exposition_is_prometheus_clients() -> None:
    metrics = Metrics()
    registry, messages, seconds, errors = reference(metrics)
    assert exposition(metrics.registry) == exposition(registry)  # no series yet
    bounds = [b for b in metrics.handler_seconds.bounds if b != float("inf")]
    amounts = [0.0, 0.0001, *bounds, *(b * 1.001 for b in bounds), 3.0, 1e9]
    for n, amount in enumerate(amounts):
        action = ("BootNotification", "MeterValues", "Heartbeat")[n % 3]
        for direction in ("in", "out") if n % 2 else ("in",):
            metrics.messages.inc(action, direction)
            messages.labels(action, direction).inc()
        metrics.handler_seconds.observe(amount, action)
        seconds.labels(action).observe(amount)
        if n % 4 == 0:
            metrics.errors.inc("FormationViolation" if n % 8 else "NotImplemented")
            errors.labels("FormationViolation" if n % 8 else "NotImplemented").inc()
    ours = exposition(metrics.registry)
    assert ours == exposition(registry)
    assert 'csms_ocpp_handler_seconds_bucket{action="MeterValues",le="+Inf"}' in ours
    assert metrics.messages.value("MeterValues", "in") == \
        messages.labels("MeterValues", "in")._value.get()


def test_buckets_must_be_sorted() -> None:
    with pytest.raises(ValueError, match="sorted"):
        PlainHistogram("h", "h", ["a"], CollectorRegistry(), buckets=(1, 0.5))


async def test_metrics_count_frames_errors_and_answers(tmp_path, start_server) -> None:
    """Through a real station and a real scrape."""
    server = await start_server(make_settings(tmp_path))
    await raw_exchange(f"ws://{server.host}:{server.port}/ocpp", "CP-M", [
        '[2,"b","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]',
        '[2,"h","Heartbeat",{}]', '[2,"x","Heartbeat",{"surplus":1}]', "not json",
        '[2,"u","NoSuchAction",{}]'])
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://{server.host}:{server.port}/metrics") as resp:
            text = await resp.text()
    for line in ['csms_ocpp_messages_total{action="BootNotification",direction="in"} 1.0',
                 'csms_ocpp_messages_total{action="Heartbeat",direction="in"} 2.0',
                 'csms_ocpp_messages_total{action="invalid",direction="in"} 1.0',
                 'csms_ocpp_messages_total{action="unknown",direction="in"} 1.0',
                 'csms_ocpp_errors_total{code="FormationViolation"} 2.0',  # surplus, not json
                 'csms_ocpp_errors_total{code="NotImplemented"} 1.0',
                 'csms_ocpp_handler_seconds_count{action="Heartbeat"} 2.0',
                 'csms_ocpp_handler_seconds_bucket{action="Heartbeat",le="+Inf"} 2.0',
                 "# TYPE csms_ocpp_handler_seconds histogram",
                 "# TYPE csms_ocpp_messages_total counter"]:
        assert line in text, line
    assert re.search(r'csms_ocpp_errors_created\{code="NotImplemented"\} \d', text)
