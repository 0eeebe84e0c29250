"""Sigma: loading with pySigma, Sigma's matching semantics on audit events, fields, metadata.

Every row of the Sigma section of docs/rule-languages.md names a test here. Rules are written
inline (the SigmaHQ files are not ours to ship); each runs through the production Detector, on
the raw event and on the ECS document Elastic's integration would index for it.
"""

from __future__ import annotations

import base64
import copy
import re
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sigma.types import SigmaCasedString, SigmaString

from auditstream.detections.elastic.mapping import elastic_source
from auditstream.detections.engine import Detector
from auditstream.detections.event.decode import events_from_json
from auditstream.detections.ruleset.loader import load_case_files, load_rules
from auditstream.detections.sigma import SigmaRule, load_sigma_text
from auditstream.detections.sigma.fields import SHORT_NAMES
from auditstream.detections.sigma.strings import compile_string
from auditstream.detections.stateful.rule import StatefulRule
from auditstream.stream.cli.main import main

RULE_ID = "0b5d6c1e-5a8e-4c59-9d0e-3f6f2a9c7e01"


def sigma(detection: str, **header: str) -> str:
    """A whole Sigma rule around ``detection`` (the block under ``detection:``)."""
    fields = {
        "title": "Test rule",
        "id": RULE_ID,
        "status": "test",
        "level": "medium",
        "logsource": "\n    product: kubernetes\n    service: audit",
    }
    fields.update(header)
    head = "".join(f"{key}: {value}\n" for key, value in fields.items())
    body = textwrap.indent(textwrap.dedent(detection).strip("\n"), "    ")
    return f"{head}detection:\n{body}\n"


def compiled(detection: str, **header: str) -> SigmaRule:
    loaded = load_sigma_text(sigma(detection, **header), "test.yml")
    assert not loaded.problems, loaded.problems
    (rule,) = loaded.rules
    return rule


def refusal(detection: str, **header: str) -> str:
    loaded = load_sigma_text(sigma(detection, **header), "test.yml")
    assert not loaded.rules
    (problem,) = loaded.problems
    return problem.reason


def event(**fields: Any) -> dict[str, Any]:
    """A raw audit event; keyword arguments replace or add top-level fields."""
    base: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "auditID": str(uuid.uuid4()),
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/default/pods",
        "verb": "create",
        "user": {"username": "alice", "groups": ["system:authenticated"]},
        "sourceIPs": ["203.0.113.7"],
        "userAgent": "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350",
        "objectRef": {"resource": "pods", "namespace": "default", "apiVersion": "v1"},
        "responseStatus": {"code": 201},
        "requestReceivedTimestamp": "2026-12-04T10:00:00.000000Z",
        "stageTimestamp": "2026-12-04T10:00:00.020000Z",
    }
    base.update(fields)
    return base


def fires(
    rule: SigmaRule, raw: dict[str, Any], *, shapes: tuple[str, ...] = ("raw", "ecs")
) -> bool:
    """The verdict on the raw event, checked equal on its ECS document and without the index."""
    verdicts = set()
    (parsed,) = events_from_json(copy.deepcopy(raw))
    (as_ecs,) = events_from_json(elastic_source(parsed))
    inputs = {"raw": parsed, "ecs": as_ecs}
    for gate in (True, False):
        detector = Detector([rule], gate=gate)
        for shape in shapes:
            hits = detector.detect(inputs[shape])
            verdicts.add(any(hit.rule.rule_id == rule.meta.rule_id for hit in hits))
    assert len(verdicts) == 1, "raw, ECS, indexed and unindexed verdicts differ"
    return verdicts.pop()


# --- strings -------------------------------------------------------------------------------------


def test_plain_strings_match_case_insensitively() -> None:
    rule = compiled("sel:\n  verb: create\ncondition: sel")
    assert fires(rule, event(verb="CREATE"))
    assert fires(rule, event(verb="create"))
    assert not fires(rule, event(verb="created"))


