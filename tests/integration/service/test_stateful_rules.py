"""Stateful rules through ``auditstream run`` on the real broker: both hops (input -> candidates
on the repartition topic -> state, alerts), the changelog, and a restart that restores the state
from the changelog alone (the local store deleted), with the alerts ``scan`` gives on the same
events in the same order, and no new term alerted twice."""

from __future__ import annotations

import json
import random
import signal
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from auditstream.detections.alert import SourceRef
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.loader import load_rules
from auditstream.stream.cli.main import in_process_state, main
from auditstream.stream.kafka.topics import ensure_topics
from auditstream.stream.settings import load_settings
from devtools.jvm.process import wait_until
from tests.integration.service.conftest import (
    Deployment,
    ServiceProcess,
    StartInProcess,
    StartProcess,
    committed,
    end_offsets,
    produce,
)

pytestmark = pytest.mark.integration

RULES = Path(__file__).parent / "stateful_rules"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
STATE_TOPICS = ("repartition", "changelog")
LEARNING_USERS = 60
"""Enough users in the learning phase that every repartition partition has history."""


def secret_read(user: str, minute: float, n: int) -> dict[str, Any]:
    stamp = (T0 + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": f"5b0c2d1e-0000-4000-8000-{n:012d}",
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/prod/secrets/db",
        "verb": "get",
        "user": {"username": user, "groups": ["system:authenticated"]},
        "sourceIPs": ["10.0.0.7"],
        "userAgent": "kubectl/v1.31.0",
        "objectRef": {"resource": "secrets", "namespace": "prod", "name": "db", "apiVersion": "v1"},
        "responseStatus": {"code": 200},
        "requestReceivedTimestamp": stamp,
        "stageTimestamp": stamp,
        "annotations": {"authorization.k8s.io/decision": "allow"},
    }


def _phase_one() -> list[dict[str, Any]]:
    events = [secret_read(f"u{i}", i * 2.5 / LEARNING_USERS, i) for i in range(LEARNING_USERS)]
    # seen 1.5 to 2 minutes before: inside the history window (now-3m to now-1m): known
    events += [secret_read(f"u{i}", 4, 100 + i) for i in range(LEARNING_USERS - 4, LEARNING_USERS)]
    events += [secret_read(f"n{i}", 4 + i / 10, 200 + i) for i in range(3)]  # new: alerts
    return events


def _phase_two() -> list[dict[str, Any]]:
    return [
        secret_read("n0", 6, 300),  # alerted in phase one: known now, after the restore
        secret_read("n1", 6, 301),
        secret_read("n9", 6.1, 302),  # new
    ]


def _scan_alert_ids(events: Sequence[dict[str, Any]]) -> list[str]:
    """What the offline scan gives for these events in this order (one in-memory partition)."""
    rules = load_rules([RULES], builtin=False).rules
    state = in_process_state(rules, allowed_lateness=600)
    pipeline = DetectionPipeline(Detector(rules), RecentAlerts(1000), state=state)
    ids: list[str] = []
    for event in events:
        found = pipeline.process_message(json.dumps(event).encode(), SourceRef("file"))
        ids += [alert.alert_id for alert in found.alerts]
    return ids


def _wait_done(
    deployment: Deployment, alive: Callable[[], None], repartition: str, timeout: float = 60
) -> None:
    """Input and repartition topics committed to their ends (both hops finished)."""
    bootstrap, group = deployment.bootstrap, deployment.group

    def done() -> bool:
        for topic in (deployment.topics.inputs, repartition):
            ends = {p: e for p, e in end_offsets(bootstrap, topic).items() if e}
            found = committed(bootstrap, group, topic, 6)
            if any(found.get(p, -1) != e for p, e in ends.items()):
                return False
        return True

    wait_until(done, timeout=timeout, what="both hops committed", alive=alive)


