"""The service replicas of a soak run, and the orchestrator that keeps them running.

Each replica is a real ``python -m auditstream.stream run`` process of the same consumer group,
its JSON log in a file of its own. The set plays Kubernetes' part: a replica that exits without
being told to (exit 4 after a delivery failure, a crash) is started again after a back-off, and
the exit is recorded, since an unplanned exit under faults is something to report even when no
invariant breaks. A configuration error (exit 2 or 3) aborts the run instead: no restart fixes it.

Everything here runs on the caller's thread (the runner's main loop): replicas are started from
that thread, which the kernel watches (``PR_SET_PDEATHSIG``), so a soak killed with SIGKILL takes
its replicas with it instead of leaving them retrying against brokers that are gone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from devtools.jvm.process import REPO_ROOT

__all__ = ["EXIT_CODES_FATAL_TO_RUN", "Replica", "ReplicaSet", "SoakAborted", "UnplannedExit"]

EXIT_CODES_FATAL_TO_RUN: Final = frozenset({2, 3})
"""Invalid settings, rules that do not load: the run is wrong, not the service under faults."""
BACKOFF: Final = (1.0, 2.0, 4.0, 8.0)
"""Seconds before restarting a replica after its 1st, 2nd... unplanned exit in a row."""
STABLE_AFTER: Final = 30.0
"""A replica that ran this long before exiting starts its back-off from the beginning."""
_PR_SET_PDEATHSIG: Final = 1


class SoakAborted(RuntimeError):
    """The run cannot go on: a replica refused its configuration, or the harness failed."""


@dataclass(frozen=True, slots=True)
class UnplannedExit:
    """A replica that exited without being told to."""

    at: float
    """Seconds since the run started."""
    replica: str
    code: int
    error: str
    """The replica's last ``service_failed``/``service_crashed`` log line, if any."""


@dataclass(slots=True)
class Replica:
    """One service process."""

    name: str
    log_path: Path
    process: subprocess.Popen[bytes]
    started: float
    stopping: bool = False
    """Told to stop (SIGTERM or SIGKILL) by a fault or by the end of the run."""
    ignored_env: tuple[str, ...] = ()
    """Variables the service said it did not know (``unknown_environment_ignored``)."""
    settings: dict[str, object] = field(default_factory=dict)
    """The settings the service says it runs with (its ``service_starting`` line)."""
    _read: int = 0
    _owned: int = 0
    _failure: str = ""

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def owned_partitions(self) -> int:
        """Partitions the replica owns, from its latest rebalance log line (0 before any)."""
        self._follow_log()
        return self._owned

    def last_error(self) -> str:
        """Its last ``service_failed``/``service_crashed`` line, else the log's last line."""
        self._follow_log()
        if self._failure:
            return self._failure
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return text[-1][:500] if text else ""

    def _follow_log(self) -> None:
        """Read the log lines written since the last call (the log only grows)."""
        with self.log_path.open("rb") as log:
            log.seek(self._read)
            chunk = log.read()
        end = chunk.rfind(b"\n") + 1  # a line still being written waits for the next call
        self._read += end
        for line in _json_lines(chunk[:end]):
            event = str(line.get("event", ""))
            if event.startswith("partitions_") and "owned" in line:
                self._owned = int(str(line["owned"]))
            elif event in _FAILURES:
                self._failure = f"{event}: {line.get('error', '')} {line.get('exception', '')}"
            elif event == "unknown_environment_ignored":
                self.ignored_env = tuple(str(v) for v in _list(line.get("variables")))
            elif event == "service_starting":
                settings = line.get("settings")
                self.settings = (
                    {str(k): v for k, v in settings.items()} if isinstance(settings, dict) else {}
                )


@dataclass(slots=True)
class _Restart:
    due: float
    slot: str


