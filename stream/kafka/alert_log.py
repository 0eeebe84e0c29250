"""The alert topic read back: which alert ids the group has already produced, recently.

A replica's alert window (:class:`auditstream.detections.alert_window.RecentAlerts`) suppresses
the repeats of an exec's later stages. It lives in memory, so a replica that restarts, or that
takes over a partition from one that died, starts without it: the stages of an exec whose first
alert is already on the alert topic, but whose later stages come after the last committed
offset, would alert a second time. The alert topic itself is the record of what was produced:
its keys are the alert ids. On start and on every assignment the replica reads the keys that
reached the topic within ``horizon`` seconds into its window; it never decodes a value.

In exactly-once mode the reader is ``read_committed``, so aborted alerts are not taken as
produced: with the window restored this way, a replica killed mid-stream leaves no duplicate
alert record behind.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping

import structlog
from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, TopicPartition

_log = structlog.get_logger("auditstream.alert_log")
Remember = Callable[[str], object]


class AlertLog:
    """A group-less reader of the alert topic's keys; used from the loop thread."""

    def __init__(
        self,
        config: Mapping[str, object],
        topic: str,
        *,
        horizon: float,
        remember: Remember,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._topic = topic
        self._horizon = horizon
        self._remember = remember
        self._clock = clock
        self._consumer = Consumer({
            **config,
            "group.id": f"auditstream-alert-log-{uuid.uuid4().hex}",  # never joined: assign()
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            # The reader runs to the end and stops: a fetch at the end must not wait the default
            # 500 ms for data that is not coming (a read_committed end behind a transaction
            # marker takes a few such fetches).
            "fetch.wait.max.ms": 10,
        })  # fmt: skip
        self._positions: dict[int, int] | None = None

    def catch_up(self, budget: float) -> int:
        """Read the keys produced since the last call (the first call: within the horizon)
        into the window, up to the topic's current end; returns how many were read. Bounded by
        ``budget`` s: what is not read in time is read at the next call."""
        deadline = time.monotonic() + budget
        try:
            ends = self._ends(budget)
            if self._positions is None:
                self._positions = self._starts(ends, budget)
            todo = {p: e for p, e in ends.items() if self._positions.get(p, e) < e}
            if not todo:
                return 0
            self._consumer.assign(
                [TopicPartition(self._topic, p, self._positions[p]) for p in todo]
            )
            read = 0
            while todo and time.monotonic() < deadline:
                for msg in self._consumer.consume(500, 0.2):
                    partition = msg.partition() or 0
                    error = msg.error()
                    if error is None:
                        key = msg.key()
                        if key:
                            self._remember(key.decode("utf-8", "replace"))
                            read += 1
                        self._positions[partition] = (msg.offset() or 0) + 1
                    elif error.code() == KafkaError._PARTITION_EOF:
                        # The readable end: transaction markers and, read_committed, open
                        # transactions lie between it and the high watermark.
                        self._positions[partition] = max(
                            self._positions.get(partition, 0), msg.offset() or 0
                        )
                        todo.pop(partition, None)
                    if self._positions.get(partition, 0) >= todo.get(partition, 1 << 62):
                        todo.pop(partition, None)
            return read
        except KafkaException as err:  # a cache warm-up: never a reason to stop the replica
            _log.warning("alert_log_unreadable", topic=self._topic, error=str(err))
            return 0

    def close(self) -> None:
        self._consumer.close()

    def _ends(self, budget: float) -> dict[int, int]:
        metadata = self._consumer.list_topics(self._topic, timeout=budget).topics[self._topic]
        ends: dict[int, int] = {}
        for partition in metadata.partitions:
            _low, high = self._consumer.get_watermark_offsets(
                TopicPartition(self._topic, partition), timeout=budget
            )
            ends[partition] = high
        return ends

    def _starts(self, ends: Mapping[int, int], budget: float) -> dict[int, int]:
        """Per partition, the first offset within the horizon (its end if none is)."""
        since = int((self._clock() - self._horizon) * 1000)
        asked = [TopicPartition(self._topic, p, since) for p in ends]
        found = self._consumer.offsets_for_times(asked, timeout=budget)
        return {
            tp.partition: ends[tp.partition] if tp.offset in (-1, OFFSET_END) else tp.offset
            for tp in found
        }
