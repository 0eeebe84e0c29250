"""The service image, built from compose/Dockerfile and run for real.

No Docker engine runs here, so devtools.image builds the image with buildah on a Debian base made
by mmdebstrap (the Dockerfile's public base stays its default), once per session, and every test
runs commands in it with ``buildah run`` on the host network, as the service user, with every
directory of the image read-only (see ``Container.read_only_volumes``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.image import SERVICE_UID, Container, build, process_in, stop_gracefully
from devtools.jvm.kafka import KafkaCluster
from devtools.jvm.process import REPO_ROOT
from tests.conftest import CreateTopic
from tests.integration.service.conftest import Deployment, Topics
from tests.integration.service.corpus import build_corpus, scan_alert_ids

pytestmark = pytest.mark.integration

SAMPLE = REPO_ROOT / "examples" / "audit-sample.jsonl"
DEV_FOLDERS = ("tests", "benchmarks", "devtools")


@pytest.fixture(scope="session")
def image() -> str:
    """Built (or found up to date) once per session."""
    return build()


@pytest.fixture
def container(image: str) -> Iterator[Container]:
    with Container.create(image) as working:
        yield working


def run_in(
    container: Container, argv: list[str], **options: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        container.command(argv, **options), capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip


def python_in(container: Container, script: str, **options: Any) -> Any:
    """Run a Python script with the image's interpreter; its stdout, decoded as JSON."""
    done = run_in(container, ["python", "-c", script], **options)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _without_clock(stdout: str) -> list[dict[str, Any]]:
    alerts = [json.loads(line) for line in stdout.splitlines()]
    for alert in alerts:
        del alert["detected_at"]
    return alerts