def test_cased_modifier_matches_case_sensitively() -> None:
    rule = compiled("sel:\n  verb|cased: create\ncondition: sel")
    assert fires(rule, event(verb="create"))
    assert not fires(rule, event(verb="Create"))


def test_wildcards_star_and_question_mark() -> None:
    rule = compiled("sel:\n  requestURI: '/api/v1/namespaces/*/pods/?eb-*'\ncondition: sel")
    assert fires(rule, event(requestURI="/api/v1/namespaces/prod/pods/web-1"))
    assert fires(rule, event(requestURI="/API/v1/namespaces/prod/pods/Xeb-"))
    assert not fires(rule, event(requestURI="/api/v1/namespaces/prod/pods/eb-1"))


def test_escaped_wildcards_are_literal() -> None:
    rule = compiled("sel:\n  userAgent: 'scan\\*er'\ncondition: sel")
    assert fires(rule, event(userAgent="scan*er"))
    assert not fires(rule, event(userAgent="scanner"))


def test_contains_startswith_endswith() -> None:
    rule = compiled(
        """
        sel:
          requestURI|contains: '/exec?'
          userAgent|startswith: 'kubectl/'
          user.username|endswith: '@example.com'
        condition: sel
        """
    )
    hit = event(requestURI="/api/v1/x/EXEC?c=1", user={"username": "Bob@Example.com"})
    assert fires(rule, hit)
    assert not fires(rule, {**hit, "userAgent": "curl/8 kubectl/"})


def test_empty_string_matches_only_an_empty_value() -> None:
    rule = compiled("sel:\n  objectRef.name: ''\ncondition: sel")
    empty = event(objectRef={"resource": "pods", "name": ""})
    assert fires(rule, empty, shapes=("raw",))
    # Elastic's integration removes empty strings before indexing: its document has no name.
    assert not fires(rule, empty, shapes=("ecs",))
    assert not fires(rule, event(objectRef={"resource": "pods"}))
    assert not fires(rule, event(objectRef={"resource": "pods", "name": "web"}))


def test_string_value_matches_the_text_of_a_number_or_boolean() -> None:
    assert fires(
        compiled("sel:\n  responseStatus.code: '40*'\ncondition: sel"),
        event(responseStatus={"code": 403}),
    )
    never = compiled("sel:\n  responseStatus.code: 'ALLOW'\ncondition: sel")
    assert not fires(never, event(responseStatus={"code": 200}))
    assert not fires(never, event(responseStatus={"code": 403}))


# --- numbers, booleans, null, exists ------------------------------------------------------------


def test_number_matches_the_number_or_its_exact_text() -> None:
    rule = compiled("sel:\n  responseStatus.code:\n    - 401\n    - 403\ncondition: sel")
    assert fires(rule, event(responseStatus={"code": 403}))
    assert fires(rule, event(responseStatus={"code": "401"}))
    assert not fires(rule, event(responseStatus={"code": 404}))
    assert not fires(rule, event(responseStatus={"code": "0403"}))


def test_boolean_value() -> None:
    rule = compiled("sel:\n  privileged: true\ncondition: sel")
    privileged = {"spec": {"containers": [{"securityContext": {"privileged": True}}]}}
    assert fires(rule, event(responseObject=privileged))
    plain = {"spec": {"containers": [{"securityContext": {"privileged": False}}]}}
    assert not fires(rule, event(responseObject=plain))


def test_null_matches_a_missing_or_null_field() -> None:
    rule = compiled("sel:\n  impersonatedUser: null\ncondition: sel")
    assert fires(rule, event())
    assert fires(rule, event(impersonatedUser=None))
    assert not fires(rule, event(impersonatedUser={"username": "admin"}))


