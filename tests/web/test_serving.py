"""`csms serve`'s loop keeps the garbage collector quiet (web/serving.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from web.serving import GC_THRESHOLDS, quiet_collector


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_start_up_objects_are_frozen_and_young_collections_are_rarer() -> None:
    start_up = [object(), [1, 2], {"a": []}]
    quiet_collector()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == GC_THRESHOLDS
    assert GC_THRESHOLDS[0] > 700
    gc.collect()
    assert all(not gc.is_finalized(item) for item in start_up)  # frozen, not collected
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1  # a full collection still finds new cyclic garbage