def test_scan_in_the_image_gives_the_hosts_alerts_and_summary(container: Container) -> None:
    """Same alerts (all fields but the detection time) and the same summary, byte for byte."""
    inside = run_in(
        container, ["auditstream", "scan", SAMPLE.name],
        volumes=[f"{SAMPLE.parent}:/input:ro"], workdir="/input",
    )  # fmt: skip
    host = subprocess.run(
        [sys.executable, "-m", "auditstream.stream", "scan", SAMPLE.name],
        cwd=SAMPLE.parent, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert (inside.returncode, host.returncode) == (0, 0), inside.stderr
    alerts = _without_clock(inside.stdout)
    assert alerts == _without_clock(host.stdout)
    assert len(alerts) == 11
    assert inside.stderr == host.stderr
    assert "11 alerts" in inside.stderr and "2 malformed" in inside.stderr


def test_run_in_the_image_alerts_on_a_real_stream_like_scan(
    container: Container,
    kafka_cluster: KafkaCluster,
    create_topic: CreateTopic,
    group_id: str,
    tmp_path: Path,
) -> None:
    """``auditstream run`` in the image, as uid 10001 with nothing writable, consumes the
    loopback broker's topic to the end: exactly scan's alert ids, no dead letters, exit 0."""
    topics = Topics(create_topic(partitions=6), create_topic(partitions=3), create_topic(), 6)
    deployment = Deployment(kafka_cluster.bootstrap, topics, group_id)
    records = build_corpus(execs=40, routine=200, seed=23)
    expected = scan_alert_ids(records, tmp_path)
    assert len(expected) == len(set(expected)) > 10
    deployment.produce(records)
    log = tmp_path / "service.log"
    env = deployment.env(http_host="127.0.0.1")
    with log.open("wb") as out:
        runner = subprocess.Popen(
            container.command(["auditstream", "run"], env=env), stdout=out, stderr=subprocess.STDOUT
        )

    def alive() -> None:
        if runner.poll() is not None:
            raise AssertionError(f"exited with {runner.returncode}:\n{log.read_text()[-4000:]}")

    try:
        deployment.wait_committed_to_end(timeout=120, alive=alive)
        status = Path(f"/proc/{process_in(runner.pid)}/status").read_text()
        (uids,) = [line.split()[1:] for line in status.splitlines() if line.startswith("Uid:")]
        assert set(uids) == {str(SERVICE_UID)}  # real, effective, saved and filesystem uid
        stop_gracefully(runner.pid)
        assert runner.wait(60) == 0, log.read_text()[-4000:]
    finally:
        _kill(runner)
    assert deployment.alert_keys() == Counter(expected)
    assert deployment.dead_letters() == []
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert sum(e["event"] == "alert_emitted" for e in events) == len(expected)


def _kill(runner: subprocess.Popen[bytes]) -> None:
    """buildah killed with SIGKILL would leave its command running: kill that first."""
    if runner.poll() is None:
        try:
            os.kill(process_in(runner.pid), signal.SIGKILL)
        finally:
            runner.kill()
            runner.wait(30)


WRITE_PROBE = """
import errno, json, os
result = {}
for folder in ["/", "/etc", "/opt/auditstream", "/usr", "/var", "/tmp", "/var/tmp", "/run",
               "/run/lock", "/home", "/root", "/srv", "/mnt"]:
    try:
        with open(os.path.join(folder, "probe"), "w"):
            result[folder] = "written"
    except OSError as err:
        result[folder] = errno.errorcode[err.errno]
writable = []
for top, dirs, files in os.walk("/"):
    if top == "/":
        dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]  # the kernel's, not ours
    writable += [p for p in [top, *(os.path.join(top, f) for f in files)] if os.access(p, os.W_OK)]
print(json.dumps({"uid": os.getuid(), "gid": os.getgid(), "probes": result,
                  "writable": writable}))
"""


def test_runs_as_a_non_root_user_with_nothing_writable(image: str, container: Container) -> None:
    """The image's user is 10001; with every directory read-only, not even root writes there
    (EROFS), and the service user can write nowhere at all."""
    config = json.loads(subprocess.check_output(["buildah", "inspect", "--type", "image", image]))
    assert config["Docker"]["config"]["User"] == str(SERVICE_UID)
    as_service = python_in(container, WRITE_PROBE)
    assert (as_service["uid"], as_service["gid"]) == (SERVICE_UID, SERVICE_UID)
    assert "written" not in as_service["probes"].values()
    assert as_service["writable"] == []
    as_root = python_in(container, WRITE_PROBE, user=0)
    assert as_root["uid"] == 0
    left_writable = {"/", "/run"}  # buildah run's own mount points are made there
    assert {d for d, outcome in as_root["probes"].items() if outcome != "EROFS"} == left_writable
    without_protection = python_in(container, WRITE_PROBE, read_only=False)
    assert without_protection["probes"]["/tmp"] == "written"  # the probe can tell the difference


INSTALLED = """
import importlib.metadata, importlib.util, json
print(json.dumps({
    "files": [str(f) for f in importlib.metadata.files("auditstream")],
    "found": [n for n in ("devtools", "tests", "benchmarks") if importlib.util.find_spec(n)],
}))
"""


def test_holds_the_package_with_its_data_and_no_dev_tools(container: Container) -> None:
    """The installed distribution is the three packages and their data (rules, cases, Avro
    schema); no tests, benchmarks or devtools (the traffic generator) anywhere in the image."""
    installed = python_in(container, INSTALLED)
    assert installed["found"] == []
    files = installed["files"]
    assert all(f.startswith(("auditstream/", "auditstream-0.1.0.dist-info/")) or
               f == "../../../bin/auditstream" for f in files), files  # fmt: skip
    rules = [f for f in files if f.startswith("auditstream/detections/rules/")]
    assert len(rules) == len(list((REPO_ROOT / "detections" / "rules").glob("*.toml")))
    assert any(f.startswith("auditstream/detections/cases/") for f in files)
    assert "auditstream/schemas/alert.avsc" in files
    assert not [f for f in files if "traffic" in f or "/harness" in f]

    root = container.rootfs()
    assert not (root / "src").exists() and not (root / "wheels").exists()  # build stage only
    ours = [  # by their path in the checkout: devtools/traffic/synthetic.py, tests/...
        relative.as_posix()
        for folder in DEV_FOLDERS
        for relative in (p.relative_to(REPO_ROOT) for p in (REPO_ROOT / folder).rglob("*.py"))
        if relative.name != "__init__.py"  # certifi/tests/__init__.py is not ours
        and not any(part.startswith(".") for part in relative.parts)  # venvs, caches
    ]
    names = {Path(path).name for path in ours}
    shipped = [
        found
        for top, _dirs, entries in os.walk(root)  # never follows links out of the image
        for name in entries
        if name in names
        for found in [Path(top, name).as_posix()]
        if any(found.endswith("/" + path) for path in ours)
    ]
    assert shipped == []
