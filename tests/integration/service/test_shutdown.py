"""Shutdown: SIGTERM mid-run exits 0 within 10 s with offsets committed for all acknowledged work.

"All acknowledged work" is checked from the outside: every alert on the alert topic comes from an
input offset below the group's committed offset for its partition (the replica committed up to
everything it had produced). A third of the input is produced only after the signal, so the
committed offsets must stop short of the end (a stopping replica polls no more), however fast
the replica was on the first part. A second run then finishes the input: no expected alert is
missing.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from devtools.jvm.process import wait_until
from tests.integration.service.conftest import Deployment, StartProcess
from tests.integration.service.corpus import build_corpus, scan_alert_ids

pytestmark = pytest.mark.integration


def test_sigterm_mid_run_commits_acknowledged_work_and_exits_0(
    deployment: Deployment, subprocesses: StartProcess, tmp_path: Path
) -> None:
    records = build_corpus(execs=600, routine=12_000, seed=5)
    expected = set(scan_alert_ids(records, tmp_path))
    before, after_signal = records[: len(records) * 2 // 3], records[len(records) * 2 // 3 :]
    deployment.produce(before)
    env = deployment.env(commit_interval="1")
    proc = subprocesses(env)
    wait_until(lambda: deployment.committed_total() > len(before) // 10, timeout=60,
               what="a tenth of the input committed", alive=proc.check_alive)  # fmt: skip
    signalled = time.monotonic()
    proc.signal(signal.SIGTERM)
    deployment.produce(after_signal)
    code = proc.wait(15)
    took = time.monotonic() - signalled
    print(f"\nSIGTERM -> exit {code} in {took:.2f}s")
    assert code == 0, proc.log_tail()
    assert took < 10

    ends = deployment.input_ends()
    after = deployment.committed()
    assert sum(after.values()) < sum(ends.values()), "the stopping replica kept polling"
    print(f"committed {sum(after.values())} of {len(before)} records produced before the signal")
    alerts = deployment.alerts()
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
    deployment.wait_committed_to_end(timeout=120, alive=second.check_alive)
    second.signal(signal.SIGTERM)
    assert second.wait(15) == 0
    keys = deployment.alert_keys()
    assert set(keys) == expected
    print(f"alerts {len(expected)}, duplicates after the restart: {sum(keys.values()) - len(keys)}")
