"""Throughput of a consumer-group contender, timed from outside by its committed offsets.

``spawned`` → ``ready`` (every partition owned by the expected number of members) → ``done``
(committed offsets at the end of the topic). Start-up is ``ready - spawned``; the rate is the
messages still uncommitted at ``ready`` over ``done - ready``, so a member that began consuming
before its peers joined is not credited with a head start. Committed offsets trail the work by
at most one commit interval (250 ms for every contender that commits on an interval).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from benchmarks import procs
from benchmarks.kafka_tools import GroupWatcher, reached

POLL = 0.025


class ContenderFailed(RuntimeError):
    """A contender exited early or did not finish within its time limit."""


@dataclass
class Throughput:
    name: str
    messages: int
    startup_s: float
    work_s: float
    total_s: float
    events_per_s: float  # over the work, after start-up
    events_per_s_total: float  # over the whole run, start-up included
    processes: int = 1
    peak_rss_mb: list[float] = field(default_factory=list)
    cpu_s: float = 0.0  # all processes, start-up included
    events_per_cpu_s: float = 0.0  # messages / cpu_s: robust to other load on the machine
    loadavg: list[float] = field(default_factory=list)  # 1-minute load at start and at end

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure_group(
    name: str,
    argvs: Sequence[Sequence[str]],
    *,
    bootstrap: str,
    group: str,
    topic: str,
    end: dict[int, int],
    timeout: float,
) -> Throughput:
    """Start one process per argv (all in ``group``), wait until done, stop them."""
    watcher = GroupWatcher(bootstrap, group, topic)
    load_before = os.getloadavg()[0]
    spawned = time.monotonic()
    children = [procs.spawn(argv, f"{name}-{i}") for i, argv in enumerate(argvs)]
    try:
        ready, backlog, done = _watch(watcher, children, end, spawned + timeout)
        rss = [procs.peak_rss_mb(child.pid) or 0.0 for child in children]
        cpu = sum(procs.cpu_seconds(child.pid) or 0.0 for child in children)
    finally:
        for child in children:
            procs.stop(child)
    total = sum(end.values())
    work = max(done - ready, 1e-3)
    return Throughput(
        name=name,
        messages=total,
        startup_s=round(ready - spawned, 3),
        work_s=round(work, 3),
        total_s=round(done - spawned, 3),
        events_per_s=round(backlog / work, 1),
        events_per_s_total=round(total / (done - spawned), 1),
        processes=len(children),
        peak_rss_mb=[round(r, 1) for r in rss],
        cpu_s=round(cpu, 2),
        events_per_cpu_s=round(total / cpu, 1) if cpu else 0.0,
        loadavg=[round(load_before, 2), round(os.getloadavg()[0], 2)],
    )


def _watch(
    watcher: GroupWatcher,
    children: Sequence[subprocess.Popen[bytes]],
    end: dict[int, int],
    deadline: float,
) -> tuple[float, int, float]:
    """(ready time, messages uncommitted at ready, done time)."""
    ready: float | None = None
    backlog = sum(end.values())
    partitions = len(end)
    while time.monotonic() < deadline:
        for child in children:
            if child.poll() is not None:
                raise ContenderFailed(f"exited early with {child.returncode} (see its log)")
        if ready is None:
            members, owned = watcher.assignment()
            if members == len(children) and owned == partitions:
                ready = time.monotonic()
                committed = watcher.committed()
                backlog = sum(end[p] - max(committed.get(p, 0), 0) for p in end)
        committed = watcher.committed()
        if reached(committed, end):
            if ready is None:
                raise ContenderFailed("finished before every member was assigned: use more events")
            return ready, backlog, time.monotonic()
        time.sleep(POLL)
    raise ContenderFailed("did not reach the end of the topic in time")
