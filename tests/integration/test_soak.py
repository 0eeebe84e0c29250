"""The chaos soak's short form (issue #16): about 75 s of live input on a 3-node cluster while
replicas are killed (SIGKILL), stopped (SIGTERM), join and leave, and a partition's leader broker
is killed and restarted; poison of every kind is mixed into the input, including one record of
1.5 MB that only the input topic accepts. At-least-once mode, JSON alerts.

Then the invariants: no alert that ``auditstream scan`` finds in the same input is missing from
the alert topic, every poison record is on the dead-letter topic, and the group's committed
offsets reach the end of every input partition. Duplicates are printed, not asserted: they are
at-least-once's documented price. The long form is ``python -m devtools.soak`` (see
docs/reliability.md). A second test, without a broker, breaks each invariant on purpose and
checks that the checker names it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from devtools.jvm.kafka import KafkaCluster
from devtools.soak import CheckResult, SoakConfig, run_soak, text
from devtools.soak.checker import match_poison
from devtools.soak.faults import FaultKind
from devtools.soak.kafka_io import Record
from devtools.soak.poison import Poison

SEED = 16


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_short_chaos_soak_loses_nothing(kafka_cluster3: KafkaCluster, tmp_path: Path) -> None:
    config = SoakConfig(
        duration=75,
        seed=SEED,
        warmup=5,
        fault_gap=(4.0, 8.0),
        broker_downtime=(4.0, 8.0),
        drain_timeout=60,
        workdir=tmp_path / "soak",
    )
    result = run_soak(config, cluster=kafka_cluster3, progress=print)
    print(text(result))

    check = result.check
    assert not check.lost, f"{len(check.lost)} alerts lost: {result.context}"
    assert not check.poison_missing, f"poison not dead-lettered: {check.poison_missing}"
    assert not check.partitions_behind, f"offsets short of the end: {check.partitions_behind}"
    assert not check.unexpected_dead_letters, "audit data was dead-lettered"
    assert not check.unexpected, "alert ids the scan does not give"
    assert check.expected_alerts > 0 and check.poison_expected >= 6
    # The soak did what it says: every kind of fault, each while input was flowing.
    injected = set(result.faults_by_kind)
    assert injected >= {FaultKind.KILL, FaultKind.TERM, FaultKind.JOIN, FaultKind.LEAVE,
                        FaultKind.BROKER}, injected  # fmt: skip


def test_the_checker_names_every_broken_invariant() -> None:
    """A checker that cannot fail proves nothing: each invariant, broken, is reported."""
    poison = [
        Poison("not_json", b"soak-poison-not_json-0", b"{nope", "not_json"),
        Poison("huge", b"soak-poison-huge-0", b"x" * 100, "oversized"),
        Poison("not_utf8", b"soak-poison-not_utf8-0", b"\xff", "not_utf8"),
    ]
    letters = [
        Record(0, 0, b"soak-poison-not_json-0", b"{nope", (("auditstream.dlq.reason", b"not_json"),)),
        # Found by the start of its value: cut to fit, its key lost.
        Record(0, 1, None, b"x" * 10, (("auditstream.dlq.reason", b"oversized"),
                                        ("auditstream.dlq.truncated", b"true"))),
        Record(0, 2, b"audit-id-7", b"{}", (("auditstream.dlq.reason", b"unknown_shape"),
                                             ("auditstream.source.partition", b"3"),
                                             ("auditstream.source.offset", b"41"))),
    ]  # fmt: skip
    matched, mismatches, strays = match_poison(letters, poison)
    assert matched == {b"soak-poison-not_json-0", b"soak-poison-huge-0"}
    assert mismatches == []
    assert strays == ["unknown_shape at input p3@41"]

    result = CheckResult(
        exactly_once=True, expected_alerts=3, alert_records=4, alerts_seen=2, lost=("a3",),
        unexpected=("z9",), duplicates=2, duplicated_ids=1, poison_expected=3,
        poison_dead_lettered=2, poison_missing=("soak-poison-not_utf8-0",), dead_letters=3,
        dead_letter_reasons={}, reason_mismatches=(), truncated_dead_letters=1,
        unexpected_dead_letters=tuple(strays), committed={0: 10, 1: 7}, ends={0: 10, 1: 9},
        undecodable=("a1: KeyError: schema id 2",),
    )  # fmt: skip
    words = " | ".join(result.violations)
    for expected in (
        "1 alert(s) lost",
        "2 duplicate alert record(s) over 1 id(s) in exactly-once",
        "not dead-lettered: soak-poison-not_utf8-0",
        "dead letter(s) of audit data",
        "the scan does not give: z9",
        "p1 7/9",
        "Avro alert(s) do not decode",
    ):
        assert expected in words
    assert result.partitions_behind == {1: (7, 9)}
    # In at-least-once mode the same duplicates are the documented price, not a violation.
    at_least_once = replace(result, exactly_once=False)
    assert len(at_least_once.violations) == len(result.violations) - 1
    assert not any("duplicate" in v for v in at_least_once.violations)
