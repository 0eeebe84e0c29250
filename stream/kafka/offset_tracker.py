"""Which input offsets are safe to commit: the heart of at-least-once, with no I/O.

Per assigned partition the tracker keeps the offsets handed to processing, in order, each with
the number of its output records (alerts, a dead letter) that the broker has not acknowledged
yet. ``committable(partition)`` is one past the longest prefix of those offsets whose outputs are
all acknowledged: an offset is never committable while it, or any earlier offset of its
partition, still awaits an acknowledgement, whatever order the acknowledgements arrive in.

Most messages produce nothing. :meth:`OffsetTracker.settle` records a run of them in one step
(the highest offset of the run is all that matters): committable at once when nothing of the
partition is pending, otherwise kept as one entry behind the pending ones.

Revoking a partition drops its state. A :class:`Ticket` points at the state it was issued from,
so an acknowledgement that arrives after a revoke (and maybe a re-assign) cannot touch the new
state.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

Partition = tuple[str, int]  # (topic, partition)


@dataclass(slots=True, eq=False)
class _PartitionState:
    pending: dict[int, int] = field(default_factory=dict)  # offset -> outputs not yet acked
    order: deque[int] = field(default_factory=deque)  # offsets handed out, ascending
    committable: int | None = None  # one past the last offset of the fully acked prefix
    last_offset: int = -1

    def advance(self) -> None:
        while self.order and self.pending[self.order[0]] == 0:
            offset = self.order.popleft()
            del self.pending[offset]
            self.committable = offset + 1


@dataclass(frozen=True, slots=True, eq=False)
class Ticket:
    """One message's claim on its partition's state; ``ack`` it once per output record."""

    state: _PartitionState
    offset: int


class OffsetTracker:
    """Not thread-safe: used from the one loop thread (delivery callbacks run in its polls)."""

    def __init__(self) -> None:
        self._partitions: dict[Partition, _PartitionState] = {}

    def assign(self, partitions: Iterable[Partition]) -> None:
        """Start tracking (fresh state, even if the partition was ours before)."""
        for partition in partitions:
            self._partitions[partition] = _PartitionState()

    def revoke(self, partitions: Iterable[Partition]) -> None:
        """Forget partitions; late acknowledgements for them go to the orphaned state."""
        for partition in partitions:
            self._partitions.pop(partition, None)

    def assigned(self, partition: Partition) -> bool:
        return partition in self._partitions

    @property
    def partitions(self) -> tuple[Partition, ...]:
        return tuple(self._partitions)

    def open(self, partition: Partition, offset: int, outputs: int) -> Ticket:
        """Register a message and how many outputs it produces (0 is done at once).

        Offsets of a partition must arrive in ascending order, which is how Kafka delivers them.
        """
        if outputs < 0:
            raise ValueError("outputs must be >= 0")
        state = self._partitions[partition]  # KeyError: not assigned, a caller bug
        if offset <= state.last_offset:
            raise ValueError(f"offset {offset} after {state.last_offset} on {partition}")
        state.last_offset = offset
        state.pending[offset] = outputs
        state.order.append(offset)
        state.advance()
        return Ticket(state, offset)

    def settle(self, partition: Partition, offset: int) -> None:
        """Every message of the partition after the last one registered, up to and including
        ``offset``, produced no output: like ``open(partition, offset, 0)`` for each, in one step.

        A partition that is not assigned any more is ignored (its messages are another member's).
        """
        state = self._partitions.get(partition)
        if state is None:
            return
        if offset <= state.last_offset:
            raise ValueError(f"offset {offset} after {state.last_offset} on {partition}")
        state.last_offset = offset
        order = state.order
        if not order:  # nothing pending before it: committable now
            state.committable = offset + 1
            return
        pending = state.pending
        last = order[-1]
        if pending[last] == 0:  # an output-less entry waits at the tail already: move it up
            del pending[last]
            order[-1] = offset
        else:
            order.append(offset)
        pending[offset] = 0

    @staticmethod
    def ack(ticket: Ticket) -> None:
        """One output of the ticket's message was acknowledged by the broker."""
        state = ticket.state
        remaining = state.pending.get(ticket.offset)
        if remaining is None or remaining == 0:
            raise ValueError(f"offset {ticket.offset} acknowledged more often than it produced")
        state.pending[ticket.offset] = remaining - 1
        if remaining == 1 and state.order[0] == ticket.offset:
            state.advance()

    def committable(self, partition: Partition) -> int | None:
        """The offset to commit for the partition (one past the acked prefix), if any."""
        state = self._partitions.get(partition)
        return None if state is None else state.committable

    def committable_all(self) -> dict[Partition, int]:
        return {p: s.committable for p, s in self._partitions.items() if s.committable is not None}

    def pending(self, partition: Partition | None = None) -> int:
        """Outputs still awaiting acknowledgement (of one partition, or of all)."""
        states = (
            self._partitions.values()
            if partition is None
            else [s for p, s in self._partitions.items() if p == partition]
        )
        return sum(sum(s.pending.values()) for s in states)
