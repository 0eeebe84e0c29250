"""Step 5 of a checkpoint, judged across checkpoints: what a refused commit means for the replica.

A refusal around a rebalance is routine; the same refusal checkpoint after checkpoint means the
replica has lost its place in the group (or its rights) and must stop pretending to work. Kept
apart from :mod:`auditstream.stream.kafka.checkpoint` because it is pure bookkeeping over error
codes, testable without a consumer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import structlog
from confluent_kafka import KafkaError

from auditstream.stream.errors import CommitFailed, InfrastructureError
from auditstream.stream.metrics import Metrics

_log = structlog.get_logger("auditstream.checkpoint")
Refusal = tuple[str, KafkaError]  # (what was refused, "topic[partition]" or "commit"; why)

BLOCKED_AFTER: Final = 3
"""Checkpoints in a row refused with errors no retry cures before the commits count as blocked:
one refusal happens around every rebalance, three in a row (15 s at the default interval) do
not, unless the replica has really lost its place in the group or its rights."""
_AUTHORIZATION: Final = frozenset(
    {
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    }
)


class CommitVerdicts:
    """Step 5's judgement across checkpoints: what a refusal means for the replica."""

    def __init__(self, metrics: Metrics, blocked_after: int = BLOCKED_AFTER) -> None:
        self._metrics = metrics
        self._blocked_after = blocked_after
        self._in_a_row = 0  # checkpoints refused in a row with errors no retry cures
        self.blocked: str | None = None  # why commits count as blocked, while they do

    def accepted(self) -> None:
        self._in_a_row = 0
        if self.blocked is not None:
            _log.info("commits_unblocked")
            self.blocked = None
            self._metrics.commit_blocked.set(0)

    def refused(self, refusals: Sequence[Refusal]) -> CommitFailed:
        """Count the refusal by code; the error to raise for it.

        Raises :class:`InfrastructureError` for an authorization failure: no retry and no
        restart will cure it, and a replica that cannot commit must not pretend to work.
        """
        codes = sorted({error.name() for _, error in refusals})
        for code in codes:
            self._metrics.commit_errors.labels(code).inc()
        detail = ", ".join(f"{what}: {error.name()}: {error.str()}" for what, error in refusals)
        if any(error.code() in _AUTHORIZATION for _, error in refusals):
            raise InfrastructureError(f"the group coordinator refuses our commits: {detail}")
        retriable = all(_retriable(error) for _, error in refusals)
        if not retriable:
            self._in_a_row += 1
            if self._in_a_row >= self._blocked_after:
                if self.blocked is None:
                    _log.error("commits_blocked", in_a_row=self._in_a_row, codes=codes)
                self.blocked = f"{self._in_a_row} commits in a row refused ({', '.join(codes)})"
                self._metrics.commit_blocked.set(1)
        return CommitFailed(detail, retriable=retriable)


def _retriable(error: KafkaError) -> bool:
    """Worth another try: transport trouble, a coordinator that is loading or moving, a group
    in the middle of a rebalance (the client is rejoining already)."""
    if error.retriable():
        return True
    return error.code() in (
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._WAIT_COORD,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError._ALL_BROKERS_DOWN,
    )
