"""What the checkpoint makes of commits the group coordinator refuses (step 5), without a broker.

A broker here runs without an authorizer, so it cannot be made to answer
GROUP_AUTHORIZATION_FAILED on demand: the decision is tested on the error values librdkafka
hands over. UNKNOWN_MEMBER_ID from a real coordinator is in
tests/integration/service/test_checkpoint_commits.py.
"""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from auditstream.stream.errors import CommitFailed, InfrastructureError
from auditstream.stream.health import Health
from auditstream.stream.kafka.commit_verdicts import BLOCKED_AFTER, CommitVerdicts
from auditstream.stream.metrics import Metrics

TP = "audit[0]"


def refusal(code: int) -> list[tuple[str, KafkaError]]:
    return [(TP, KafkaError(code))]


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    ],
)
def test_an_authorization_failure_stops_the_replica(code: int) -> None:
    metrics = Metrics()
    verdicts = CommitVerdicts(metrics)
    with pytest.raises(InfrastructureError, match="refuses our commits") as raised:
        verdicts.refused(refusal(code))
    assert not isinstance(raised.value, CommitFailed)  # not held and retried: exit 4
    assert sample(metrics, "auditstream_commit_errors_total", code=KafkaError(code).name()) == 1


def test_refusals_no_retry_cures_block_commits_after_a_few_in_a_row() -> None:
    metrics = Metrics()
    verdicts = CommitVerdicts(metrics)
    for attempt in range(1, BLOCKED_AFTER + 1):
        failure = verdicts.refused(refusal(KafkaError.ILLEGAL_GENERATION))
        assert not failure.retriable
        assert (verdicts.blocked is not None) == (attempt == BLOCKED_AFTER)
    assert "ILLEGAL_GENERATION" in str(verdicts.blocked)
    assert sample(metrics, "auditstream_commit_blocked") == 1
    assert sample(metrics, "auditstream_commit_errors_total", code="ILLEGAL_GENERATION") == 3
    verdicts.accepted()
    assert verdicts.blocked is None
    assert sample(metrics, "auditstream_commit_blocked") == 0


def test_an_accepted_commit_restarts_the_count() -> None:
    verdicts = CommitVerdicts(Metrics())
    for _ in range(BLOCKED_AFTER - 1):
        verdicts.refused(refusal(KafkaError.UNKNOWN_MEMBER_ID))
    verdicts.accepted()
    for _ in range(BLOCKED_AFTER - 1):
        verdicts.refused(refusal(KafkaError.UNKNOWN_MEMBER_ID))
    assert verdicts.blocked is None


@pytest.mark.parametrize(
    "code",
    [
        KafkaError._TRANSPORT,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError._TIMED_OUT,
    ],
)
def test_refusals_a_retry_cures_are_counted_but_never_block(code: int) -> None:
    metrics = Metrics()
    verdicts = CommitVerdicts(metrics)
    for _ in range(BLOCKED_AFTER * 2):
        assert verdicts.refused(refusal(code)).retriable
    assert verdicts.blocked is None
    assert sample(metrics, "auditstream_commit_errors_total", code=KafkaError(code).name()) == 6


def test_one_partition_refused_for_good_makes_the_whole_commit_count() -> None:
    verdicts = CommitVerdicts(Metrics())
    mixed = [(TP, KafkaError(KafkaError._TRANSPORT)), ("audit[1]", KafkaError(25))]
    assert not verdicts.refused(mixed).retriable


def test_readiness_fails_while_commits_are_blocked() -> None:
    health = Health(stale_after=10.0)
    health.assigned, health.broker_reachable = 3, True
    assert health.ready() == (True, "3 partitions assigned")
    health.commits_blocked = "3 commits in a row refused (UNKNOWN_MEMBER_ID)"
    assert health.ready() == (
        False,
        "commits refused: 3 commits in a row refused (UNKNOWN_MEMBER_ID)",
    )
