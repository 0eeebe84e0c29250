"""KQL: Kibana's grammar, the Query DSL each node becomes, and how it matches per field type.

Every row of docs/kql-semantics.md names a test here. Field types come from a fixed table patched
over ``field_type`` so the tests do not depend on the integration's field list.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditstream.detections.elastic import indexing
from auditstream.detections.elastic.document import ElasticDocument
from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.kql import KqlPredicate, compile_kql, compiler, parse_kql
from auditstream.detections.kql import ast as a

TYPES = {
    "data_stream.dataset": "constant_keyword",
    "event.action": "keyword",
    "user.name": "keyword",
    "user_agent.original": "keyword",
    "kubernetes.audit.verb": "keyword",
    "kubernetes.audit.user.groups": "text",
    "kubernetes.audit.annotations": "flattened",
    "kubernetes.audit.requestObject.spec.containers.image": "text",
    "kubernetes.audit.requestObject.spec.containers.securityContext.privileged": "boolean",
    "kubernetes.audit.user.extra": "object",
    "source.ip": "ip",
    "code": "integer",
    "ratio": "float",
    "@timestamp": "date",
}


@pytest.fixture(autouse=True)
def _field_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiler, "field_type", TYPES.get)


def run(query: str, source: dict[str, Any]) -> bool:
    return compile_kql(query)(ElasticDocument(source))


def refused(query: str) -> QuerySyntaxError:
    with pytest.raises(QuerySyntaxError) as info:
        compile_kql(query)
    return info.value


P = a.Pos


# --- parser golden tests -------------------------------------------------------------------------


def test_parse_field_value() -> None:
    assert parse_kql("event.action:get") == a.Is(
        a.Literal("event.action", False, P(1, 1)), a.Literal("get", False, P(1, 14)), P(1, 14)
    )


def test_parse_value_list_expands_per_field() -> None:
    tree = parse_kql("f:(a or not b)")
    assert isinstance(tree, a.Or)
    first, second = tree.items
    assert isinstance(first, a.Is) and first.value == a.Literal("a", False, P(1, 4))
    assert isinstance(second, a.Not) and isinstance(second.inner, a.Is)
    assert second.inner.field == a.Literal("f", False, P(1, 1))


def test_parse_precedence_not_and_or() -> None:
    tree = parse_kql("x:1 or not y:2 and z:3")
    assert isinstance(tree, a.Or)
    assert isinstance(tree.items[1], a.And)
    assert isinstance(tree.items[1].items[0], a.Not)


def test_parse_keywords_case_insensitive_and_need_spaces() -> None:
    assert isinstance(parse_kql("x:1 AND y:2"), a.And)
    assert parse_kql("x:a and") == a.Is(
        a.Literal("x", False, P(1, 1)), a.Literal("a and", False, P(1, 3)), P(1, 3)
    )


def test_parse_unquoted_value_keeps_inner_spaces_and_trims() -> None:
    tree = parse_kql("f:  hello world  ")
    assert isinstance(tree, a.Is) and tree.value == a.Literal("hello world", False, P(1, 5))


def test_parse_true_false_null_literals() -> None:
    values = [parse_kql(f"f:{v}") for v in ("true", "false", "null", '"true"')]
    assert [v.value.value for v in values if isinstance(v, a.Is)] == [True, False, None, "true"]


def test_parse_wildcard_parts_and_escaped_star() -> None:
    tree = parse_kql(r"f:a*b\*c*")
    assert isinstance(tree, a.Is) and tree.value == a.Wildcard(("a", "b*c", ""), P(1, 3))


def test_parse_escapes_unquoted() -> None:
    tree = parse_kql(r"f:\:\(\)\\\"\<\>\{\}\*\or\AND\u0041\t")
    assert isinstance(tree, a.Is) and tree.value.value == ':()\\"<>{}*orANDA'  # type: ignore[union-attr]


def test_parse_escaped_not_is_a_newline_first() -> None:
    tree = parse_kql(r"f:x\not")
    assert isinstance(tree, a.Is) and tree.value.value == "x\not"  # type: ignore[union-attr]
    tree = parse_kql(r"f:x\NOT")
    assert isinstance(tree, a.Is) and tree.value.value == "xNOT"  # type: ignore[union-attr]


def test_parse_quoted_escapes_keep_unknown_backslashes() -> None:
    tree = parse_kql(r'f:"a\"b\\c\:d*"')
    assert isinstance(tree, a.Is) and tree.value == a.Literal('a"b\\c\\:d*', True, P(1, 3))


def test_parse_field_names_with_slash_dots_and_quotes() -> None:
    tree = parse_kql('kubernetes.audit.annotations.authorization_k8s_io/decision:"allow"')
    assert isinstance(tree, a.Is)
    assert tree.field == a.Literal(
        "kubernetes.audit.annotations.authorization_k8s_io/decision", False, P(1, 1)
    )
    tree = parse_kql('"my field" : x')
    assert isinstance(tree, a.Is) and tree.field == a.Literal("my field", True, P(1, 1))


def test_parse_range_and_nested() -> None:
    assert parse_kql("code >= 400") == a.Range(
        a.Literal("code", False, P(1, 1)), "gte", a.Literal("400", False, P(1, 9)), P(1, 1)
    )
    assert isinstance(parse_kql("items:{ name:x and n:1 }"), a.Nested)


def test_parse_empty_query_is_match_all() -> None:
    assert parse_kql("  ") == a.MatchAll()


@pytest.mark.parametrize(
    ("query", "line", "column"),
    [
        ("f:cannot x", 1, 6),
        ("f:(a or b", 1, 10),
        ("f:not x", 1, 3),
        ("x:1 and\n  y:a\\b", 2, 6),
        ('f:"open', 1, 8),
        ("not(x:1)", 1, 4),
    ],
)
def test_parse_errors_have_line_and_column(query: str, line: int, column: int) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse_kql(query)
    assert (info.value.line, info.value.column) == (line, column)


# Queries written for these tests that use every construct of the 29 Kubernetes kuery rules.
RULE_LIKE = [
    'data_stream.dataset:"kubernetes.audit_logs" and event.action:(get or list) and\n'
    "user_agent.original:(curl* or python* or *distrib#kali* or *kali-amd64) and source.ip:*",
    r"user.name:(system\:serviceaccount\:* or system\:node\:*) and "
    'source.ip:(* and not ("::1" or "127.0.0.1")) and\n'
    'not kubernetes.audit.user.groups:("system:serviceaccounts:kyverno" or x\\:y\\:z-*)',
    "kubernetes.audit.requestURI :(/api/v1/secrets or /api/v1/secrets?limit*) and "
    "not user.name: (eks\\:cloud-controller-manager)",
    'kubernetes.audit.annotations.authorization_k8s_io/decision:"forbid" and '
    "user_agent.original:(* and not (*kubernetes/$Format or karpenter))",
    'kubernetes.audit.user.username:("system:anonymous" or not *) and\n'
    "not (kubernetes.audit.user.extra.authentication.kubernetes.io/pod-name :trivy-*)",
    "kubernetes.audit.requestObject.spec.containers.securityContext.privileged:true and "
    'not kubernetes.audit.requestObject.spec.containers.image: (rancher/agent* or "")',
    "data_stream.dataset : kubernetes.audit_logs and kubernetes.audit.verb: create and (\n"
    "  kubernetes.audit.user.username:(system\\:serviceaccount\\:*\\:*-operator) or\n"
    '  kubernetes.audit.impersonatedUser.groups:(cluster-admin or "system:masters")\n)',
]


@pytest.mark.parametrize("query", RULE_LIKE)
def test_rule_constructs_parse_and_compile(query: str) -> None:
    assert isinstance(compile_kql(query), KqlPredicate)


# --- evaluation ----------------------------------------------------------------------------------


def test_keyword_exact_case_sensitive() -> None:
    assert run("event.action:get", {"event": {"action": "get"}})
    assert not run("event.action:get", {"event": {"action": "Get"}})
    assert not run("event.action:get", {"event": {"action": "gett"}})


def test_value_list_or_and_not() -> None:
    q = "event.action:(get or list)"
    assert run(q, {"event": {"action": "list"}})
    assert not run(q, {"event": {"action": "watch"}})
    q = "event.action:(* and not (get or list))"
    assert run(q, {"event": {"action": "watch"}})
    assert not run(q, {"event": {"action": "get"}})
    assert not run(q, {})


def test_precedence_not_over_and_over_or() -> None:
    q = "event.action:a or event.action:b and not user.name:x"
    assert run(q, {"event": {"action": "a"}, "user": {"name": "x"}})
    assert not run(q, {"event": {"action": "b"}, "user": {"name": "x"}})
    assert run(
        "(event.action:a or event.action:b) and user.name:x",
        {"event": {"action": "b"}, "user": {"name": "x"}},
    )


def test_not_of_missing_field_is_true() -> None:
    assert run("not user.name:x", {})
    assert run("not user.name:(a or b)", {"user": {"name": "c"}})


def test_quoted_value_wildcard_is_literal() -> None:
    assert run('event.action:"ge*"', {"event": {"action": "ge*"}})
    assert not run('event.action:"ge*"', {"event": {"action": "get"}})


def test_wildcard_anywhere_question_mark_literal() -> None:
    q = "user_agent.original:(curl* or *kali-amd64 or a*b*c)"
    for ua in ("curl/8", "x kali-amd64", "aXbYc", "abc"):
        assert run(q, {"user_agent": {"original": ua}})
    for ua in ("Curl/8", "kali-amd64x", "acb"):
        assert not run(q, {"user_agent": {"original": ua}})
    q = "user_agent.original:/api?limit*"
    assert run(q, {"user_agent": {"original": "/api?limit=5"}})
    assert not run(q, {"user_agent": {"original": "/apiXlimit=5"}})


def test_escaped_colons_in_wildcard() -> None:
    q = r"user.name:system\:serviceaccount\:*"
    assert run(q, {"user": {"name": "system:serviceaccount:ns:sa"}})
    assert not run(q, {"user": {"name": "system:node:n1"}})


def test_exists() -> None:
    assert run("source.ip:*", {"source": {"ip": "10.0.0.1"}})
    assert not run("source.ip:*", {"source": {"ip": None}})
    assert not run("source.ip:*", {"source": {"ip": []}})
    assert not run("source.ip:*", {})
    assert run(
        "kubernetes.audit.user.extra:*",
        {"kubernetes": {"audit": {"user": {"extra": {"k": ["v"]}}}}},
    )


def test_ip_exact_mapped_and_cidr() -> None:
    q = 'source.ip:(* and not "127.0.0.1")'
    assert not run(q, {"source": {"ip": "127.0.0.1"}})
    assert not run(q, {"source": {"ip": "::ffff:127.0.0.1"}})
    assert run(q, {"source": {"ip": "10.1.1.1"}})
    assert run("source.ip:10.0.0.0/8", {"source": {"ip": "10.200.0.1"}})
    assert not run("source.ip:10.0.0.0/8", {"source": {"ip": "11.0.0.1"}})
    assert run('source.ip:"::1"', {"source": {"ip": "0:0:0:0:0:0:0:1"}})


def test_ip_malformed_value_is_not_indexed() -> None:
    assert not run("source.ip:*", {"source": {"ip": "not-an-ip"}})


def test_boolean_field_and_coercion() -> None:
    f = "kubernetes.audit.requestObject.spec.containers.securityContext.privileged"

    def doc(v: Any) -> dict[str, Any]:
        containers = [
            {"securityContext": {"privileged": False}},
            {"securityContext": {"privileged": v}},
        ]
        return {"kubernetes": {"audit": {"requestObject": {"spec": {"containers": containers}}}}}

    assert run(f"{f}:true", doc(True))
    assert run(f"{f}:true", doc("true"))
    assert not run(f"{f}:true", doc("yes"))
    assert run(f'{f}:"false"', doc(""))


def test_flattened_leaves_are_keyword_strings() -> None:
    src = {"kubernetes": {"audit": {"annotations": {"a/b": True, "n": 42}}}}
    assert run("kubernetes.audit.annotations.a/b:true", src)
    assert run('kubernetes.audit.annotations.a/b:"true"', src)
    assert run("kubernetes.audit.annotations.n:42", src)
    assert not run("kubernetes.audit.annotations.n:42.0", src)


def test_keyword_coerces_json_scalars() -> None:
    assert run("event.action:true", {"event": {"action": True}})
    assert run("event.action:42", {"event": {"action": 42}})


def test_keyword_ignore_above_1024() -> None:
    assert run("user_agent.original:*", {"user_agent": {"original": "a" * 1024}})
    assert not run("user_agent.original:*", {"user_agent": {"original": "a" * 1025}})
    assert not run("user_agent.original:a*", {"user_agent": {"original": "a" * 1025}})


def test_constant_keyword_matches_document_value() -> None:
    assert run(
        'data_stream.dataset:"kubernetes.audit_logs"',
        {"data_stream": {"dataset": "kubernetes.audit_logs"}},
    )
    assert not run("data_stream.dataset:kubernetes", {"data_stream": {"dataset": "kubernetes.x"}})


def test_arrays_and_arrays_of_objects_any_element() -> None:
    src = {"event": [{"action": "a"}, {"action": ["b", "c"]}]}
    assert run("event.action:c", src)
    assert run("event.action:(a and b)", src)
    assert not run("event.action:d", src)


def test_text_match_tokens_lowercase() -> None:
    g = "kubernetes.audit.user.groups"
    src = {"kubernetes": {"audit": {"user": {"groups": ["System:Masters", "team-a"]}}}}
    assert run(f'{g}:"system:masters"', src)
    assert run(f"{g}:team", src)
    assert run(f"{g}:(nothing or A)", src)
    assert not run(f'{g}:"masters"', src)  # "system:masters" is one token (":" is MidLetter)


def test_text_phrase_needs_consecutive_tokens_in_one_value() -> None:
    g = "kubernetes.audit.user.groups"
    src = {"kubernetes": {"audit": {"user": {"groups": ["a b", "c d"]}}}}
    assert run(f'{g}:"b"', src)
    assert not run(f'{g}:"b c"', src)
    assert run(f"{g}:b c", src)  # match: any term
    assert not run(f'{g}:""', src)  # no terms: match_none


def test_text_wildcard_matches_single_tokens() -> None:
    image = "kubernetes.audit.requestObject.spec.containers.image"
    src = {
        "kubernetes": {
            "audit": {
                "requestObject": {
                    "spec": {"containers": [{"image": "docker.elastic.co/beats/Elastic-Agent:8.1"}]}
                }
            }
        }
    }
    assert run(f"{image}:elastic*", src)
    assert run(f"{image}:docker.elastic*", src)
    assert not run(f"{image}:docker.elastic.co/beats*", src)  # "/" splits tokens


def test_standard_tokenizer_subset() -> None:
    tok = indexing.tokenize
    assert tok("can't stop 1,000.5 a.b.c x_y") == ("can't", "stop", "1,000.5", "a.b.c", "x_y")
    assert tok("agent:8.1 S:t foo-bar") == ("agent", "8.1", "s:t", "foo", "bar")
    assert tok("日本 Ünïcode") == ("日", "本", "ünïcode")
    assert tok("a" * 300) == ("a" * 255, "a" * 45)


def test_numbers_and_ranges() -> None:
    assert run("code:404", {"code": "404"})
    assert run("code:404", {"code": 404.9})
    assert not run("code:404.5", {"code": 404})
    assert run("code >= 400 and code < 500", {"code": 404})
    assert not run("code > 404", {"code": [404, 3]})
    assert run("ratio:0.1", {"ratio": 0.1})


def test_keyword_and_ip_ranges() -> None:
    assert run("user.name > m", {"user": {"name": "n"}})
    assert not run("user.name > m", {"user": {"name": "M"}})
    assert run("source.ip >= 10.0.0.5", {"source": {"ip": "10.0.0.9"}})
    assert not run("source.ip < 10.0.0.5", {"source": {"ip": "10.0.0.9"}})


def test_dates_round_like_elasticsearch() -> None:
    day = {"@timestamp": "2024-01-01T23:59:59.999Z"}
    assert run("@timestamp:2024-01-01", day)
    assert run("@timestamp <= 2024-01-01", day)
    assert not run("@timestamp > 2024-01-01", day)
    assert run("@timestamp >= 1704067200000", day)
    assert run('@timestamp < "2024-01-02T02:00:00+02:00"', day)


def test_unmapped_field_never_matches() -> None:
    assert not run("nowhere.field:x", {"nowhere": {"field": "x"}})
    assert not run("nowhere.field:*", {"nowhere": {"field": "x"}})
    assert run("not nowhere.field:x", {"nowhere": {"field": "x"}})
    assert compile_kql("nowhere.field:x").unmapped == frozenset({"nowhere.field"})


def test_match_all_forms() -> None:
    for q in ("", "*", "*:*"):
        assert run(q, {})


# --- refused at load -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("hello", "free text"),
        ("user.*:x", "wildcard field names"),
        ("items:{ a:1 }", "nested"),
        ("source.ip:10.*", "wildcards only work"),
        ("source.ip:nope", "not an IP"),
        (
            "kubernetes.audit.requestObject.spec.containers.securityContext.privileged:yes",
            "boolean",
        ),
        ("code:abc", "not a number"),
        ("event.action:null", "null"),
        ("event.action:a* b", "whitespace"),
        ("@timestamp > now-1d", "date"),
        ("source.ip > 10.0.0.0/8", "network"),
    ],
)
def test_refused_at_load(query: str, needle: str) -> None:
    error = refused(query)
    assert needle in str(error)
    assert error.line == 1 and error.column is not None


# --- required values -----------------------------------------------------------------------------


def test_required_values_of_top_level_conjuncts() -> None:
    compiled = compile_kql(
        'data_stream.dataset:"k" and event.action:(get or list) and not user.name:x and '
        "user_agent.original:curl* and kubernetes.audit.user.groups:a"
    )
    assert dict(compiled.required_values) == {
        "data_stream.dataset": frozenset({"k"}),
        "event.action": frozenset({"get", "list"}),
    }
    assert compiled.fields >= {"user.name", "user_agent.original"}


# --- wildcards against a reference matcher, linear time -------------------------------------------


def reference(parts: tuple[str, ...], text: str) -> bool:
    """Greedy leftmost matching of literal parts separated by '*' (exact for this language)."""
    if len(parts) == 1:
        return text == parts[0]
    if not text.startswith(parts[0]) or not text.endswith(parts[-1]):
        return False
    if len(text) < len(parts[0]) + len(parts[-1]):
        return False
    pos, end = len(parts[0]), len(text) - len(parts[-1])
    for part in parts[1:-1]:
        found = text.find(part, pos, end)
        if found < 0:
            return False
        pos = found + len(part)
    return True


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text("ab?.:", max_size=3), min_size=2, max_size=4), st.text("ab?.:", max_size=8))
def test_wildcard_matches_reference(parts: list[str], text: str) -> None:
    escaped = "*".join(p.replace("\\", "\\\\").replace(":", "\\:") for p in parts)
    query = f"user.name:{escaped}"
    assert run(query, {"user": {"name": text}}) == reference(tuple(parts), text)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=30))
def test_tokenizer_is_total_and_lowercase(text: str) -> None:
    for token in indexing.tokenize(text):
        assert token and len(token) <= 255
        assert indexing.lowercase(token) == token


def test_linear_time_adversarial_wildcard_1mb() -> None:
    text = "a" * 1_000_000
    q = "user.name:*a*a*a*a*a*a*a*a*a*a*b"
    assert not run(q, {"user": {"name": text}})
    g = "kubernetes.audit.user.groups"
    assert not run(f"{g}:*a*a*a*b", {"kubernetes": {"audit": {"user": {"groups": text[:300_000]}}}})


def test_linear_time_adversarial_phrase_1mb() -> None:
    g = "kubernetes.audit.user.groups"
    text = "a " * 500_000
    assert not run(f'{g}:"a a a a b"', {"kubernetes": {"audit": {"user": {"groups": text}}}})
