"""(i) Two processes against one, from the same backlog, with every member already assigned.

Producing first and then starting the group (as (b) does) credits nothing fair to a second
member: the first one joins alone and eats into both partitions while the second is still being
assigned, so the backlog left when both own a partition is uneven and the pair finishes at the
pace of the busier one (measured: 0.8 x one process). Here each configuration joins an empty
topic first; once every member owns its partitions, the members are stopped (``SIGSTOP``: a few
seconds, well inside the session timeout), the data set is produced, and they are continued
together. The rate is messages over the time from ``SIGCONT`` until the group's committed
offsets reach the end (polled every 25 ms; members commit every 250 ms).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from typing import Any

from benchmarks import procs
from benchmarks.data import Dataset
from benchmarks.kafka_tools import GroupWatcher, create_topics, end_offsets, reached, wait_for
from benchmarks.pressure import CpuAccount, CpuPressure
from devtools.traffic.stream import produce

POLL = 0.025
JOIN_TIMEOUT = 90.0


def measure_scaling(
    name: str,
    argvs: Sequence[Sequence[str]],
    *,
    bootstrap: str,
    group: str,
    topic: str,
    partitions: int,
    dataset: Dataset,
    timeout: float,
    broker_pid: int | None = None,
) -> dict[str, Any]:
    """Start one process per argv on an empty ``topic``, then time the whole data set."""
    create_topics(bootstrap, [topic], partitions)
    watcher = GroupWatcher(bootstrap, group, topic)
    children = [procs.spawn(argv, f"{name}-{i}") for i, argv in enumerate(argvs)]
    try:
        wanted = (len(children), partitions)
        if not wait_for(lambda: watcher.assignment() == wanted, JOIN_TIMEOUT):
            raise RuntimeError(f"{name}: the members were not all assigned in time")
        for child in children:
            os.kill(child.pid, signal.SIGSTOP)
        try:
            produce(bootstrap, topic, dataset.messages())
            end = end_offsets(bootstrap, topic, partitions)
        finally:
            pids = {f"member{i}": child.pid for i, child in enumerate(children)}
            account = CpuAccount({**pids, "broker": broker_pid, "runner": os.getpid()}).start()
            pressure = CpuPressure().start()
            began = time.time()
            for child in children:
                os.kill(child.pid, signal.SIGCONT)
        started = time.monotonic()
        deadline = started + timeout
        while not reached(watcher.committed(), end):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: did not reach the end of the topic in time")
            for child in children:
                if child.poll() is not None:
                    raise RuntimeError(f"{name}: a member exited with {child.returncode}")
            time.sleep(POLL)
        work = time.monotonic() - started
        pressure.stop()
        window = account.stop()
        share = pressure.share(began, time.time())
    finally:
        for child in children:
            procs.stop(child)
    total = sum(end.values())
    return {
        "name": name,
        "processes": len(children),
        "messages": total,
        "work_s": round(work, 3),
        "events_per_s": round(total / work, 1),
        # CPU seconds in the timed window: the members together, and each process apart
        "cpu_s": round(sum(v or 0.0 for k, v in window.items() if k.startswith("member")), 2),
        "cpu_window_s": window,
        "broker_core_share": _per_core(window.get("broker"), work),
        "members_core_share": _per_core(
            sum(v or 0.0 for k, v in window.items() if k.startswith("member")), work
        ),
        "pressure_share": share,
    }


def _per_core(cpu: float | None, seconds: float) -> float | None:
    """CPU seconds over wall seconds: 1.0 is one core busy the whole time."""
    return None if cpu is None else round(cpu / seconds, 2)
