"""What one soak run is: a frozen, typed description decided once at the entry point.

Everything random in a run (the input, the poison's places, the fault times and targets) is a
function of ``seed``, so a run that finds a violation can be repeated with the same schedule;
only the timing of the machine itself (how fast the JVMs and replicas start) differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

__all__ = ["AlertFormat", "Delivery", "SoakConfig", "TopicNames"]

Delivery = Literal["at-least-once", "exactly-once"]
AlertFormat = Literal["json", "avro"]

DEFAULT_RATE: Final = 100.0
"""Input records per second: 6,000 a minute, a busy cluster's audit log on a 2-core machine."""


@dataclass(frozen=True, slots=True)
class SoakConfig:
    """The knobs of one run; the defaults are the long form's.

    ``duration`` is the time during which input is produced and faults are injected. The drain
    (replicas finishing the input) and the checks come after it and are bounded separately.
    """

    duration: float
    seed: int
    delivery: Delivery = "at-least-once"
    alert_format: AlertFormat = "json"
    rate: float = DEFAULT_RATE
    exec_share: float = 0.06
    """Share of input records that are exec stages (routine traffic is the rest)."""
    malicious_share: float = 0.4
    """Share of exec requests that run a reverse shell or a download: these alert."""
    replicas: int = 2
    """Replicas at the start; a join adds one, a leave removes one (between 2 and 3)."""
    partitions: int = 6
    """Input partitions: enough for three replicas to each own some."""
    max_message_bytes: int = 262_144
    """The service's input limit, below the topics' 1 MB so that one poison record is oversized
    for the service yet an ordinary record for the broker."""
    huge_record_bytes: int = 1_500_000
    """The poison record that needs the input topic's ``max.message.bytes`` raised; 0: none."""
    warmup: float = 6.0
    """Seconds before the first fault: the replicas own partitions and are working."""
    fault_gap: tuple[float, float] = (6.0, 14.0)
    """Seconds between the end of one fault and the start of the next, drawn uniformly."""
    broker_downtime: tuple[float, float] = (5.0, 12.0)
    """Seconds a killed broker stays down before it is started again."""
    drain_timeout: float = 150.0
    """Seconds the replicas get, after the last record, to commit to the end of the input."""
    commit_interval: float = 1.0
    workdir: Path | None = None
    """Where replica logs go; a fresh temporary directory when ``None``."""
    keep_logs: bool = False
    """Keep the work directory (replica and broker logs) even when every invariant holds."""
    extra_env: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    """More ``AUDITSTREAM_*`` settings for the replicas (name without the prefix, value)."""

    def __post_init__(self) -> None:
        if self.duration <= 0 or self.rate <= 0:
            raise ValueError("duration and rate must be positive")
        if not 1 <= self.replicas <= 3:
            raise ValueError("replicas must be between 1 and 3")
        if self.huge_record_bytes and self.huge_record_bytes <= self.max_message_bytes:
            raise ValueError("huge_record_bytes must exceed max_message_bytes")

    @property
    def records(self) -> int:
        """Good input records produced over the run (the poison comes on top)."""
        return max(1, round(self.duration * self.rate))


@dataclass(frozen=True, slots=True)
class TopicNames:
    """The run's topics and consumer group: unique per run, so runs never see each other."""

    inputs: str
    alerts: str
    dead_letters: str
    group: str

    @classmethod
    def for_run(cls, run_id: str) -> TopicNames:
        return cls(
            f"soak-{run_id}-audit",
            f"soak-{run_id}-alerts",
            f"soak-{run_id}-dead-letters",
            f"soak-{run_id}-group",
        )