def test_exists_modifier() -> None:
    present = compiled("sel:\n  impersonatedUser|exists: true\ncondition: sel")
    absent = compiled("sel:\n  impersonatedUser|exists: false\ncondition: sel")
    assert fires(present, event(impersonatedUser={"username": "admin"}))
    assert not fires(present, event())
    assert fires(absent, event())
    assert not fires(absent, event(impersonatedUser={"username": "admin"}))


def test_lone_star_matches_any_present_value_objects_included() -> None:
    rule = compiled("sel:\n  hostPath: '*'\ncondition: sel")
    mount = {"spec": {"volumes": [{"name": "root", "hostPath": {"path": "/", "type": ""}}]}}
    assert fires(rule, event(requestObject=mount))
    no_host = {"spec": {"volumes": [{"name": "data", "emptyDir": {}}]}}
    assert not fires(rule, event(requestObject=no_host))
    assert not fires(rule, event())


# --- regular expressions ------------------------------------------------------------------------


def test_regex_searches_anywhere_in_the_value() -> None:
    rule = compiled("sel:\n  requestURI|re: 'command=(sh|bash)&'\ncondition: sel")
    assert fires(rule, event(requestURI="/api/v1/namespaces/a/pods/b/exec?command=sh&stdin=1"))
    assert not fires(rule, event(requestURI="/api/v1/namespaces/a/pods/b/exec?command=SH&x"))


def test_regex_anchors_and_flags() -> None:
    anchored = compiled("sel:\n  verb|re: '^get$'\ncondition: sel")
    assert fires(anchored, event(verb="get"))
    assert not fires(anchored, event(verb="forget"))
    insensitive = compiled("sel:\n  verb|re|i: '^GET$'\ncondition: sel")
    assert fires(insensitive, event(verb="get"))
    dotall = compiled("sel:\n  userAgent|re|s: 'a.b'\ncondition: sel")
    assert fires(dotall, event(userAgent="a\nb"))
    assert not fires(
        compiled("sel:\n  userAgent|re: 'a.b'\ncondition: sel"), event(userAgent="a\nb")
    )
    multiline = compiled("sel:\n  userAgent|re|m: '^b'\ncondition: sel")
    assert fires(multiline, event(userAgent="a\nb"))


@pytest.mark.parametrize(
    ("pattern", "feature"),
    [("(a)\\1", "backreference"), ("a(?=b)", "lookahead"), ("(?<!a)b", "lookbehind")],
)
def test_regex_features_without_a_linear_time_match_are_refused(pattern: str, feature: str) -> None:
    # pySigma validates the expression with RE2 itself; what it refuses, the rule reports.
    reason = refusal(f"sel:\n  verb|re: '{pattern}'\ncondition: sel")
    assert "invalid" in reason and pattern in reason, feature


# --- lists, maps, all, cidr, base64, comparisons -------------------------------------------------


def test_lists_are_or_maps_are_and_list_of_maps_is_or() -> None:
    rule = compiled(
        """
        sel:
          - verb: delete
            objectRef.resource: events
          - verb:
              - patch
              - update
            objectRef.resource: secrets
        condition: sel
        """
    )
    assert fires(rule, event(verb="delete", objectRef={"resource": "events"}))
    assert fires(rule, event(verb="update", objectRef={"resource": "secrets"}))
    assert not fires(rule, event(verb="delete", objectRef={"resource": "secrets"}))


def test_all_modifier_requires_every_value() -> None:
    rule = compiled("sel:\n  requestURI|contains|all:\n    - exec\n    - tty=true\ncondition: sel")
    assert fires(rule, event(requestURI="/x/exec?tty=true"))
    assert not fires(rule, event(requestURI="/x/exec?tty=false"))


def test_cidr_matches_any_address_of_an_array() -> None:
    rule = compiled("sel:\n  sourceIPs|cidr:\n    - 10.0.0.0/8\n    - 'fd00::/8'\ncondition: sel")
    assert fires(rule, event(sourceIPs=["203.0.113.7", "10.1.2.3"]))
    assert fires(rule, event(sourceIPs=["fd12::1"]))
    assert not fires(rule, event(sourceIPs=["203.0.113.7", "not-an-ip"]))


