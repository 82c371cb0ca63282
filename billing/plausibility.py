"""Plausibility: energy that implies more than a connector's maximum power over the time it
took is not believed. Anyone who can take over an unauthenticated station id can report any
meter value; such a figure is never captured blindly (settlement parks the session in REVIEW
for an operator) and never drives the budget guard. Every such event is logged and counted."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from prometheus_client import CollectorRegistry, Counter

log = logging.getLogger(__name__)

_US_PER_HOUR_PER_KW_TO_WH = Decimal(3_600_000)  # kW x microseconds / this = Wh


class Plausibility:
    def __init__(self, max_power_kw: Decimal, registry: CollectorRegistry | None = None) -> None:
        self.max_power_kw = max_power_kw
        self.implausible = Counter(
            "csms_billing_implausible_energy",
            "Energy readings above the connector's maximum power, by where they were seen",
            ["stage"], registry=registry)

    def max_wh(self, started: datetime, until: datetime) -> Decimal:
        """The most energy a connector may deliver between `started` and `until`."""
        elapsed_us = max((until - started) // timedelta(microseconds=1), 0)
        return self.max_power_kw * elapsed_us / _US_PER_HOUR_PER_KW_TO_WH

    def doubt(self, session_id: str, stage: str, energy_wh: int, started: datetime | None,
              until: datetime | None) -> str | None:
        """Why `energy_wh` between `started` and `until` cannot be believed (logged and
        counted), or None when it can, or when the times cannot judge it: unknown, or a
        station clock that shows no time passing (stations with a clock that was never set
        report every event at one instant; their energy is judged by no clock at all)."""
        if energy_wh <= 0 or started is None or until is None or until <= started:
            return None
        limit = self.max_wh(started, until)
        if energy_wh <= limit:
            return None
        seconds = (until - started).total_seconds()
        reason = (f"implausible energy: {energy_wh} Wh in {seconds:.0f} s is more than "
                  f"{self.max_power_kw} kW could deliver ({int(limit)} Wh)")
        log.warning("session %s (%s): %s", session_id, stage, reason)
        self.implausible.labels(stage=stage).inc()
        return reason
