"""Plausibility: energy that implies more than a connector's maximum power over the time it
took is not believed. Anyone who can take over an unauthenticated station id can report any
meter value; such a figure is never captured blindly (settlement parks the session in REVIEW
for an operator) and never drives the budget guard. Every such event is logged and counted.

Time is judged on two clocks: the station's own timestamps, and our receive times of the
transaction's first and last frames (`Session.seen_started_at` / `seen_stopped_at`, stamped by
billing when the core hands it the start and the stop) plus `billing.receive_time_slack`
seconds for frames a station queued or the network delayed. The tighter window wins, so a
station whose clock runs fast (or is forged) cannot stretch the time it took. A station whose
clock shows no time passing (never set) is judged by our window alone."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from prometheus_client import CollectorRegistry, Counter

log = logging.getLogger(__name__)

_US_PER_HOUR_PER_KW_TO_WH = Decimal(3_600_000)  # kW x microseconds / this = Wh


def elapsed(started: datetime | None, until: datetime | None) -> timedelta | None:
    """`until - started` when both are known and time passed, else None."""
    if started is None or until is None or until <= started:
        return None
    return until - started


class Plausibility:
    def __init__(self, max_power_kw: Decimal, registry: CollectorRegistry | None = None,
                 receive_slack: timedelta = timedelta(minutes=10)) -> None:
        self.max_power_kw = max_power_kw
        self.receive_slack = receive_slack
        self.implausible = Counter(
            "csms_billing_implausible_energy",
            "Energy readings above the connector's maximum power, by where they were seen",
            ["stage"], registry=registry)

    def max_wh(self, window: timedelta) -> Decimal:
        """The most energy a connector may deliver in `window`."""
        elapsed_us = max(window // timedelta(microseconds=1), 0)
        return self.max_power_kw * elapsed_us / _US_PER_HOUR_PER_KW_TO_WH

    def window(self, started: datetime | None, until: datetime | None,
               seen_started: datetime | None = None, seen_until: datetime | None = None,
               ) -> timedelta | None:
        """The time energy is judged by: the station's window (`started` to `until`, its
        clock) or our receive window plus the slack, whichever is shorter; None when neither
        is known."""
        ours = elapsed(seen_started, seen_until)
        if ours is None and seen_started is not None and seen_until == seen_started:
            ours = timedelta(0)
        windows = [w for w in (elapsed(started, until),
                               None if ours is None else ours + self.receive_slack)
                   if w is not None]
        return min(windows) if windows else None

    def doubt(self, session_id: str, stage: str, energy_wh: int, window: timedelta | None,
              ) -> str | None:
        """Why `energy_wh` delivered in `window` (see `window`) cannot be believed (logged
        and counted), or None when it can, or when no window judges it (no clock known)."""
        if energy_wh <= 0 or window is None:
            return None
        limit = self.max_wh(window)
        if energy_wh <= limit:
            return None
        seconds = window.total_seconds()
        reason = (f"implausible energy: {energy_wh} Wh in {seconds:.0f} s is more than "
                  f"{self.max_power_kw} kW could deliver ({int(limit)} Wh)")
        log.warning("session %s (%s): %s", session_id, stage, reason)
        self.implausible.labels(stage=stage).inc()
        return reason
