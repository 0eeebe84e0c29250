"""The traffic generator: the mix it promises, determinism, and that its attacks are detected."""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from auditstream.detections.alert import SourceRef
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.event.audit_event import AuditEvent
from auditstream.detections.event.decode import decode_message
from auditstream.detections.exec.request import exec_request_of
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.loader import load_rules
from devtools.traffic.commands import BENIGN, MALICIOUS, ExecCommand
from devtools.traffic.stream import (
    CLIENTS,
    TokenBucket,
    TrafficRecord,
    _raw_query,
    generate,
    go_json,
    main,
    records,
    write_file,
)
from devtools.traffic.synthetic import exec_audit_events


def is_exec_request(event: AuditEvent) -> bool:
    """The one decision the detector and the counters share."""
    return exec_request_of(event.request_uri, event.subresource) is not None


SOURCE = SourceRef("file", file="traffic", line=1)


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector(load_rules([], builtin=True).rules)


@pytest.fixture(scope="module")
def sample() -> list[TrafficRecord]:
    """Enough exec requests for proportions: 30 % exec stages, a third of requests malicious."""
    return list(records(random.Random(7), 6_000, exec_share=0.3, malicious_share_of_exec=0.3))


def _pipeline(detector: Detector) -> DetectionPipeline:
    return DetectionPipeline(detector, RecentAlerts(10_000))


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    first = list(generate(random.Random(3), 500))
    assert first == list(generate(random.Random(3), 500))
    assert first != list(generate(random.Random(4), 500))


def test_mix_proportions_within_tolerance(sample: list[TrafficRecord]) -> None:
    kinds = Counter(r.kind for r in sample)
    exec_events = kinds["exec"] + kinds["malicious"]
    assert exec_events / len(sample) == pytest.approx(0.3, abs=0.03)
    requests = {r.audit_id: r.kind for r in sample if r.kind != "routine"}
    malicious = sum(kind == "malicious" for kind in requests.values())
    assert malicious / len(requests) == pytest.approx(0.3, abs=0.06)


def test_default_mix_is_mostly_routine() -> None:
    kinds = Counter(r.kind for r in records(random.Random(1), 20_000))
    assert (kinds["exec"] + kinds["malicious"]) / 20_000 == pytest.approx(0.02, abs=0.006)


def test_every_exec_request_has_three_stages_in_order(sample: list[TrafficRecord]) -> None:
    stages: defaultdict[str, list[str]] = defaultdict(list)
    for record in sample:
        if record.kind != "routine":
            stages[record.audit_id].append(record.stage)
    assert stages
    for seen in stages.values():
        assert seen == ["RequestReceived", "ResponseStarted", "ResponseComplete"]


def test_every_message_decodes_as_one_event(sample: list[TrafficRecord]) -> None:
    shapes = Counter()
    for record in sample:
        (event,) = decode_message(record.value)
        assert event.audit_id == record.audit_id
        assert is_exec_request(event) == (record.kind != "routine")
        shapes[event.shape] += 1
    assert set(shapes) == {"event", "ecs"}


def test_raw_events_are_go_escaped_and_ecs_is_not(sample: list[TrafficRecord]) -> None:
    raw = [r.value for r in sample if r.kind != "routine" and r.value.startswith(b'{"kind"')]
    ecs = [r.value for r in sample if r.kind != "routine" and r.value.startswith(b'{"@timestamp"')]
    assert raw and ecs
    assert all(b"&" not in value and b"\\u0026" in value for value in raw)
    assert all(b"\\u0026" not in value for value in ecs)


def test_clients_all_appear(sample: list[TrafficRecord]) -> None:
    agents = Counter()
    for record in sample:
        if record.kind != "routine":
            (event,) = decode_message(record.value)
            agents[event.request_uri.split("?", 1)[1][:12]] += 1
    assert len(agents) >= len(CLIENTS)  # each client starts its query differently


def test_malicious_requests_fire_and_benign_ones_do_not(
    sample: list[TrafficRecord], detector: Detector
) -> None:
    pipeline = _pipeline(detector)
    fired: set[str] = set()
    for record in sample:
        found = pipeline.process_message(record.value, SOURCE)
        fired |= {alert.event.audit_id for alert in found.alerts}
    malicious = {r.audit_id for r in sample if r.kind == "malicious"}
    assert malicious
    assert fired == malicious


@pytest.mark.parametrize("command", MALICIOUS + BENIGN, ids=lambda c: " ".join(c.argv)[:40])
@pytest.mark.parametrize("client", CLIENTS)
def test_each_command_through_each_client(
    command: ExecCommand, client: str, detector: Detector
) -> None:
    events = exec_audit_events(
        command=command.argv,
        client=client,  # type: ignore[arg-type]
        container="web",
        stdin=command.interactive,
        tty=command.interactive,
        raw_query=_raw_query(command, "web") if client == "raw" else None,
        rng=random.Random(1),
    )
    pipeline = _pipeline(detector)
    alerts = [a for e in events for a in pipeline.process_message(go_json(e), SOURCE).alerts]
    assert bool(alerts) == (command.family != "benign")


def test_exec_only_mode_is_all_exec_with_a_tenth_malicious() -> None:
    stream = list(records(random.Random(5), 3_000, exec_share=1.0))
    assert all(r.kind != "routine" for r in stream)
    requests = {r.audit_id: r.kind for r in stream}
    assert len(requests) == 1_000
    share = sum(kind == "malicious" for kind in requests.values()) / len(requests)
    assert share == pytest.approx(0.1, abs=0.04)


def test_tail_never_leaves_an_exec_request_unfinished() -> None:
    stream = list(records(random.Random(9), 100, exec_share=1.0))
    by_request = Counter(r.audit_id for r in stream if r.kind != "routine")
    assert set(by_request.values()) == {3}
    assert len(stream) == 100  # the last slot that cannot hold a request is routine


def test_bad_mix_is_refused() -> None:
    with pytest.raises(ValueError, match="fractions"):
        next(records(random.Random(1), 1, exec_share=1.5))
    with pytest.raises(ValueError, match="shapes"):
        next(records(random.Random(1), 1, shapes=("xml",)))  # type: ignore[arg-type]


def test_go_json_escapes_like_encoding_json() -> None:
    text = go_json({"u": "a&b<c>d\u2028"}).decode()
    assert text == '{"u":"a\\u0026b\\u003cc\\u003ed\\u2028"}'
    assert json.loads(text) == {"u": "a&b<c>d\u2028"}


def test_write_file_and_cli(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    assert write_file(path, generate(random.Random(2), 50)) == 50
    assert path.read_bytes().count(b"\n") == 50
    out = tmp_path / "cli.jsonl"
    assert main(["--count", "30", "--exec-only", "--seed", "4", "--out", str(out)]) == 0
    lines = out.read_bytes().splitlines()
    assert len(lines) == 30
    assert all(is_exec_request(decode_message(line)[0]) for line in lines)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


def test_token_bucket_holds_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1_000, burst=10, clock=clock, sleep=clock.sleep)
    for _ in range(5_000):
        bucket.take()
    assert clock.now == pytest.approx(5.0, rel=0.01)


def test_token_bucket_allows_a_burst_after_a_pause() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100, burst=20, clock=clock, sleep=clock.sleep)
    clock.now = 10.0  # idle: the bucket fills to its burst, no more
    for _ in range(20):
        bucket.take()
    assert clock.slept == 0.0
    bucket.take()
    assert clock.slept == pytest.approx(0.01)
