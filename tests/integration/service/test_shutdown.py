"""Shutdown: SIGTERM mid-run exits 0 within 10 s with offsets committed for all acknowledged work.

"All acknowledged work" is checked from the outside: every alert on the alert topic comes from an
input offset below the group's committed offset for its partition (the replica committed up to
everything it had produced), and the committed offsets moved but did not reach the end (it was
really mid-run). A second run then finishes the input: no expected alert is missing.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.harness._jvm import wait_until
from tests.integration.service.conftest import (
    ServiceProcess,
    Topics,
    alert_keys,
    committed,
    end_offsets,
    produce,
    read_all,
    service_env,
    wait_committed_to_end,
)
from tests.integration.service.corpus import build_corpus, scan_alert_ids

pytestmark = pytest.mark.integration


def test_sigterm_mid_run_commits_acknowledged_work_and_exits_0(
    bootstrap: str,
    topics: Topics,
    group_id: str,
    subprocesses: Callable[[Mapping[str, str]], ServiceProcess],
    tmp_path: Path,
) -> None:
    records = build_corpus(execs=600, routine=12_000, seed=5)
    expected = set(scan_alert_ids(records, tmp_path))
    produce(bootstrap, topics.inputs, records)
    ends = end_offsets(bootstrap, topics.inputs)
    env = service_env(bootstrap, topics, group_id, commit_interval="1")
    proc = subprocesses(env)

    def some_progress() -> bool:
        offsets = committed(bootstrap, group_id, topics.inputs, topics.partitions)
        return sum(max(o, 0) for o in offsets.values()) > len(records) // 10

    wait_until(
        some_progress, timeout=60, what="a tenth of the input committed", alive=proc.check_alive
    )
    signalled = time.monotonic()
    proc.signal(signal.SIGTERM)
    code = proc.wait(15)
    took = time.monotonic() - signalled
    print(f"\nSIGTERM -> exit {code} in {took:.2f}s")
    assert code == 0, proc.log_tail()
    assert took < 10

    after = committed(bootstrap, group_id, topics.inputs, topics.partitions)
    assert sum(after.values()) < sum(ends.values()), "the run finished before the signal"
    alerts = read_all(bootstrap, topics.alerts)
    for msg in alerts:
        source = json.loads(msg.value())["source"]
        assert source["offset"] < after[source["partition"]], (source, after)
    lines = [json.loads(line) for line in proc.log_path.read_text().splitlines() if line]
    stopping = [line for line in lines if line["event"] == "service_stopping"]
    assert [line["reason"] for line in stopping] == ["SIGTERM"]
    stopped = [line for line in lines if line["event"] == "service_stopped"]
    assert len(stopped) == 1
    logged = {int(k.rsplit("[", 1)[1].rstrip("]")): v for k, v in stopped[0]["committed"].items()}
    assert all(after[p] == offset for p, offset in logged.items())  # what it says it committed

    second = subprocesses(env)  # the next replica finishes the work
    wait_committed_to_end(bootstrap, group_id, topics.inputs, timeout=120, alive=second.check_alive)
    second.signal(signal.SIGTERM)
    assert second.wait(15) == 0
    keys = alert_keys(read_all(bootstrap, topics.alerts))
    assert set(keys) == expected
    print(f"alerts {len(expected)}, duplicates after the restart: {sum(keys.values()) - len(keys)}")
