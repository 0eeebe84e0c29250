"""The two hops of a stateful rule through Kafka, as the processor sees them.

Hop 1 (input record -> candidates): an event that passed a stateful rule's per-event part is
produced to the repartition topic keyed by (rule, group key), so that every event of one group
lands on one partition, owned by one replica. The input offset commits only once those records
are acknowledged (they are outputs of the input record, like its alerts).

Hop 2 (repartition record -> state, alerts): the owner of that partition applies the candidate to
its store; the store's writes go to the changelog (same partition number) and the alerts to the
alert topic; the repartition offset commits only once all of them are acknowledged. A replay
(after a crash) re-applies candidates whose effects may already be stored: operators hold event
identities, so the state does not change twice and the alert comes out again with the same id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from auditstream.detections.alert import Alert
from auditstream.detections.stateful.alerting import stateful_alert
from auditstream.detections.stateful.candidate import Candidate
from auditstream.stream.kafka.delivery import Delivery
from auditstream.stream.state.tasks import Change, StateTasks

OnAcked = Callable[[], None]


class BadCandidate(ValueError):
    """A repartition record that no candidate wrote (a dead letter, ``bad_candidate``)."""


class StatefulStage:
    def __init__(
        self,
        tasks: StateTasks,
        delivery: Delivery,
        *,
        repartition: str,
        changelog: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.tasks = tasks
        self.repartition = repartition
        self.changelog = changelog
        self._delivery = delivery
        self._clock = clock

    def send_candidates(self, candidates: Sequence[Candidate], on_acked: OnAcked) -> None:
        produce = self._delivery.produce
        for candidate in candidates:
            produce(
                self.repartition, key=candidate.store_key, value=candidate.to_bytes(),
                headers=(), on_acked=on_acked,
            )  # fmt: skip

    def apply(self, partition: int, value: bytes) -> tuple[list[Alert], list[Change], bool]:
        """The alerts and changelog writes of one repartition record, and whether it was late.
        Raises :class:`BadCandidate` for bytes that are not a candidate."""
        try:
            candidate = Candidate.from_bytes(value)
        except ValueError as err:
            raise BadCandidate(str(err)) from err
        applied, changes = self.tasks.apply(partition, candidate)
        alerts: list[Alert] = []
        if applied.hits:
            meta = self.tasks.engine.rules[candidate.rule_id].meta
            now = self._clock()
            alerts = [stateful_alert(meta, hit, detected_at=now) for hit in applied.hits]
        return alerts, changes, applied.late

    def send_changes(self, partition: int, changes: Sequence[Change], on_acked: OnAcked) -> None:
        produce = self._delivery.produce
        for key, value in changes:
            produce(
                self.changelog, key=key, value=value, headers=(), on_acked=on_acked,
                partition=partition,
            )  # fmt: skip
