"""The stateful engine under any operator: event-time watermark and lateness, the new-terms
history requirement, expiry sweeps, the candidate's wire form, and the local RocksDB store with
the changes it owes its changelog. (The rule types' own semantics are tested beside them.)"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import orjson
from hypothesis import given
from hypothesis import strategies as st

from auditstream.detections.ruleset.meta import RuleMeta
from auditstream.detections.stateful.candidate import Candidate, store_key
from auditstream.detections.stateful.engine import CLOCK_KEY, MAX_STATE_BYTES, StatefulEngine
from auditstream.detections.stateful.event_time import format_time_ms, parse_time_ms
from auditstream.detections.stateful.operator import State, StatefulHit, Step
from auditstream.detections.stateful.rule import StatefulRule
from auditstream.detections.stateful.store import MemoryStore
from auditstream.stream.state.stores import ChangeloggedStore, RocksStore

MINUTE = 60_000


@dataclass(frozen=True)
class PairOperator:
    """A test operator: alert once a key has seen two distinct events within ``span_ms``."""

    span_ms: int = 5 * MINUTE

    @property
    def retention_ms(self) -> int:
        return self.span_ms

    def step(self, state: State | None, candidate: Candidate, *, alerting: bool) -> Step:
        events: dict[str, int] = dict((state or {}).get("events", {}))
        events[candidate.event_id] = candidate.time_ms
        new_state: State = {"events": events}  # trimmed by expire, which the engine calls
        recent = {e for e, t in events.items() if t > candidate.time_ms - self.span_ms}
        if alerting and len(recent) >= 2:
            ids = tuple(sorted(recent))
            return Step(new_state, (StatefulHit("|".join(ids), candidate, events=ids),))
        return Step(new_state)

    def expire(self, state: State, watermark_ms: int) -> State | None:
        events = {e: t for e, t in state["events"].items() if t > watermark_ms - self.span_ms}
        return {"events": events} if events else None


def _meta(rule_id: str) -> RuleMeta:
    return RuleMeta(rule_id, rule_id, "", "low", 21, (), (), (), "test")


def _rule(rule_id: str = "pairs", history_ms: int = 0) -> StatefulRule:
    return StatefulRule(
        _meta(rule_id), "test", "kuery", "test", (), PairOperator(), ("user",), history_ms
    )


def _candidate(event: str, minute: float, key: str = "alice", **more: object) -> Candidate:
    base = Candidate("pairs", 0, (key,), int(minute * MINUTE), event)
    return replace(base, **more)  # type: ignore[arg-type]


def test_two_events_of_one_key_alert_once_and_other_keys_do_not_mix() -> None:
    part = StatefulEngine([_rule()], allowed_lateness_ms=MINUTE).partition(MemoryStore())
    assert part.apply(_candidate("a/1", 0)).hits == ()
    assert part.apply(_candidate("b/1", 1, key="bob")).hits == ()
    (hit,) = part.apply(_candidate("a/2", 2)).hits
    assert hit.events == ("a/1", "a/2")


def test_a_replayed_event_is_not_counted_twice_and_gives_the_same_basis() -> None:
    store = MemoryStore()
    part = StatefulEngine([_rule()], allowed_lateness_ms=MINUTE).partition(store)
    part.apply(_candidate("a/1", 0))
    assert part.apply(_candidate("a/1", 0)).hits == ()  # the same event again: still one
    first = part.apply(_candidate("a/2", 1)).hits
    before = dict(store.data)
    again = part.apply(_candidate("a/2", 1)).hits
    assert [h.basis for h in again] == [h.basis for h in first]
    assert store.data == before


def test_an_event_behind_the_watermark_is_late_and_not_applied() -> None:
    store = MemoryStore()
    part = StatefulEngine([_rule()], allowed_lateness_ms=2 * MINUTE).partition(store)
    part.apply(_candidate("a/1", 10))
    within = part.apply(_candidate("a/2", 8.5))  # 1.5 minutes late: allowed
    assert not within.late and within.hits
    late = part.apply(_candidate("x/1", 7, key="carol"))  # 3 minutes behind the newest
    assert late.late and part.late == 1
    assert store.get(store_key("pairs", ("carol",))) is None


def test_history_must_cover_the_window_before_a_rule_alerts() -> None:
    part = StatefulEngine([_rule(history_ms=60 * MINUTE)], allowed_lateness_ms=MINUTE).partition(
        MemoryStore()
    )
    part.apply(_candidate("a/1", 0))
    learning = part.apply(_candidate("a/2", 1))
    assert learning.learning and learning.hits == ()
    part.apply(_candidate("b/1", 61, key="bob"))
    assert part.apply(_candidate("b/2", 62, key="bob")).hits  # 62 minutes of history now


def test_warm_candidates_build_history_without_alerting() -> None:
    part = StatefulEngine([_rule(history_ms=60 * MINUTE)], allowed_lateness_ms=MINUTE).partition(
        MemoryStore()
    )
    part.apply(_candidate("h/1", 0, key="old", warm=True))
    assert part.apply(_candidate("h/2", 1, key="old", warm=True)).hits == ()
    assert part.history_from_ms("pairs") == 0
    part.apply(_candidate("a/1", 70))
    assert part.apply(_candidate("a/2", 71)).hits


def test_sweep_expires_what_the_watermark_passed_and_persists_the_clock() -> None:
    store = MemoryStore()
    engine = StatefulEngine([_rule()], allowed_lateness_ms=MINUTE)
    part = engine.partition(store)
    part.apply(_candidate("a/1", 0))
    part.apply(_candidate("b/1", 30, key="bob"))
    swept = part.sweep()
    assert swept.removed == 1 and swept.keys == {"pairs": 1}
    assert store.get(store_key("pairs", ("alice",))) is None
    assert orjson.loads(store.data[CLOCK_KEY]) == 30 * MINUTE
    assert engine.partition(store).watermark_ms == 29 * MINUTE  # the clock survives a restart


def test_candidates_of_a_rule_no_longer_loaded_are_ignored() -> None:
    part = StatefulEngine([], allowed_lateness_ms=MINUTE).partition(MemoryStore())
    assert part.apply(_candidate("a/1", 0)).unknown_rule


scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**62), 2**62), st.text(max_size=20))


@given(
    key=st.lists(scalars, max_size=3),
    row=st.dictionaries(st.text(max_size=8), st.one_of(scalars, st.lists(st.text(), max_size=3))),
    time_ms=st.integers(0, 2**45),
    warm=st.booleans(),
)
def test_a_candidate_crosses_the_repartition_topic_unchanged(
    key: list[object], row: dict[str, object], time_ms: int, warm: bool
) -> None:
    row_values = {k: tuple(v) if isinstance(v, list) else v for k, v in row.items()}
    candidate = Candidate(
        "r", 1, tuple(key), time_ms, "id/ResponseComplete", row_values,  # type: ignore[arg-type]
        {"auditID": "id"}, {"kind": "kafka", "topic": "t"}, warm,
    )  # fmt: skip
    assert Candidate.from_bytes(candidate.to_bytes()) == candidate


def test_bytes_that_are_no_candidate_are_a_value_error() -> None:
    for data in (b"", b"[]", b'{"r": "x"}', b"\xff"):
        try:
            Candidate.from_bytes(data)
        except ValueError:
            continue
        raise AssertionError(f"{data!r} was taken for a candidate")


def test_event_time_reads_rfc3339_with_any_fraction_and_offset() -> None:
    assert parse_time_ms("2025-01-15T10:00:00.123456Z") == 1736935200123
    assert parse_time_ms("2025-01-15T12:00:00.1+02:00") == 1736935200100
    assert parse_time_ms("2025-01-15T10:00:00Z") == 1736935200000
    assert parse_time_ms("2025-02-30T10:00:00Z") is None
    assert parse_time_ms("yesterday") is None
    assert format_time_ms(1736935200123) == "2025-01-15T10:00:00.123Z"


def test_rocks_store_records_changes_and_keeps_a_checkpoint_only_when_closed_cleanly(
    tmp_path: Path,
) -> None:
    store = RocksStore(tmp_path / "p0")
    logged = ChangeloggedStore(store)
    logged.put(b"k1", b"v1")
    logged.put(b"k2", b"v2")
    logged.delete(b"k1")
    assert logged.take_changes() == [(b"k1", b"v1"), (b"k2", b"v2"), (b"k1", None)]
    assert logged.take_changes() == []
    assert list(store.items()) == [(b"k2", b"v2")]
    assert store.read_checkpoint() is None
    store.write_checkpoint(42)
    store.close()
    reopened = RocksStore(tmp_path / "p0")
    assert reopened.read_checkpoint() == 42 and reopened.get(b"k2") == b"v2"
    reopened.drop_checkpoint()
    assert reopened.read_checkpoint() is None
    reopened.delete(b"missing")  # deleting what is not there is not an error
    reopened.close()


@dataclass(frozen=True)
class HoardOperator:
    """A test operator that keeps every candidate's row: its state grows without bound."""

    @property
    def retention_ms(self) -> int:
        return 10**12

    def step(self, state: State | None, candidate: Candidate, *, alerting: bool) -> Step:
        del alerting  # it never alerts
        rows = [*(state or {}).get("rows", []), candidate.row.get("blob")]
        return Step({"rows": rows})

    def expire(self, state: State, watermark_ms: int) -> State | None:
        del watermark_ms  # it keeps everything
        return state