def test_new_terms_on_the_broker_alert_as_scan_and_restore_from_the_changelog(
    deployment: Deployment, in_process: StartInProcess, tmp_path: Path
) -> None:
    env = deployment.env(rules=str(RULES), builtin_rules="false", state_dir=str(tmp_path / "state"))
    settings = load_settings(None, env)
    report = ensure_topics(settings, create=True, stateful=True)
    created = {r.spec.role: r.status for r in report.topics if r.spec.role in STATE_TOPICS}
    assert created == dict.fromkeys(STATE_TOPICS, "created")
    repartition = settings.topics.repartition

    first = _phase_one()
    deployment.produce([json.dumps(e).encode() for e in first], keys=[b"k"] * len(first))
    running = in_process(env)
    _wait_done(deployment, running.check_alive, repartition)
    assert running.stop() == 0
    expected = _scan_alert_ids(first)
    assert len(expected) == 3
    alerts = [json.loads(m.value() or b"") for m in deployment.alerts()]
    assert sorted(a["alert_id"] for a in alerts) == sorted(expected)
    assert {a["event"]["user"]["username"] for a in alerts} == {"n0", "n1", "n2"}
    assert all(a["fields"]["new_terms"] == [a["event"]["user"]["username"]] for a in alerts)

    # A replica elsewhere: no local store, only the changelog.
    env["AUDITSTREAM_STATE_DIR"] = str(tmp_path / "elsewhere")
    second = _phase_two()
    deployment.produce([json.dumps(e).encode() for e in second], keys=[b"k"] * len(second))
    running = in_process(env)
    _wait_done(deployment, running.check_alive, repartition)
    registry = running.service.metrics.registry
    assert running.stop() == 0
    restores = registry.get_sample_value("auditstream_state_restore_seconds_count")
    assert restores is not None and restores >= 1
    alerts = [json.loads(m.value() or b"") for m in deployment.alerts()]
    assert sorted(a["alert_id"] for a in alerts) == sorted(_scan_alert_ids(first + second))
    assert sorted(a["event"]["user"]["username"] for a in alerts) == ["n0", "n1", "n2", "n9"]


def _user_stream(seed: int) -> list[tuple[bytes, dict[str, Any]]]:
    """(input key, event) in production order: 600 users learnt in the first 2.5 minutes, then
    6 minutes of reads by known users and by 300 new ones (each new one several times). All
    events of one user share an input key, so their order survives both hops as in scan."""
    rng = random.Random(seed)
    learning = [f"u{i}" for i in range(600)]
    events: list[tuple[bytes, dict[str, Any]]] = []
    n = 0
    for i, user in enumerate(learning):
        events.append((user.encode(), secret_read(user, i * 2.5 / len(learning), n)))
        n += 1
    newcomers = [f"n{i}" for i in range(300)]
    for step in range(3000):
        minute = 4 + step * 4 / 3000  # minutes 4 to 8: the learnt ones are within now-3m..now-1m
        user = rng.choice(newcomers) if rng.random() < 0.5 else rng.choice(learning[400:])
        events.append((user.encode(), secret_read(user, minute, n)))
        n += 1
    return events


