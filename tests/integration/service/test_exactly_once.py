"""Exactly-once delivery (``delivery = "exactly-once"``) on the real broker: a read_committed
reader of the alert topic sees every expected alert exactly once, even when the replica is
killed with SIGKILL five times during a 50,000-event stream; poison still reaches the
dead-letter topic; the group's committed offsets reach the end of the input.
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest

from devtools.jvm.process import wait_until
from tests.integration.service.conftest import (
    Deployment,
    ServiceProcess,
    StartInProcess,
    StartProcess,
)
from tests.integration.service.corpus import build_corpus, scan_alert_ids

pytestmark = pytest.mark.integration

KILLS = 5
EVENTS = 50_000


def _exactly_once(deployment: Deployment, **extra: str) -> dict[str, str]:
    return deployment.env(
        delivery="exactly-once",
        transactional_id=f"{deployment.group}-replica-0",
        # Static membership: a restarted replica takes its predecessor's place at once.
        consumer__group_instance_id=f"{deployment.group}-replica-0",
        **extra,
    )


def test_exactly_once_alerts_once_and_dead_letters_poison(
    deployment: Deployment, in_process: StartInProcess, tmp_path: Path
) -> None:
    good = build_corpus(execs=40, routine=400, seed=11)
    poison = [b"not json at all", json.dumps({"kind": "Status"}).encode()]
    deployment.produce([*good[:200], *poison, *good[200:]])
    running = in_process(_exactly_once(deployment))
    deployment.wait_committed_to_end(timeout=90, alive=running.check_alive)
    assert running.stop() == 0
    keys = deployment.alert_keys()
    assert set(keys) == set(scan_alert_ids(good, tmp_path))
    assert max(keys.values()) == 1, "a read_committed reader sees each alert once"
    assert sorted(m.value() for m in deployment.dead_letters()) == sorted(poison)
    commits = running.service.metrics.registry.get_sample_value(
        "auditstream_commits_total", {"trigger": "transaction"}
    )
    assert commits and commits >= 1


def test_kill_9_five_times_gives_no_loss_and_no_duplicate(
    deployment: Deployment, subprocesses: StartProcess, tmp_path: Path
) -> None:
    execs = 2_000
    records = build_corpus(execs=execs, routine=EVENTS - 3 * execs, seed=4242)
    expected = set(scan_alert_ids(records, tmp_path))
    size = len(records) // (KILLS + 1) + 1
    parts = [records[i : i + size] for i in range(0, len(records), size)]
    env = _exactly_once(deployment)
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    print(f"\n{len(records)} records in {len(parts)} parts; kill schedule seed {seed}")
    started = time.monotonic()
    for kill in range(1, KILLS + 1):
        deployment.produce(parts[kill - 1])
        proc = subprocesses(env)
        wait_until(lambda p=proc: _started(p), timeout=30, what="the service to start",
                   alive=proc.check_alive)  # fmt: skip
        time.sleep(rng.uniform(0.2, 2.0))
        proc.check_alive()
        proc.kill()
        print(f"kill -9 #{kill} at {time.monotonic() - started:.1f}s: "
              f"committed {deployment.committed_total()}")  # fmt: skip
    deployment.produce(parts[KILLS])
    ends = deployment.input_ends()
    final = subprocesses(env)
    deployment.wait_committed_to_end(timeout=240, alive=final.check_alive)
    final.signal(signal.SIGTERM)
    assert final.wait(15) == 0
    print(f"run with {KILLS} kills took {time.monotonic() - started:.1f}s")

    keys = deployment.alert_keys(timeout=60)
    missing = expected - set(keys)
    assert not missing, f"{len(missing)} alerts lost, e.g. {sorted(missing)[:3]}"
    assert set(keys) == expected
    duplicates = {key: count for key, count in keys.items() if count > 1}
    print(f"expected alerts {len(expected)}; on the topic {sum(keys.values())}; "
          f"duplicates {len(duplicates)}")  # fmt: skip
    assert not duplicates, f"{len(duplicates)} alert ids seen twice, e.g. {list(duplicates)[:3]}"
    assert deployment.committed() == ends


def _started(proc: ServiceProcess) -> bool:
    return "partitions_assigned" in proc.log_path.read_text(errors="replace")
