"""``scan`` and ``rules`` start without what only ``run``, Avro or Sigma files need: the Kafka
service, the Schema Registry client's HTTP stack and pySigma are imported on first use (they were
two fifths of ``scan``'s start-up)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from auditstream.stream.cli import run
from auditstream.stream.service import replica

HEAVY = ("sigma", "confluent_kafka.schema_registry", "auditstream.stream.service.replica")


def _modules_after(args: list[str], cwd: Path) -> set[str]:
    code = (
        "import sys\n"
        "from auditstream.stream.cli.main import main\n"
        f"status = main({args!r})\n"
        "print(' '.join(sorted(sys.modules)))\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.splitlines()[-1].split())  # the last line: the module names


def test_scan_with_the_shipped_rules_imports_none_of_them(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    loaded = _modules_after(["scan", str(empty)], tmp_path)
    assert "auditstream.detections.engine" in loaded  # the probe does see our modules
    assert not {m for m in loaded for heavy in HEAVY if m == heavy or m.startswith(heavy + ".")}


def test_a_sigma_file_still_loads_pysigma_on_demand(tmp_path: Path) -> None:
    rule = tmp_path / "exec.yml"
    rule.write_text(
        "title: exec\nid: 2f9c0e0a-1d7e-4a8b-9a57-3c1f0e6b5d21\nstatus: test\n"
        "logsource: {product: kubernetes, service: audit}\n"
        "detection: {selection: {objectRef.subresource: exec}, condition: selection}\n"
        "level: high\n"
    )
    loaded = _modules_after(["rules", "list", "--rules", str(rule)], tmp_path)
    assert "sigma.collection" in loaded


def test_run_exit_codes_are_the_services() -> None:
    assert (run.EXIT_CONFIG, run.EXIT_FATAL) == (replica.EXIT_CONFIG, replica.EXIT_FATAL)
