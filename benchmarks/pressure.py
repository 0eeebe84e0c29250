"""Who had the CPU while a contender ran: per-process CPU seconds and the kernel's CPU pressure.

On a 2-core machine the broker, the load generator and the contender share the cores, so a slow
sample can be our code or a moment when no core was free. ``/proc/pressure/cpu`` (PSI) counts
the microseconds during which at least one runnable task waited for a core; sampled every 20 ms
it says, for any interval, how long the machine was oversubscribed then. Where the kernel has no
PSI the figures are ``None``, not zero.
"""

from __future__ import annotations

import bisect
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.procs import cpu_seconds

PSI = Path("/proc/pressure/cpu")
INTERVAL_S = 0.02


class CpuPressure:
    """A background sampler of ``some total`` (us) from PSI, against the wall clock."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.totals: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-pressure", daemon=True)

    @property
    def available(self) -> bool:
        return bool(self.totals)

    def start(self) -> CpuPressure:
        if _read_some_total() is not None:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)

    def stalled_ms(self, start: float, end: float) -> float | None:
        """Milliseconds in ``[start, end]`` (epoch seconds) with a task waiting for a core,
        counted over the samples that bracket the interval (up to 20 ms wider each side)."""
        if len(self.times) < 2:
            return None
        first = max(bisect.bisect_right(self.times, start) - 1, 0)
        last = min(bisect.bisect_left(self.times, end), len(self.times) - 1)
        return round((self.totals[last] - self.totals[first]) / 1000, 1)

    def share(self, start: float, end: float) -> float | None:
        """The fraction of ``[start, end]`` with a task waiting for a core."""
        stalled = self.stalled_ms(start, end)
        return None if stalled is None else round(stalled / 1000 / max(end - start, 1e-9), 3)

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL_S):
            total = _read_some_total()
            if total is not None:
                self.times.append(time.time())
                self.totals.append(total)


def _read_some_total() -> int | None:
    try:
        line = PSI.read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(part.split("=", 1) for part in line.split()[1:])
    return int(fields["total"]) if "total" in fields else None


class CpuAccount:
    """CPU seconds of named processes between :meth:`start` and :meth:`stop`."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self._pids = {name: pid for name, pid in pids.items() if pid is not None}
        self._before: dict[str, float | None] = {}
        self.used: dict[str, float | None] = {}

    def start(self) -> CpuAccount:
        self._before = {name: cpu_seconds(pid) for name, pid in self._pids.items()}
        return self

    def stop(self) -> dict[str, Any]:
        for name, pid in self._pids.items():
            after, before = cpu_seconds(pid), self._before.get(name)
            self.used[name] = None if after is None or before is None else round(after - before, 2)
        return dict(self.used)


def gc_pauses(
    log: Path | None, start: float, end: float, *, at_least_ms: float
) -> list[tuple[float, float]]:
    """The JVM's stop-the-world pauses of at least ``at_least_ms`` that ended between ``start``
    and ``end`` (epoch seconds), as (seconds after ``start``, ms), from a ``-Xlog:gc`` file
    whose lines start with the wall-clock time."""
    if log is None or not log.exists():
        return []
    found: list[tuple[float, float]] = []
    for line in log.read_text(errors="replace").splitlines():
        if " Pause " not in line or not line.endswith("ms"):
            continue
        try:
            stamp = datetime.strptime(line[1 : line.index("]")], "%Y-%m-%dT%H:%M:%S.%f%z")
            ms = float(line.rsplit(" ", 1)[1].removesuffix("ms"))
        except ValueError:
            continue
        at = stamp.timestamp()
        if start <= at <= end and ms >= at_least_ms:
            found.append((round(at - start, 2), round(ms, 1)))
    return found
