"""The offset tracker never lets an offset be committed past a message with unacked output."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditstream.stream.kafka.offset_tracker import OffsetTracker, Ticket

P = ("audit", 0)


def test_committable_is_the_acked_prefix() -> None:
    tracker = OffsetTracker()
    tracker.assign([P])
    assert tracker.committable(P) is None
    first = tracker.open(P, 10, 2)
    tracker.open(P, 11, 0)
    third = tracker.open(P, 14, 1)  # offsets need not be contiguous (compaction, markers)
    assert tracker.committable(P) is None
    OffsetTracker.ack(third)
    assert tracker.committable(P) is None  # 10 still waits
    OffsetTracker.ack(first)
    assert tracker.committable(P) is None
    OffsetTracker.ack(first)
    assert tracker.committable(P) == 15
    assert tracker.pending() == 0


def test_messages_without_output_commit_at_once() -> None:
    tracker = OffsetTracker()
    tracker.assign([P])
    tracker.open(P, 0, 0)
    assert tracker.committable(P) == 1
    assert tracker.committable_all() == {P: 1}


def test_revoke_drops_state_and_late_acks_are_harmless() -> None:
    tracker = OffsetTracker()
    tracker.assign([P])
    ticket = tracker.open(P, 5, 1)
    tracker.revoke([P])
    assert not tracker.assigned(P)
    assert tracker.committable(P) is None
    tracker.assign([P])  # re-assigned: fresh state
    tracker.open(P, 5, 1)
    OffsetTracker.ack(ticket)  # the old ticket's ack does not touch the new state
    assert tracker.committable(P) is None


def test_misuse_is_refused() -> None:
    tracker = OffsetTracker()
    tracker.assign([P])
    ticket = tracker.open(P, 3, 1)
    with pytest.raises(ValueError, match="after 3"):
        tracker.open(P, 3, 0)
    OffsetTracker.ack(ticket)
    with pytest.raises(ValueError, match="more often"):
        OffsetTracker.ack(ticket)
    with pytest.raises(KeyError):
        tracker.open(("other", 0), 0, 0)


@st.composite
def runs(draw: st.DrawFn) -> tuple[list[tuple[int, int, int]], list[int]]:
    """Messages (partition, offset, outputs) and a random order of all their acks."""
    messages = []
    next_offset = [0, 0]
    for _ in range(draw(st.integers(0, 40))):
        partition = draw(st.integers(0, 1))
        next_offset[partition] += draw(st.integers(1, 3))
        messages.append((partition, next_offset[partition], draw(st.integers(0, 3))))
    acks = [i for i, (_, _, outputs) in enumerate(messages) for _ in range(outputs)]
    return messages, draw(st.permutations(acks))


@settings(max_examples=300, deadline=None)
@given(runs())
def test_random_ack_order_never_commits_past_unacked(
    run: tuple[list[tuple[int, int, int]], list[int]],
) -> None:
    messages, ack_order = run
    tracker = OffsetTracker()
    tracker.assign([("t", 0), ("t", 1)])
    tickets: list[Ticket] = [tracker.open(("t", p), off, n) for p, off, n in messages]
    unacked = [n for _, _, n in messages]
    check(tracker, messages, unacked)
    for index in ack_order:
        OffsetTracker.ack(tickets[index])
        unacked[index] -= 1
        check(tracker, messages, unacked)
    for partition in (0, 1):
        offsets = [off for p, off, _ in messages if p == partition]
        assert tracker.committable(("t", partition)) == (offsets[-1] + 1 if offsets else None)


def check(tracker: OffsetTracker, messages: list[tuple[int, int, int]], unacked: list[int]) -> None:
    for partition in (0, 1):
        mine = [
            (off, left)
            for (p, off, _), left in zip(messages, unacked, strict=True)
            if p == partition
        ]
        committable = tracker.committable(("t", partition))
        first_waiting = next((off for off, left in mine if left), None)
        if first_waiting is not None:
            assert committable is None or committable <= first_waiting
        # and it is as far as it may go: one past the last offset before the first waiting one
        done = [off for off, _ in mine if first_waiting is None or off < first_waiting]
        assert committable == (done[-1] + 1 if done else None)


def test_settle_records_a_run_without_output_in_one_step() -> None:
    tracker = OffsetTracker()
    tracker.assign([P])
    tracker.settle(P, 4)  # offsets up to 4 had no output, nothing pending: committable now
    assert tracker.committable(P) == 5
    ticket = tracker.open(P, 5, 1)
    tracker.settle(P, 7)
    tracker.settle(P, 9)  # a second run behind the same pending message: one entry, moved up
    assert tracker.committable(P) == 5
    assert tracker.pending(P) == 1
    OffsetTracker.ack(ticket)
    assert tracker.committable(P) == 10
    with pytest.raises(ValueError, match="after 9"):
        tracker.settle(P, 9)
    tracker.revoke([P])
    tracker.settle(P, 12)  # not ours any more: ignored
    assert not tracker.assigned(P)


def test_a_settled_tail_does_not_pass_a_later_pending_message() -> None:
    tracker = OffsetTracker()
    tracker.assign([P])
    first = tracker.open(P, 0, 1)
    tracker.settle(P, 2)
    second = tracker.open(P, 3, 1)
    tracker.settle(P, 5)
    OffsetTracker.ack(first)
    assert tracker.committable(P) == 3  # 1 and 2 had no output; 3 waits
    OffsetTracker.ack(second)
    assert tracker.committable(P) == 6


@st.composite
def batched_runs(draw: st.DrawFn) -> tuple[list[tuple[int, int, int, bool]], list[int]]:
    """Like ``runs``, each message also saying whether a batch ends after it."""
    messages, acks = draw(runs())
    ends = draw(st.lists(st.booleans(), min_size=len(messages), max_size=len(messages)))
    return [(*m, end) for m, end in zip(messages, ends, strict=True)], acks


@settings(max_examples=300, deadline=None)
@given(batched_runs())
def test_settling_runs_per_batch_commits_exactly_like_opening_each(
    run: tuple[list[tuple[int, int, int, bool]], list[int]],
) -> None:
    """The processor's use: output-less messages are settled per partition at the end of each
    batch, or before the next message with output; the committable offsets are the same."""
    batched, ack_order = run
    messages = [(p, off, n) for p, off, n, _ in batched]
    tracker = OffsetTracker()
    tracker.assign([("t", 0), ("t", 1)])
    tickets: dict[int, Ticket] = {}
    unacked = [n for _, _, n in messages]
    settled: dict[int, int] = {}
    for index, (p, off, n, end) in enumerate(batched):
        if n == 0:
            settled[p] = off
        else:
            if p in settled:
                tracker.settle(("t", p), settled.pop(p))
            tickets[index] = tracker.open(("t", p), off, n)
        if end or index == len(batched) - 1:
            for partition, offset in settled.items():
                tracker.settle(("t", partition), offset)
            settled.clear()
            done = index + 1  # the messages recorded so far
            check(tracker, messages[:done], unacked[:done])
    for index in ack_order:
        OffsetTracker.ack(tickets[index])
        unacked[index] -= 1
        check(tracker, messages, unacked)
    for partition in (0, 1):
        offsets = [off for p, off, _ in messages if p == partition]
        assert tracker.committable(("t", partition)) == (offsets[-1] + 1 if offsets else None)
