"""What a soak run gives back: the run's own figures (input, faults, replicas) and the checker's.

Kept apart from the runner so that the report (and a test) can use it without the machinery.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from devtools.jvm.kafka import KAFKA_VERSION
from devtools.jvm.process import REPO_ROOT
from devtools.soak.checker import CheckResult
from devtools.soak.config import SoakConfig
from devtools.soak.faults import Fault, FaultKind
from devtools.soak.replicas import UnplannedExit

__all__ = ["Machine", "SoakResult"]


@dataclass(frozen=True, slots=True)
class Machine:
    """Where and on what a run happened, for the report."""

    host: str
    cpu: str
    cores: int
    memory_gb: float
    load: tuple[float, float, float]
    """The 1, 5 and 15 minute load averages when the run started (other users of the machine)."""
    python: str
    kafka: str
    librdkafka: str
    revision: str

    @classmethod
    def describe(cls) -> Machine:
        import confluent_kafka  # noqa: PLC0415 - only for its version string

        return cls(
            host=platform.node(),
            cpu=_cpu_model(),
            cores=os.cpu_count() or 0,
            memory_gb=_memory_gb(),
            load=os.getloadavg(),
            python=platform.python_version(),
            kafka=KAFKA_VERSION,
            librdkafka=confluent_kafka.libversion()[0],
            revision=_revision(),
        )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _revision() -> str:
    """The checkout's commit, marked when the working tree has changes (it usually does)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head} + uncommitted changes" if dirty else head


@dataclass(frozen=True, slots=True)
class SoakResult:
    """One run, start to end."""

    config: SoakConfig
    started: datetime
    machine: Machine
    wall_seconds: float
    """The whole run: topics, replicas, input and faults, drain, stop, checks."""
    produce_seconds: float
    """From the first input record to the last one acknowledged."""
    drain_seconds: float | None
    """From the last input record acknowledged to the group committed to the end; ``None``
    when it did not get there within ``drain_timeout``."""
    records: int
    """Input records produced (audit data and poison)."""
    events: int
    exec_stages: int
    exec_requests: int
    malicious_requests: int
    poison: int
    resent: int
    """Input records the soak's producer had to send again (delivery failed in a broker kill)."""
    faults: tuple[Fault, ...]
    unplanned_exits: tuple[UnplannedExit, ...]
    stop_codes: Mapping[str, int]
    """Each replica's exit code after the final SIGTERM."""
    check: CheckResult
    context: tuple[str, ...]
    """Where the lost alerts and missing poison came from in the input, and the faults just
    before (empty when nothing is missing)."""
    workdir: Path | None
    """Where the replica logs are (kept when a violation was found or when asked)."""

    @property
    def faults_by_kind(self) -> dict[FaultKind, int]:
        counts = Counter(f.kind for f in self.faults)
        return {kind: counts[kind] for kind in FaultKind if counts[kind]}

    @property
    def anomalies(self) -> list[str]:
        """What went wrong around the faults without breaking an invariant by itself."""
        notes = [f"{f.kind} at {f.at:.0f} s: {f.anomaly}" for f in self.faults if f.anomaly]
        notes += [
            f"replica {name} exited with {code} after the final SIGTERM"
            for name, code in self.stop_codes.items()
            if code != 0
        ]
        notes += [f"poison dead-lettered as {m}" for m in self.check.reason_mismatches]
        if self.drain_seconds is None:
            notes.append(f"not drained within {self.config.drain_timeout:.0f} s")
        return notes

    @property
    def violations(self) -> list[str]:
        return self.check.violations

    @property
    def ok(self) -> bool:
        return self.check.ok
