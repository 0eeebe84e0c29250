"""The invariant checker: after the run, what is on the output topics against what must be there.

It reads as downstream reads (``read_committed``: in exactly-once mode, output of aborted
transactions does not count) and checks:

1. **no alert lost**: every alert id ``auditstream scan`` gives for the same input is on the
   alert topic (records are keyed by ``alert_id``);
2. **duplicates**: records beyond the first per alert id are counted; in exactly-once mode there
   must be none, in at-least-once mode they are the documented price (downstream deduplicates on
   the key);
3. **no poison dropped**: every poison record is on the dead-letter topic, found by its key (or
   by its value, or the start of it when the service had to cut a record too big to produce);
4. **no audit data dead-lettered**: every dead letter is one of the poison records;
5. **no alert invented**: every alert id on the topic is one the scan gives;
6. **offsets at the end**: the group's committed offset of every input partition is the
   partition's end offset (every record was processed and its outputs acknowledged);
7. with Avro alerts, **every alert decodes** with the schema its frame names, fetched from the
   registry as it is after the run (:mod:`devtools.soak.avro_check`).

The answer is a :class:`CheckResult`; :attr:`CheckResult.violations` says in words what broke.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from devtools.soak.avro_check import undecodable_alerts
from devtools.soak.config import TopicNames
from devtools.soak.kafka_io import Record, committed, end_offsets, read_topic
from devtools.soak.poison import Poison

__all__ = ["CheckResult", "check", "match_poison"]

REASON_HEADER: Final = "auditstream.dlq.reason"
TRUNCATED_HEADER: Final = "auditstream.dlq.truncated"
SOURCE_PARTITION_HEADER: Final = "auditstream.source.partition"
SOURCE_OFFSET_HEADER: Final = "auditstream.source.offset"
SHOWN: Final = 5
"""Examples quoted per violation."""


@dataclass(frozen=True, slots=True)
class CheckResult:
    """What the output topics and the group's offsets hold after the run."""

    exactly_once: bool
    expected_alerts: int
    alert_records: int
    alerts_seen: int
    """Distinct alert ids on the topic."""
    lost: tuple[str, ...]
    unexpected: tuple[str, ...]
    duplicates: int
    """Alert records beyond the first of their id."""
    duplicated_ids: int
    poison_expected: int
    poison_dead_lettered: int
    poison_missing: tuple[str, ...]
    """Keys of poison records not on the dead-letter topic."""
    dead_letters: int
    """Records on the dead-letter topic."""
    dead_letter_reasons: Mapping[str, int]
    reason_mismatches: tuple[str, ...]
    """Poison dead-lettered with a reason other than the one expected (reported only)."""
    truncated_dead_letters: int
    unexpected_dead_letters: tuple[str, ...]
    """Dead letters that are not poison: audit data refused (reason and source)."""
    committed: Mapping[int, int]
    ends: Mapping[int, int]
    undecodable: tuple[str, ...] = ()
    """Avro alerts that do not decode (key and why); always empty for JSON alerts."""

    @property
    def partitions_behind(self) -> dict[int, tuple[int, int]]:
        """Input partition -> (committed, end) where the group has not committed to the end."""
        return {
            p: (self.committed.get(p, -1), end)
            for p, end in self.ends.items()
            if self.committed.get(p, -1) != end
        }

    @property
    def violations(self) -> list[str]:
        """Each broken invariant, in words, with a few examples."""
        found: list[str] = []
        if self.lost:
            found.append(f"{len(self.lost)} alert(s) lost, e.g. {_some(self.lost)}")
        if self.exactly_once and self.duplicates:
            found.append(
                f"{self.duplicates} duplicate alert record(s) over {self.duplicated_ids} id(s) "
                "in exactly-once mode"
            )
        if self.poison_missing:
            found.append(
                f"{len(self.poison_missing)} poison record(s) not dead-lettered: "
                f"{_some(self.poison_missing)}"
            )
        if self.unexpected_dead_letters:
            found.append(
                f"{len(self.unexpected_dead_letters)} dead letter(s) of audit data: "
                f"{_some(self.unexpected_dead_letters)}"
            )
        if self.unexpected:
            found.append(
                f"{len(self.unexpected)} alert id(s) the scan does not give: "
                f"{_some(self.unexpected)}"
            )
        if self.partitions_behind:
            behind = ", ".join(
                f"p{p} {c if c >= 0 else 'none'}/{e}"
                for p, (c, e) in sorted(self.partitions_behind.items())
            )
            found.append(f"committed offsets short of the end (committed/end): {behind}")
        if self.undecodable:
            found.append(
                f"{len(self.undecodable)} Avro alert(s) do not decode: {_some(self.undecodable)}"
            )
        return found

    @property
    def ok(self) -> bool:
        return not self.violations


