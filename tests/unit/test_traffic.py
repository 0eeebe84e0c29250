"""The traffic generator: the mix it promises, determinism, and that its attacks are detected."""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from auditstream.detections.alert import SourceRef
from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.event.audit_event import AuditEvent
from auditstream.detections.event.decode import decode_message
from auditstream.detections.exec.request import exec_request_of
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.loader import load_rules
from devtools.traffic.commands import BENIGN, MALICIOUS, REVERSE_SHELLS, ExecCommand
from devtools.traffic.stream import (
    CLIENTS,
    SHAPES,
    TokenBucket,
    TrafficRecord,
    _raw_query,
    generate,
    go_json,
    main,
    records,
    write_file,
)
from devtools.traffic.synthetic import (
    EKS_CLUSTER,
    as_aks_record,
    as_cloudwatch,
    as_event_hubs,
    as_gke_entry,
    exec_audit_events,
)


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


# --- cloud envelopes (opt-in shapes) --------------------------------------------------------------

ENVELOPE_SHAPES = ("aks", "eventhubs", "cloudwatch")
ENVELOPES: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "aks": lambda e: json.dumps(as_aks_record(e)).encode(),
    "eventhubs": lambda e: json.dumps(as_event_hubs([as_aks_record(e)])).encode(),
    "cloudwatch": lambda e: as_cloudwatch([e]),
}
PROVIDERS = {"aks": ("aks", "PROD-AKS"), "eventhubs": ("aks", "PROD-AKS"),
             "cloudwatch": ("eks", EKS_CLUSTER)}  # fmt: skip


def _one(value: bytes) -> AuditEvent:
    decoded = decode_message(value)
    assert decoded is not None
    (event,) = decoded
    return event


def _twin_streams(shape: str, count: int = 600) -> list[tuple[TrafficRecord, TrafficRecord]]:
    """The same traffic as raw events and in ``shape``: a one-shape draw uses the rng the same
    way whatever the shape, and the envelope builders use none."""
    raw = records(random.Random(11), count, exec_share=0.3, shapes=("event",))
    wrapped = records(random.Random(11), count, exec_share=0.3, shapes=(shape,))  # type: ignore[arg-type]
    return list(zip(raw, wrapped, strict=True))


def test_the_default_shapes_are_unchanged_and_envelopes_opt_in() -> None:
    assert set(SHAPES) >= {"event", "ecs", "wrapped", *ENVELOPE_SHAPES, "gke"}
    default = list(generate(random.Random(3), 300))
    assert default == list(generate(random.Random(3), 300, shapes=("event", "ecs")))
    assert {_one(v).shape for v in default} == {"event", "ecs"}


@pytest.mark.parametrize("shape", ENVELOPE_SHAPES)
def test_each_envelope_shape_decodes_to_the_raw_events_audit(shape: str) -> None:
    provider, cluster = PROVIDERS[shape]
    pairs = _twin_streams(shape)
    assert any(r.kind != "routine" for r, _ in pairs)
    for raw, wrapped in pairs:
        assert (wrapped.audit_id, wrapped.kind, wrapped.stage) == (
            raw.audit_id, raw.kind, raw.stage,
        )  # fmt: skip
        expected = _one(raw.value)
        event = _one(wrapped.value)
        assert event.audit == expected.audit
        assert event.shape == shape
        assert event.envelope is not None
        assert (event.envelope.provider, event.envelope.cluster) == (provider, cluster)


def test_cloudwatch_messages_are_gzip_as_kinesis_delivers_them() -> None:
    (event,) = exec_audit_events(command=("ls",), stages=("ResponseComplete",),
                                 rng=random.Random(2))  # fmt: skip
    packed = as_cloudwatch([event])
    assert packed[:2] == b"\x1f\x8b"
    assert packed == as_cloudwatch([event])  # no mtime in the header: same event, same bytes
    payload = json.loads(gzip.decompress(packed))
    assert payload == json.loads(as_cloudwatch([event], compress=False))
    assert payload["messageType"] == "DATA_MESSAGE"
    assert payload["logGroup"] == f"/aws/eks/{EKS_CLUSTER}/cluster"
    assert payload["logStream"].startswith("kube-apiserver-audit-")
    (log_event,) = payload["logEvents"]
    assert len(log_event["id"]) == 56 and log_event["id"].isdigit()
    assert json.loads(log_event["message"]) == event