def test_base64_and_base64offset() -> None:
    encoded = compiled("sel:\n  requestObject.data.token|base64: secret\ncondition: sel")
    assert fires(encoded, event(requestObject={"data": {"token": "c2VjcmV0"}}))
    offset = compiled(
        "sel:\n  requestObject.data.token|base64offset|contains: secret\ncondition: sel"
    )
    # "xsecret" and "xxsecret" encode "secret" at the two other offsets.
    for plain in ("xsecret", "xxsecret", "secret!"):
        token = base64.b64encode(plain.encode()).decode()
        assert fires(offset, event(requestObject={"data": {"token": token}})), plain
    assert not fires(offset, event(requestObject={"data": {"token": "c2VjcmVa"}}))


def test_numeric_comparisons() -> None:
    rule = compiled(
        "sel:\n  responseStatus.code|gte: 400\n  responseStatus.code|lt: 500\ncondition: sel"
    )
    assert fires(rule, event(responseStatus={"code": 403}))
    assert not fires(rule, event(responseStatus={"code": 500}))
    assert not fires(rule, event(responseStatus={"code": "403"}))


def test_neq_modifier_negates_the_item() -> None:
    rule = compiled("sel:\n  verb: create\n  objectRef.namespace|neq: kube-system\ncondition: sel")
    assert fires(rule, event())
    assert not fires(rule, event(objectRef={"resource": "pods", "namespace": "kube-system"}))


# --- conditions ----------------------------------------------------------------------------------


def test_condition_and_or_not_parentheses() -> None:
    rule = compiled(
        """
        create:
          verb: create
        pods:
          objectRef.resource: pods
        system:
          objectRef.namespace: kube-system
        condition: (create and pods) and not system
        """
    )
    assert fires(rule, event())
    assert not fires(rule, event(objectRef={"resource": "pods", "namespace": "kube-system"}))
    assert not fires(rule, event(verb="get"))


def test_one_of_and_all_of_patterns() -> None:
    one = compiled(
        """
        sel_a:
          userAgent|contains: trufflehog
        sel_b:
          userAgent|contains: azurehound
        base:
          verb: list
        condition: base and 1 of sel_*
        """
    )
    assert fires(one, event(verb="list", userAgent="azurehound/2"))
    assert not fires(one, event(verb="list", userAgent="kubectl"))
    every = compiled(
        """
        sel_a:
          verb: list
        sel_b:
          objectRef.resource: secrets
        condition: all of them
        """
    )
    assert fires(every, event(verb="list", objectRef={"resource": "secrets"}))
    assert not fires(every, event(verb="list"))


# --- fields --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fields", "value"),
    [
        ("apiGroup", {"objectRef": {"resource": "jobs", "apiGroup": "batch"}}, "batch"),
        ("resource", {"objectRef": {"resource": "jobs"}}, "jobs"),
        ("subresource", {"objectRef": {"resource": "pods", "subresource": "exec"}}, "exec"),
        ("namespace", {"objectRef": {"resource": "pods", "namespace": "ops"}}, "ops"),
        ("username", {"user": {"username": "mallory"}}, "mallory"),
        (
            "capabilities",
            {
                "requestObject": {
                    "spec": {
                        "containers": [
                            {
                                "securityContext": {
                                    "capabilities": {"add": ["NET_ADMIN", "SYS_ADMIN"]}
                                }
                            }
                        ]
                    }
                }
            },
            "sys_admin",
        ),
        ("kubernetes.audit.objectRef.resource", {"objectRef": {"resource": "jobs"}}, "jobs"),
    ],
)
def test_field_names_resolve_like_the_ecs_kubernetes_pipeline(
    name: str, fields: dict[str, Any], value: str
) -> None:
    rule = compiled(f"sel:\n  {name}: {value}\ncondition: sel")
    assert fires(rule, event(**fields))
    assert not fires(rule, event())


