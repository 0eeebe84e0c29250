"""``python -m benchmarks.run --quick`` end to end against a real broker: every contender runs.

The figures of a quick run mean nothing (a few thousand events, cold processes); what this
checks is that the harness still starts our service, the baselines and the latency probe, and
that each of them sees the alerts the data set holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "out" / "results-quick.json"


def test_quick_benchmark_runs_every_contender() -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--only", "a,b,c,e,f"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(RESULTS.read_text())
    for key in ("a", "b", "c", "e"):
        assert results[key]["events_per_s"] > 0, results[key]
    malicious_alerts = results["b"]["alerts"]
    assert malicious_alerts > 0
    assert results["e"]["alerts"] == malicious_alerts  # scan and run agree on the same events
    assert results["f"]["samples"] > 0 and results["f"]["missing"] == 0
    assert time.monotonic() - started < 120