def check(
    bootstrap: str,
    names: TopicNames,
    *,
    partitions: int,
    alert_partitions: int,
    dead_letter_partitions: int,
    expected: frozenset[str],
    poison: Sequence[Poison],
    exactly_once: bool,
    registry_url: str | None = None,
    timeout: float = 120.0,
) -> CheckResult:
    """Read the topics and the group's offsets (the replicas are stopped) and compare; with a
    ``registry_url`` (Avro alerts) also decode every alert."""
    alerts = read_topic(bootstrap, names.alerts, alert_partitions, timeout=timeout)
    letters = read_topic(bootstrap, names.dead_letters, dead_letter_partitions, timeout=timeout)
    ends = end_offsets(bootstrap, names.inputs, partitions)
    offsets = committed(bootstrap, names.group, names.inputs, partitions)
    keys = Counter((r.key or b"").decode(errors="replace") for r in alerts)
    seen = set(keys)
    matched, mismatches, strays = match_poison(letters, poison)
    return CheckResult(
        exactly_once=exactly_once,
        expected_alerts=len(expected),
        alert_records=len(alerts),
        alerts_seen=len(seen),
        lost=tuple(sorted(expected - seen)),
        unexpected=tuple(sorted(seen - expected)),
        duplicates=sum(keys.values()) - len(keys),
        duplicated_ids=sum(1 for count in keys.values() if count > 1),
        poison_expected=len(poison),
        poison_dead_lettered=len(matched),
        poison_missing=tuple(p.key.decode() for p in poison if p.key not in matched),
        dead_letters=len(letters),
        dead_letter_reasons=dict(Counter(_reason(r) for r in letters)),
        reason_mismatches=tuple(mismatches),
        truncated_dead_letters=sum(1 for r in letters if r.header(TRUNCATED_HEADER) == b"true"),
        unexpected_dead_letters=tuple(strays),
        committed=offsets,
        ends=ends,
        undecodable=tuple(undecodable_alerts(alerts, registry_url) if registry_url else ()),
    )


def match_poison(
    letters: Sequence[Record], poison: Sequence[Poison]
) -> tuple[set[bytes], list[str], list[str]]:
    """(keys of the poison found, reason mismatches, dead letters that are no poison)."""
    by_key = {p.key: p for p in poison}
    by_value = {p.value: p for p in poison}
    matched: set[bytes] = set()
    mismatches: list[str] = []
    strays: list[str] = []
    for letter in letters:
        found = _poison_of(letter, by_key, by_value)
        if found is None:
            strays.append(
                f"{_reason(letter)} at input p{_text(letter, SOURCE_PARTITION_HEADER)}"
                f"@{_text(letter, SOURCE_OFFSET_HEADER)}"
            )
            continue
        if found.key not in matched and _reason(letter) != found.reason:
            mismatches.append(f"{found.key.decode()}: {_reason(letter)} (not {found.reason})")
        matched.add(found.key)
    return matched, mismatches, strays


def _poison_of(
    letter: Record, by_key: Mapping[bytes, Poison], by_value: Mapping[bytes, Poison]
) -> Poison | None:
    if letter.key is not None and letter.key in by_key:
        return by_key[letter.key]
    value = letter.value or b""
    if value in by_value:
        return by_value[value]
    if value and letter.header(TRUNCATED_HEADER) == b"true":
        return next((p for v, p in by_value.items() if v.startswith(value)), None)
    return None


def _reason(letter: Record) -> str:
    return _text(letter, REASON_HEADER)


def _text(letter: Record, header: str) -> str:
    value = letter.header(header)
    return "?" if value is None else value.decode(errors="replace")


def _some(items: Sequence[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (", ..." if len(items) > SHOWN else "")