def test_dotted_annotation_keys_are_found() -> None:
    rule = compiled("sel:\n  annotations.authorization.k8s.io/decision: forbid\ncondition: sel")
    assert fires(rule, event(annotations={"authorization.k8s.io/decision": "forbid"}))
    assert not fires(rule, event(annotations={"authorization.k8s.io/decision": "allow"}))


# --- what cannot run -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("detection", "named"),
    [
        ("keywords:\n  - evil\ncondition: keywords", "keyword"),
        ("sel:\n  verb|fieldref: objectRef.resource\ncondition: sel", "fieldref"),
        ("sel:\n  verb|expand: '%verbs%'\ncondition: sel", "placeholder"),
        ("sel:\n  stageTimestamp|minute: 5\ncondition: sel", "timestamp"),
    ],
)
def test_unsupported_constructs_are_load_errors_naming_them(detection: str, named: str) -> None:
    assert named in refusal(detection)


def test_other_logsources_are_reported() -> None:
    reason = refusal("sel:\n  verb: create\ncondition: sel", logsource="\n    product: windows")
    assert "not Kubernetes audit logs" in reason


def test_invalid_rules_report_pysigma_errors() -> None:
    reason = refusal("sel:\n  verb: create\ncondition: nothere")
    assert "invalid Sigma rule" in reason


def test_a_correlation_loads_as_a_stateful_rule_and_its_base_rule_stops_alerting_alone() -> None:
    """Correlations are stateful rules (docs/sigma-correlation-semantics.md, tested in
    test_stateful_correlation.py); ``generate`` defaults to false, so the base rule is only the
    correlation's selector."""
    text = sigma("sel:\n  verb: create\ncondition: sel", name="base") + textwrap.dedent(
        """
        ---
        title: Many creates
        id: 5c1d9d0e-8b4f-4c1a-9a55-6f1e0a7b2c33
        correlation:
          type: event_count
          rules:
            - base
          group-by:
            - user.username
          timespan: 5m
          condition:
            gte: 10
        """
    )
    loaded = load_sigma_text(text, "test.yml")
    assert loaded.problems == ()
    (rule,) = loaded.rules
    assert isinstance(rule, StatefulRule)
    assert (rule.meta.rule_id, rule.kind) == ("5c1d9d0e-8b4f-4c1a-9a55-6f1e0a7b2c33", "correlation")
    assert [selector.rule.meta.rule_id for selector in rule.selectors] == [f"{rule.meta.rule_id}#0"]


def test_a_rule_without_an_id_is_refused() -> None:
    text = sigma("sel:\n  verb: create\ncondition: sel").replace(f"id: {RULE_ID}\n", "")
    (problem,) = load_sigma_text(text, "test.yml").problems
    assert "no id" in problem.reason


# --- metadata ------------------------------------------------------------------------------------


def test_metadata_flows_into_the_alert_record() -> None:
    rule = compiled(
        "sel:\n  verb: create\ncondition: sel",
        level="high",
        status="experimental",
        tags="\n    - attack.execution\n    - attack.t1609\n    - attack.t1552.007\n    - attack.stealth",
        references="\n    - https://example.com/ref",
        falsepositives="\n    - Debugging",
    )
    record = rule.meta.to_record()
    assert (record["severity"], record["risk_score"]) == ("high", 73)
    assert (record["status"], record["false_positives"]) == ("experimental", ["Debugging"])
    assert record["references"] == ["https://example.com/ref"]
    assert record["language"] == "sigma"
    execution, stealth = record["threat"]
    assert execution["tactic"]["id"] == "TA0002"
    assert [t["id"] for t in execution["techniques"]] == ["T1609", "T1552"]
    assert execution["techniques"][1]["subtechniques"][0]["id"] == "T1552.007"
    assert stealth["tactic"] == {"id": "", "name": "Stealth", "reference": ""}


