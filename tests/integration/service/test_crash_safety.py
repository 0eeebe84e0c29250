"""Crash safety: kill -9 the service at random moments, five times, during a run of 50,000 audit
events (streamed in six parts, so that each kill meets work in flight), restarting it each time.
Every expected alert id is on the alert topic at least once, and the group's committed offsets
reach the end of the input. The duplicate count is printed: it is the price of at-least-once
(replayed work since the last commit, and a fresh repeat window after each restart), and
downstream deduplicates on the alert key.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from devtools.jvm.process import wait_until
from tests.integration.service.conftest import Deployment, ServiceProcess, StartProcess
from tests.integration.service.corpus import build_corpus, scan_alert_ids

pytestmark = pytest.mark.integration

KILLS = 5
EVENTS = 50_000


def test_kill_9_five_times_loses_nothing(
    deployment: Deployment, subprocesses: StartProcess, tmp_path: Path
) -> None:
    execs = 2_000  # about three audit events each (some shapes pack them in one record)
    records = build_corpus(execs=execs, routine=EVENTS - 3 * execs, seed=2024)
    expected = set(scan_alert_ids(records, tmp_path))
    # The events stream in during the run: one part before each (re)start, the last one after
    # the last kill, so every kill lands while there is work in flight.
    size = len(records) // (KILLS + 1) + 1
    parts = [records[i : i + size] for i in range(0, len(records), size)]
    # Static membership: a restarted replica takes its predecessor's place at once instead of
    # waiting for the dead member's session to time out (how a StatefulSet would run it).
    env = deployment.env(commit_interval="1", consumer__group_instance_id="crash-test-replica")
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    print(f"\n{len(records)} records in {len(parts)} parts; kill schedule seed {seed}")
    run_started = time.monotonic()
    for kill in range(1, KILLS + 1):
        deployment.produce(parts[kill - 1])
        proc = subprocesses(env)
        wait_until(lambda p=proc: _started(p), timeout=30, what="the service to start",
                   alive=proc.check_alive)  # fmt: skip
        time.sleep(rng.uniform(0.2, 2.0))  # the random moment
        proc.check_alive()
        proc.kill()
        done = deployment.committed_total()
        print(f"kill -9 #{kill} at {time.monotonic() - run_started:.1f}s: committed {done} "
              f"of {sum(len(part) for part in parts[:kill])} produced so far")  # fmt: skip
    deployment.produce(parts[KILLS])
    ends = deployment.input_ends()
    assert sum(ends.values()) == len(records)

    final = subprocesses(env)
    deployment.wait_committed_to_end(timeout=240, alive=final.check_alive)
    final.signal(signal.SIGTERM)
    assert final.wait(15) == 0
    print(f"run with {KILLS} kills took {time.monotonic() - run_started:.1f}s")

    keys = deployment.alert_keys(timeout=60)
    missing = expected - set(keys)
    assert not missing, f"{len(missing)} alerts lost, e.g. {sorted(missing)[:3]}"
    assert set(keys) == expected  # and nothing unexpected
    duplicates = sum(keys.values()) - len(keys)
    print(f"expected alerts {len(expected)}; on the topic {sum(keys.values())}; "
          f"duplicates {duplicates}")  # fmt: skip
    assert deployment.committed() == ends


def _started(proc: ServiceProcess) -> bool:
    return "partitions_assigned" in proc.log_path.read_text(errors="replace")