@pytest.mark.parametrize("scenario", ["new_terms", "windows"])
def test_stateful_rules_survive_kill_9_and_a_rebalance_to_3_replicas_and_back(
    deployment: Deployment, subprocesses: StartProcess, tmp_path: Path, scenario: str
) -> None:
    """``new_terms``: one new-terms rule over 600 learnt and 300 new users; ``windows``: the
    STATS, sequence and correlation rules over 2,000 events of 20 users."""
    if scenario == "new_terms":
        rules, lateness = RULES, 600.0
        stream = _user_stream(seed=7)
        expected = set(_scan_alert_ids([event for _, event in stream]))
    else:
        rules, lateness = _mixed_rules(tmp_path), 3600.0
        stream = _mixed_stream(count=2000, seed=5)
        expected = set().union(*_scan_by_rule(rules, stream, lateness).values())
    env = deployment.env(
        rules=str(rules), builtin_rules="false", commit_interval="1", log_format="json",
        allowed_lateness=str(lateness),
    )  # fmt: skip
    settings = load_settings(None, env)
    ensure_topics(settings, create=True, stateful=True)
    repartition = settings.topics.repartition
    half = len(stream) // 2

    def replica(name: str) -> ServiceProcess:
        proc = subprocesses({**env, "AUDITSTREAM_STATE_DIR": str(tmp_path / name)})
        wait_until(lambda: "partitions_assigned" in proc.log_path.read_text(errors="replace"),
                   timeout=60, what=f"replica {name} assigned", alive=proc.check_alive)  # fmt: skip
        return proc

    deployment.produce([json.dumps(e).encode() for _, e in stream[:half]],
                       keys=[k for k, _ in stream[:half]])  # fmt: skip
    first = replica("a")
    wait_until(lambda: deployment.committed_total() > 0, timeout=60, what="a first commit",
               alive=first.check_alive)  # fmt: skip
    first.kill()  # mid-stream: work in flight on both hops
    restarted = replica("a")  # its local stores have no checkpoint: rebuilt from the changelog
    more = [replica("b"), replica("c")]  # three replicas: every partition moves
    deployment.produce([json.dumps(e).encode() for _, e in stream[half:]],
                       keys=[k for k, _ in stream[half:]])  # fmt: skip
    time.sleep(3)
    for proc in more:  # back to one replica
        proc.signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    _wait_done(deployment, restarted.check_alive, repartition, timeout=120)
    restarted.signal(signal.SIGTERM)
    assert restarted.wait(60) == 0

    alerts = [json.loads(m.value() or b"") for m in deployment.alerts()]
    # Nothing lost, and nothing extra: a group alerted again after a restore would have a new
    # basis (the event that made it true), hence an id that scan does not give.
    assert {a["alert_id"] for a in alerts} == expected
    print(f"\n{scenario}: {len(expected)} alerts expected; {len(alerts)} alert records "
          f"({len(alerts) - len(expected)} duplicates of an id, at-least-once)")  # fmt: skip


def test_warm_history_lets_new_terms_alert_at_once_and_a_bad_repartition_record_is_a_dead_letter(
    deployment: Deployment, in_process: StartInProcess, tmp_path: Path
) -> None:
    env = deployment.env(rules=str(RULES), builtin_rules="false", state_dir=str(tmp_path / "state"))
    settings = load_settings(None, env)
    ensure_topics(settings, create=True, stateful=True)
    history = tmp_path / "history.jsonl"
    history.write_text(
        "".join(json.dumps(secret_read(f"u{i}", i / 20, i)) + "\n" for i in range(60))
    )
    code = main([
        "state", "warm", "--bootstrap-servers", deployment.bootstrap,
        "--group-id", deployment.group, "--rules", str(RULES), "--no-builtin-rules", str(history),
    ])  # fmt: skip
    assert code == 0
    live = [secret_read("u40", 3.5, 500), secret_read("n0", 3.5, 501)]  # u40: seen at minute 2
    deployment.produce([json.dumps(e).encode() for e in live])
    produce(deployment.bootstrap, settings.topics.repartition, [b"not a candidate"], keys=[b"x"])
    running = in_process(env)
    _wait_done(deployment, running.check_alive, settings.topics.repartition)
    assert running.stop() == 0
    alerts = [json.loads(m.value() or b"") for m in deployment.alerts()]
    # Without the warm history the partition's history would start at minute 3.5: no alert.
    assert [a["event"]["user"]["username"] for a in alerts] == ["n0"]
    (letter,) = deployment.dead_letters()
    headers = dict(letter.headers() or [])
    assert headers["auditstream.dlq.reason"] == b"bad_candidate"
    assert letter.value() == b"not a candidate"


def test_exactly_once_with_a_stateful_rule_is_refused_naming_the_setting(
    deployment: Deployment, in_process: StartInProcess, tmp_path: Path
) -> None:
    env = deployment.env(
        rules=str(RULES), builtin_rules="false", state_dir=str(tmp_path / "state"),
        delivery="exactly-once", transactional_id="stateful-refused",
    )  # fmt: skip
    ensure_topics(load_settings(None, env), create=True, stateful=True)
    running = in_process(env)
    running.thread.join(60)
    assert running.result == [2]