@dataclass
class ReplicaSet:
    """The replicas of one group: start, signal, supervise, stop. Not thread-safe: one caller."""

    env: Mapping[str, str]
    argv: tuple[str, ...]
    logdir: Path
    clock: Callable[[], float]
    """Seconds since the run started (for the records)."""
    members: list[Replica] = field(default_factory=list)
    unplanned: list[UnplannedExit] = field(default_factory=list)
    _restarts: list[_Restart] = field(default_factory=list)
    _crashes_in_row: dict[str, int] = field(default_factory=dict)
    _generation: dict[str, int] = field(default_factory=dict)
    _slots: int = 0

    # -- starting -------------------------------------------------------------------------------

    def start_new(self) -> Replica:
        """A replica in a new slot (a join, or one of the first ones)."""
        self._slots += 1
        return self._start(f"r{self._slots}")

    def restart_later(self, slot: str, delay: float) -> None:
        """Start a replica in ``slot`` again after ``delay`` seconds (on a later ``supervise``)."""
        self._restarts.append(_Restart(time.monotonic() + delay, slot))

    def _start(self, slot: str) -> Replica:
        generation = self._generation.get(slot, 0) + 1
        self._generation[slot] = generation
        name = slot if generation == 1 else f"{slot}.{generation}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUDITSTREAM_")}
        env.update(self.env)
        # A slot is a replica as a StatefulSet runs it: its restarts keep its transactional id,
        # so each one fences its killed predecessor and aborts what it left open at once.
        env["AUDITSTREAM_TRANSACTIONAL_ID"] = f"{env.get('AUDITSTREAM_GROUP_ID', 'soak')}-{slot}"
        log_path = self.logdir / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "auditstream.stream", "run", *self.argv],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent(),  # noqa: PLW1509 - only a prctl call, see its doc
            )
        replica = Replica(name, log_path, process, time.monotonic())
        self.members.append(replica)
        return replica

    # -- faults and the end of the run ----------------------------------------------------------

    def live(self) -> list[Replica]:
        return [r for r in self.members if r.alive and not r.stopping]

    def kill(self, replica: Replica) -> None:
        """SIGKILL: no shutdown, no commit, no group leave; the process is reaped at once."""
        replica.stopping = True
        replica.process.kill()
        replica.process.wait(10)
        self.members.remove(replica)

    def terminate(self, replica: Replica, timeout: float) -> int:
        """SIGTERM and wait; returns the exit code (SIGKILL after ``timeout``: then -9)."""
        replica.stopping = True
        replica.process.send_signal(signal.SIGTERM)
        try:
            code = replica.process.wait(timeout)
        except subprocess.TimeoutExpired:
            replica.process.kill()
            code = replica.process.wait(10)
        self.members.remove(replica)
        return code

    def terminate_all(self, timeout: float) -> dict[str, int]:
        """SIGTERM every replica at once, then collect the exit codes (the end of a run)."""
        self._restarts.clear()
        members = list(self.members)
        for replica in members:
            replica.stopping = True
            replica.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes: dict[str, int] = {}
        for replica in members:
            try:
                codes[replica.name] = replica.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                replica.process.kill()
                codes[replica.name] = replica.process.wait(10)
            self.members.remove(replica)
        return codes

    def kill_all(self) -> None:
        """Teardown after a failure: nothing of the run may outlive it."""
        self._restarts.clear()
        for replica in list(self.members):
            if replica.alive:
                replica.process.kill()
                replica.process.wait(10)
            self.members.remove(replica)

    # -- supervision ----------------------------------------------------------------------------

    def supervise(self) -> None:
        """Record replicas that exited on their own and schedule their restart; start the
        restarts that are due. Call often (every fraction of a second)."""
        for replica in list(self.members):
            code = replica.process.poll()
            if code is None or replica.stopping:
                continue
            self.members.remove(replica)
            error = replica.last_error()
            self.unplanned.append(UnplannedExit(self.clock(), replica.name, code, error))
            if code in EXIT_CODES_FATAL_TO_RUN:
                raise SoakAborted(f"replica {replica.name} exited with {code}: {error}")
            slot = replica.name.split(".")[0]
            ran = time.monotonic() - replica.started
            in_row = 0 if ran > STABLE_AFTER else self._crashes_in_row.get(slot, 0)
            self._crashes_in_row[slot] = in_row + 1
            self.restart_later(slot, BACKOFF[min(in_row, len(BACKOFF) - 1)])
        now = time.monotonic()
        for restart in [r for r in self._restarts if r.due <= now]:
            self._restarts.remove(restart)
            self._start(restart.slot)

    @property
    def restarts_pending(self) -> int:
        return len(self._restarts)

    def all_working(self) -> bool:
        """Every live replica owns partitions, and no restart is pending."""
        live = self.live()
        return bool(live) and not self._restarts and all(r.owned_partitions() > 0 for r in live)


_FAILURES: Final = frozenset({"service_failed", "service_crashed", "invalid_settings"})


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def _json_lines(chunk: bytes) -> list[dict[str, object]]:
    """The JSON lines of a piece of a replica's log; other lines (a traceback) are skipped."""
    lines: list[dict[str, object]] = []
    for line in chunk.splitlines():
        if line.startswith(b"{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue  # a line cut by SIGKILL mid-write
    return lines


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec hook asking Linux to SIGKILL the replica when the thread that started it exits
    (the soak's main thread). Looked up before the fork, so the child makes one foreign call."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    prctl = ctypes.CDLL(name, use_errno=True).prctl
    sigkill = int(signal.SIGKILL)

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, sigkill)

    return hook
