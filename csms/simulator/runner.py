"""Running many simulated stations: ramp-up, progress lines, and worker processes beyond what
one process's client can drive."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import queue
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from csms.simulator.connect import run_station
from csms.simulator.results import WORKER_FAILED, SimulationConfig, Stats, Summary, build_summary


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
        tasks.append(asyncio.create_task(run_station(config, i, start_at, start_at + life, stats)))

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