@pytest.mark.parametrize(
    ("level", "severity", "risk"),
    [("informational", "low", 0), ("low", "low", 21), ("medium", "medium", 47),
     ("critical", "critical", 99)],
)  # fmt: skip
def test_levels_map_to_severity_and_risk(level: str, severity: str, risk: int) -> None:
    meta = compiled("sel:\n  verb: create\ncondition: sel", level=level).meta
    assert (meta.severity, meta.risk_score) == (severity, risk)


def test_alert_fields_show_what_the_rule_read() -> None:
    rule = compiled("sel:\n  verb: create\n  hostPath: '*'\ncondition: sel")
    mount = {"spec": {"volumes": [{"hostPath": {"path": "/"}}]}}
    (parsed,) = events_from_json(event(requestObject=mount))
    (hit,) = Detector([rule]).detect(parsed)
    assert hit.fields == {"verb": "create", "hostPath": '{"path":"/"}'}


# --- loading folders ------------------------------------------------------------------------------


def test_a_folder_of_toml_and_sigma_loads_both_and_reports_skipped_files(tmp_path: Path) -> None:
    (tmp_path / "one.yml").write_text(sigma("sel:\n  verb: create\ncondition: sel"))
    second = sigma("sel:\n  verb: delete\ncondition: sel").replace(RULE_ID, str(uuid.uuid4()))
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "two.yaml").write_text(second)
    (tmp_path / "README.md").write_text("# rules\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("")
    builtin = load_rules()
    rules = load_rules([tmp_path])
    sigma_rules = [r for r in rules.rules if isinstance(r, SigmaRule)]
    assert len(sigma_rules) == 2
    assert len(rules.rules) == len(builtin.rules) + 2
    (skipped,) = rules.problems
    assert skipped.skipped and skipped.path.endswith("README.md")


def test_one_file_may_hold_several_rules() -> None:
    second = sigma("sel:\n  verb: delete\ncondition: sel").replace(RULE_ID, str(uuid.uuid4()))
    loaded = load_sigma_text(sigma("sel:\n  verb: create\ncondition: sel") + "---\n" + second, "x")
    assert len(loaded.rules) == 2


# --- the matcher against a reference --------------------------------------------------------------

_ALPHABET = st.sampled_from("abAB*?\\")


@settings(max_examples=300, deadline=None)
@given(pattern=st.text(_ALPHABET, max_size=8), text=st.text(st.sampled_from("abAB?*"), max_size=10))
def test_string_matcher_agrees_with_a_reference_glob(pattern: str, text: str) -> None:
    value = SigmaString(pattern)
    expected = _reference(value.s, text.lower(), fold=True)
    assert compile_string(value)(text) == expected
    cased = SigmaCasedString.from_sigma_string(value)
    assert compile_string(cased)(text) == _reference(value.s, text, fold=False)


def _reference(parts: list[Any], text: str, *, fold: bool) -> bool:
    """Backtracking glob on short strings: obviously right, exponential, fine here."""
    tokens: list[Any] = []
    for part in parts:
        if isinstance(part, str):
            tokens.extend(part.lower() if fold else part)
        else:
            tokens.append(part)

    def match(i: int, j: int) -> bool:
        if i == len(tokens):
            return j == len(text)
        token = tokens[i]
        if isinstance(token, str):
            return j < len(text) and text[j] == token and match(i + 1, j + 1)
        if token.name == "WILDCARD_SINGLE":
            return j < len(text) and match(i + 1, j + 1)
        return any(match(i + 1, k) for k in range(j, len(text) + 1))

    return match(0, 0)


# --- cases files and the CLI ---------------------------------------------------------------------

_CASES = """
[[cases]]
rule = "{rule}"
expect = {expect}
note = "{note}"
[cases.event]
kind = "Event"
apiVersion = "audit.k8s.io/v1"
level = "Metadata"
auditID = "{audit_id}"
stage = "ResponseComplete"
requestURI = "/api/v1/namespaces/default/serviceaccounts"
verb = "{verb}"
sourceIPs = ["203.0.113.7"]
[cases.event.user]
username = "alice"
[cases.event.objectRef]
resource = "serviceaccounts"
namespace = "default"
"""


def _case(expect: bool, verb: str, rule: str = RULE_ID) -> str:
    return _CASES.format(
        rule=rule, expect=str(expect).lower(), note=f"{verb} {expect}", verb=verb,
        audit_id=uuid.uuid4(),
    )  # fmt: skip


def test_rules_test_runs_a_cases_file_in_both_shapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rule = tmp_path / "rule.yml"
    rule.write_text(
        sigma("sel:\n  verb: create\n  objectRef.resource: serviceaccounts\ncondition: sel")
    )
    cases = tmp_path / "cases.toml"
    cases.write_text(_case(True, "create") + _case(True, "CREATE") + _case(False, "delete"))
    args = ["rules", "test", "--no-builtin-rules", "--rules", str(rule), "--cases", str(cases)]
    assert main(args) == 0
    assert capsys.readouterr().out.strip().endswith("3 passed, 0 failed")

    cases.write_text(_case(False, "create") + _case(True, "get", rule=str(uuid.uuid4())))
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "FAIL Test rule: create False: expected no hit, got 1" in out
    assert "which is not loaded" in out and "0 passed, 2 failed" in out


def test_a_cases_file_without_rule_ids_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = tmp_path / "cases.toml"
    cases.write_text("[[cases]]\nexpect = true\nuri = '/x'\n")
    assert main(["rules", "test", "--cases", str(cases)]) == 2
    assert "needs rule" in capsys.readouterr().out


def test_several_conditions_are_alternatives() -> None:
    rule = compiled(
        """
        deleted:
          verb: delete
        listed:
          verb: list
        condition:
          - deleted
          - listed
        """
    )
    assert fires(rule, event(verb="delete"))
    assert fires(rule, event(verb="list"))
    assert not fires(rule, event(verb="get"))


# --- the semantics document -----------------------------------------------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "sigma-semantics.md"


def test_every_test_the_document_names_exists() -> None:
    named = set(re.findall(r"`(test_\w+)`", DOC.read_text(encoding="utf-8")))
    assert named, "the document names no test"
    assert named <= set(globals()), sorted(named - set(globals()))


def test_the_field_table_is_the_compiled_one() -> None:
    rows = re.findall(r"^\| `(\w+)` \| `([\w.]+)` \|$", DOC.read_text(encoding="utf-8"), re.M)
    assert dict(rows) == dict(SHORT_NAMES)


# --- the shipped cases of SigmaHQ's rules (the rules themselves are not shipped) ----------------

SIGMAHQ_CASES = (
    Path(__file__).resolve().parents[2] / "detections/cases/sigmahq-kubernetes-audit.toml"
)
SIGMAHQ_NEVER_FIRES = "597a7e84-187d-458b-9e4f-2f5a0e676711"  # responseStatus.code: 'ALLOW'


def test_sigmahq_cases_cover_all_16_rules_both_ways() -> None:
    by_rule = load_case_files([SIGMAHQ_CASES])
    assert len(by_rule) == 16
    for rule_id, cases in by_rule.items():
        firing = [case for case in cases if case.expect]
        silent = [case for case in cases if not case.expect]
        assert len(silent) >= 2, rule_id
        if rule_id == SIGMAHQ_NEVER_FIRES:
            assert not firing
        else:
            assert len(firing) >= 2, rule_id
        for case in cases:
            assert case.event is not None and case.note, rule_id
            (parsed,) = events_from_json(case.event)  # each is a well-formed audit event
            assert parsed.shape == "event"
