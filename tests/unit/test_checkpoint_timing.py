"""The loop's wait for records ends when the interval commit is due, not a poll timeout later."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from auditstream.stream.kafka.checkpoint import Checkpoint
from auditstream.stream.kafka.offset_tracker import OffsetTracker
from auditstream.stream.metrics import Metrics


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def checkpoint(clock: Clock, *, transactional: bool = False) -> Checkpoint:
    unused: Any = None  # neither client is touched before a commit
    return Checkpoint(
        unused, unused, OffsetTracker(), Metrics(CollectorRegistry()),
        interval=5.0, revoke_timeout=1.0, forget_alerts=lambda: None,
        clock=clock, transactional=transactional,
    )  # fmt: skip


def test_the_wait_shrinks_to_the_next_interval_commit() -> None:
    clock = Clock()
    point = checkpoint(clock)
    assert point.seconds_until_due(0.5) == 0.5  # far from due: the poll timeout
    clock.now += 4.8
    assert abs(point.seconds_until_due(0.5) - 0.2) < 1e-9
    clock.now += 0.3
    assert point.due() and point.seconds_until_due(0.5) == 0.0  # overdue: do not wait at all


def test_exactly_once_never_commits_so_it_waits_the_poll_timeout() -> None:
    clock = Clock()
    point = checkpoint(clock, transactional=True)
    clock.now += 10
    assert not point.due()
    assert point.seconds_until_due(0.5) == 0.5