FIXTURES = Path(__file__).parents[2] / "fixtures" / "stateful"
MIXED_RULES = (
    "stats_secret_burst.toml",  # ES|QL STATS: 3 distinct secrets by one identity in 6 minutes
    "sequence_role_then_workload.toml",  # EQL: a role change, then a workload change, in 5m
    "correlation_secret_reads.yml",  # Sigma event_count: 5 secret reads by one user in 10m
)


def _activity(user: str, minute: float, n: int, rng: random.Random) -> dict[str, Any]:
    event = secret_read(user, minute, n)
    kind = rng.choice(["secret", "secret", "secret", "role", "workload"])
    if kind == "secret":
        name = rng.choice(["db", "api", "tls", "ssh"])
        event["objectRef"] = {"resource": "secrets", "namespace": "prod", "name": name}
        event["requestURI"] = f"/api/v1/namespaces/prod/secrets/{name}"
    elif kind == "role":
        event["verb"] = "create"
        event["objectRef"] = {"resource": "roles", "namespace": "prod", "name": f"r{n}",
                              "apiGroup": "rbac.authorization.k8s.io"}  # fmt: skip
        event["requestURI"] = "/apis/rbac.authorization.k8s.io/v1/namespaces/prod/roles"
    else:
        event["verb"] = "patch"
        event["objectRef"] = {"resource": "deployments", "namespace": "prod", "name": "web",
                              "apiGroup": "apps"}  # fmt: skip
        event["requestURI"] = "/apis/apps/v1/namespaces/prod/deployments/web"
    return event


def _mixed_rules(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    for name in MIXED_RULES:
        (rules / name).write_bytes((FIXTURES / name).read_bytes())
    return rules


def _mixed_stream(count: int, seed: int) -> list[tuple[bytes, dict[str, Any]]]:
    """(input key, event): 20 users over 30 minutes, in time order; a user's events share a key."""
    rng = random.Random(seed)
    events: list[tuple[bytes, dict[str, Any]]] = []
    for n in range(count):
        user = f"user-{rng.randrange(20)}"
        events.append((user.encode(), _activity(user, n * 30 / count, n, rng)))
    return events


def _scan_by_rule(
    rules: Path, events: Sequence[tuple[bytes, dict[str, Any]]], lateness: float
) -> dict[str, set[str]]:
    loaded = load_rules([rules], builtin=False).rules
    assert len(loaded) == len(MIXED_RULES)
    state = in_process_state(loaded, allowed_lateness=lateness)
    pipeline = DetectionPipeline(Detector(loaded), RecentAlerts(10_000), state=state)
    expected: dict[str, set[str]] = {}
    for _, event in events:
        found = pipeline.process_message(json.dumps(event).encode(), SourceRef("file"))
        for alert in found.alerts:
            expected.setdefault(alert.rule.rule_id, set()).add(alert.alert_id)
    assert len(expected) == len(MIXED_RULES), "every rule type must alert in the scenario"
    return expected


def test_stats_sequences_and_correlations_on_the_broker_alert_as_scan(
    deployment: Deployment, in_process: StartInProcess, tmp_path: Path
) -> None:
    rules = _mixed_rules(tmp_path)
    events = _mixed_stream(count=600, seed=11)
    lateness = 3600.0  # input partitions are read side by side, not in event-time order
    expected = _scan_by_rule(rules, events, lateness)
    env = deployment.env(rules=str(rules), builtin_rules="false", allowed_lateness=str(lateness),
                         state_dir=str(tmp_path / "state"))  # fmt: skip
    settings = load_settings(None, env)
    ensure_topics(settings, create=True, stateful=True)
    deployment.produce([json.dumps(e).encode() for _, e in events], keys=[k for k, _ in events])
    running = in_process(env)
    _wait_done(deployment, running.check_alive, settings.topics.repartition)
    assert running.stop() == 0
    found: dict[str, set[str]] = {}
    for message in deployment.alerts():
        alert = json.loads(message.value() or b"")
        found.setdefault(alert["rule"]["id"], set()).add(alert["alert_id"])
    assert found == expected
