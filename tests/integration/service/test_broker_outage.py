"""Broker outage: the (only) broker stops for 20 s mid-run and comes back. The service does not
exit: its loop keeps turning (``/healthz`` stays 200), it reports not ready while no broker answers,
commits that fail are held and retried, and when the broker is back it finishes the input.
Nothing is lost.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from devtools.jvm.kafka import KafkaCluster
from devtools.jvm.process import wait_until
from tests.integration.service.conftest import Deployment, StartInProcess
from tests.integration.service.corpus import build_corpus, scan_alert_ids

pytestmark = pytest.mark.integration

OUTAGE = 20.0


def test_broker_stopped_for_20s_mid_run(
    own_cluster: KafkaCluster,
    own_deployment: Deployment,
    in_process: StartInProcess,
    tmp_path: Path,
) -> None:
    records = build_corpus(execs=500, routine=15_000, seed=42)
    expected = set(scan_alert_ids(records, tmp_path))
    own_deployment.produce(records)
    ends = own_deployment.input_ends()
    running = in_process(own_deployment.env(commit_interval="1"))
    wait_until(lambda: running.service.http_port is not None, timeout=30, what="the endpoint")
    base = f"http://127.0.0.1:{running.service.http_port}"

    wait_until(lambda: own_deployment.committed_total() > 2_000, timeout=60,
               what="progress before the outage", alive=running.check_alive)  # fmt: skip
    assert _get(f"{base}/readyz") == 200

    own_cluster.stop_node(0)
    stopped = time.monotonic()
    probes: Counter[tuple[str, int]] = Counter()
    while time.monotonic() - stopped < OUTAGE:
        running.check_alive()  # the service does not exit
        probes[("healthz", _get(f"{base}/healthz"))] += 1
        probes[("readyz", _get(f"{base}/readyz"))] += 1
        time.sleep(0.5)
    own_cluster.start_node(0)
    print(f"\nbroker down for {time.monotonic() - stopped:.1f}s; probes {dict(probes)}")
    assert probes[("healthz", 503)] == 0, "the loop got stuck during the outage"
    assert probes[("readyz", 503)] > 0, "readiness did not notice the outage"

    own_deployment.wait_committed_to_end(timeout=180, alive=running.check_alive)
    # Readiness follows the client statistics (every second here): the last commit can land
    # before the first statistics since the broker came back.
    wait_until(lambda: _get(f"{base}/readyz") == 200, timeout=15, what="readiness after")
    metrics = running.service.metrics.registry
    failures = metrics.get_sample_value(
        "auditstream_commit_failures_total", {"trigger": "interval"}
    )
    assert running.stop() == 0
    assert own_deployment.committed() == ends
    keys = own_deployment.alert_keys(timeout=60)
    missing = expected - set(keys)
    assert not missing, f"{len(missing)} alerts lost"
    assert set(keys) == expected
    print(f"alerts {len(expected)}, duplicates {sum(keys.values()) - len(keys)}, "
          f"interval commit failures during the outage {failures}")  # fmt: skip


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code