@pytest.mark.parametrize("shape", ENVELOPE_SHAPES)
def test_an_exec_in_each_envelope_alerts_as_the_raw_event(shape: str, detector: Detector) -> None:
    events = exec_audit_events(command=REVERSE_SHELLS[0].argv, rng=random.Random(5))

    def alerts(encode: Callable[[dict[str, Any]], bytes]) -> list[tuple[str, str]]:
        pipeline = _pipeline(detector)
        found = [a for e in events for a in pipeline.process_message(encode(e), SOURCE).alerts]
        return sorted((a.alert_id, a.rule.rule_id) for a in found)

    raw = alerts(go_json)
    assert raw, "the raw reverse shell must alert"
    assert alerts(ENVELOPES[shape]) == raw


def _gke_view(audit: Mapping[str, Any]) -> tuple[object, ...]:
    ref = audit.get("objectRef") or {}
    return (
        audit["auditID"], audit["verb"], audit["user"]["username"],
        *(ref.get(k) for k in ("resource", "namespace", "name", "subresource")),
    )  # fmt: skip


def test_a_gke_entry_decodes_to_the_same_request() -> None:
    pairs = _twin_streams("gke")
    assert any(r.kind != "routine" for r, _ in pairs)
    for raw, entry in pairs:
        expected = _one(raw.value)
        event = _one(entry.value)
        assert event.shape == "gke"
        assert _gke_view(event.audit) == _gke_view(expected.audit)
        assert event.audit["stage"] == "ResponseComplete"
        assert event.audit["sourceIPs"] == expected.audit["sourceIPs"][:1]
        assert event.envelope is not None and event.envelope.provider == "gke"


def test_gke_logs_one_entry_per_request() -> None:
    """Every stage slot of a request drawn ``gke`` carries the same entry: its
    ResponseComplete's."""
    by_request: defaultdict[str, set[bytes]] = defaultdict(set)
    for record in records(random.Random(4), 300, exec_share=1.0, shapes=("gke",)):
        by_request[record.audit_id].add(record.value)
    assert by_request and all(len(values) == 1 for values in by_request.values())
    started = exec_audit_events(command=("ls",), stages=("ResponseStarted",))[0]
    with pytest.raises(ValueError, match="ResponseComplete"):
        as_gke_entry(started)


@pytest.mark.parametrize(
    ("http", "rpc"), [(101, 0), (200, 0), (201, 0), (403, 7), (401, 16), (404, 2), (500, 2)]
)
def test_gke_status_is_a_google_rpc_code(http: int, rpc: int) -> None:
    (event,) = exec_audit_events(command=("ls",), stages=("ResponseComplete",))
    event["responseStatus"] = {"code": http}
    entry = as_gke_entry(event)
    assert entry["protoPayload"]["status"] == {"code": rpc}
    assert entry["protoPayload"]["methodName"] == f"io.k8s.core.v1.pods.exec.{event['verb']}"
    assert entry["protoPayload"]["resourceName"] == (
        f"core/v1/namespaces/default/pods/{event['objectRef']['name']}/exec"
    )
    assert entry["insertId"] == event["auditID"]
    assert entry["labels"] == event["annotations"]
    assert (entry["timestamp"], entry["receiveTimestamp"]) == (
        event["stageTimestamp"], event["requestReceivedTimestamp"],
    )  # fmt: skip


def test_cli_shapes_option(tmp_path: Path) -> None:
    out = tmp_path / "aks.jsonl"
    assert main(["--count", "20", "--shapes", "aks,gke", "--out", str(out)]) == 0
    shapes = {_one(line).shape for line in out.read_bytes().splitlines()}
    assert shapes <= {"aks", "gke"} and shapes
    with pytest.raises(SystemExit):
        main(["--count", "1", "--shapes", "cloudwatch", "--out", str(out)])
    with pytest.raises(SystemExit):
        main(["--count", "1", "--shapes", "xml", "--out", str(out)])
    with pytest.raises(ValueError, match="newline"):
        write_file(out, [b"a\nb"])