def test_a_state_too_big_for_a_changelog_record_is_not_applied() -> None:
    rule = replace(_rule(), operator=HoardOperator())
    store = MemoryStore()
    part = StatefulEngine([rule], allowed_lateness_ms=MINUTE).partition(store)
    blob = "x" * 200_000
    results = [part.apply(_candidate(f"a/{n}", n, row={"blob": blob})) for n in range(5)]
    assert [r.oversized for r in results] == [False, False, False, True, True]
    assert part.oversized == 2
    kept = store.get(store_key("pairs", ("alice",)))
    assert kept is not None and len(kept) <= MAX_STATE_BYTES
    assert len(orjson.loads(kept)["rows"]) == 3  # the last state that fitted


def test_each_step_leaves_only_what_the_watermark_has_not_passed() -> None:
    store = MemoryStore()
    part = StatefulEngine([_rule()], allowed_lateness_ms=MINUTE).partition(store)
    for minute in range(0, 60, 2):  # one event every 2 minutes, a 5-minute span
        part.apply(_candidate(f"a/{minute}", minute))
    held = orjson.loads(store.data[store_key("pairs", ("alice",))])["events"]
    assert sorted(held.values()) == [54 * MINUTE, 56 * MINUTE, 58 * MINUTE]  # 57 - 5 minutes
