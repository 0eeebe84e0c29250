"""EQL single-event queries: parser, Elasticsearch semantics per operator, functions, limits.

Every row of docs/eql-semantics.md names a test here. Documents are ElasticDocument sources; field
types come from a fixed table patched over ``field_type`` so the tests do not depend on the
integration's field list while it is being written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditstream.detections.elastic.document import ElasticDocument
from auditstream.detections.eql import (
    FUNCTIONS,
    SEQUENCE_REFUSED,
    EqlPredicate,
    compile_eql,
    compiler,
    parse_eql,
    parse_eql_statement,
)
from auditstream.detections.eql import ast as a
from auditstream.detections.errors import QuerySyntaxError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "eql-semantics.md"

TYPES = {
    "data_stream.dataset": "constant_keyword",
    "kubernetes.audit.verb": "keyword",
    "kubernetes.audit.user.username": "keyword",
    "kubernetes.audit.user.groups": "keyword",
    "kubernetes.audit.requestURI": "keyword",
    "kubernetes.audit.annotations": "flattened",
    "kubernetes.audit.requestObject.spec.volumes.hostPath": "flattened",
    "message": "text",
    "@timestamp": "date",
    "source.ip": "ip",
    "http.response.status_code": "long",
    "process.interactive": "boolean",
}


@pytest.fixture(autouse=True)
def _field_types(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiler, "field_type", TYPES.get)


def run(query: str, source: dict[str, Any]) -> bool:
    return compile_eql(query)(ElasticDocument(source))


def verb(value: Any) -> dict[str, Any]:
    return {"kubernetes": {"audit": {"verb": value}}}


def error_at(query: str) -> tuple[str, int | None, int | None]:
    with pytest.raises(QuerySyntaxError) as info:
        compile_eql(query)
    return info.value.reason, info.value.line, info.value.column


# --- parser ----------------------------------------------------------------------------------


def test_parser_golden_tree() -> None:
    query = parse_eql(
        'any where data_stream.dataset == "kubernetes.audit_logs" and\n'
        '  not (`kubernetes.audit.annotations.authorization_k8s_io/decision` : "allow" or\n'
        '       kubernetes.audit.verb not in~ ("get", null)) and ?x.y like ("a*", "b")'
    )
    assert query == a.EventQuery(
        None,
        a.And(
            a.And(
                a.Compare(
                    "==", a.FieldRef("data_stream.dataset"), a.Literal("kubernetes.audit_logs")
                ),
                a.Not(
                    a.Or(
                        a.PatternMatch(
                            ":",
                            a.FieldRef(
                                "kubernetes.audit.annotations.authorization_k8s_io/decision"
                            ),
                            (a.Literal("allow"),),
                            True,
                        ),
                        a.InList(
                            a.FieldRef("kubernetes.audit.verb"),
                            (a.Literal("get"), a.Literal(None)),
                            negated=True,
                            insensitive=True,
                        ),
                    )
                ),
            ),
            a.PatternMatch(
                "like", a.FieldRef("x.y", optional=True), (a.Literal("a*"), a.Literal("b"))
            ),
        ),
    )


def test_precedence_not_binds_tighter_than_and_than_or() -> None:
    tree = parse_eql("process where not a == 1 and b == 2 or c == 3").condition
    expected = a.Or(
        a.And(
            a.Not(a.Compare("==", a.FieldRef("a"), a.Literal(1))),
            a.Compare("==", a.FieldRef("b"), a.Literal(2)),
        ),
        a.Compare("==", a.FieldRef("c"), a.Literal(3)),
    )
    assert tree == expected
    assert parse_eql("process where true").category == "process"
    assert parse_eql('"my-category" where true').category == "my-category"


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r'"a\tb\n\r\"\\c"', 'a\tb\n\r"\\c'),
        (r'"\u{41}\u{1F600}"', "A\U0001f600"),
        ('"""raw \\d+ "quoted" """', 'raw \\d+ "quoted" '),
        ('""""x""""', '"x"'),
        ('"\\b\\f"', "\b\f"),
    ],
)
def test_string_literals(literal: str, value: str) -> None:
    query = parse_eql(f"any where f == {literal}")
    assert query.condition == a.Compare("==", a.FieldRef("f"), a.Literal(value))


def test_comments_and_backquoted_names() -> None:
    query = parse_eql(
        "any /* a /* nested */ comment */ where // to the end\n `my``field`.`6x` == -1.5e1"
    )
    assert query.condition == a.Compare("==", a.FieldRef("my`field.6x"), a.Literal(-15.0))


@pytest.mark.parametrize(
    ("query", "message", "line", "column"),
    [
        ('any where f = "x"', "use '==' or ':'", 1, 13),
        ("any where f == 'x'", "double quotes", 1, 16),
        ('any where f == ?"x"', "triple double quotes", 1, 16),
        ('any where\n  f == "a\\qb"', "invalid escape", 2, 10),
        ('any where f == "\\u{1}"', "[2-8] hex digits", 1, 17),
        ('any where f == "abc', "unterminated string", 1, 16),
        ("any where f == 1 == 2", "cannot be chained", 1, 18),
        ("any where f + 1 == 2", "arithmetic", 1, 13),
        ("any where f[0] == 2", "Array indexes", 1, 13),
        ("any where f == 1 | head 5", "pipes are not supported", 1, 18),
        ("any where F == 1 AND g == 2", "unexpected 'AND'", 1, 18),
        ("join [any where true] [any where true]", "join queries", 1, 1),
        ("sample by x [any where true] [any where true]", "sample queries", 1, 1),
        ("any where child of [any where true]", "Process relationships", 1, 11),
        ("any where", "expected an expression", 1, 10),
        ("any where /* open", "unterminated /* comment", 1, 11),
    ],
)
def test_errors_carry_positions(query: str, message: str, line: int, column: int) -> None:
    reason, got_line, got_column = error_at(query)
    assert message in reason
    assert (got_line, got_column) == (line, column)


def test_a_sequence_is_not_a_single_event_query() -> None:
    """compile_eql compiles one event's query; a sequence loads as a stateful rule instead
    (tests/unit/test_stateful_sequence.py), so here it is refused with its position."""
    query = (
        "/* leading comment */\n  sequence by user.name with maxspan=5m\n"
        '  [any where kubernetes.audit.verb == "create"]\n  [any where true]'
    )
    reason, line, column = error_at(query)
    assert reason == SEQUENCE_REFUSED
    assert "loads as a stateful sequence rule" in reason
    assert (line, column) == (2, 3)
    assert isinstance(parse_eql_statement(query), a.SequenceQuery)


# --- case sensitivity, wildcards ---------------------------------------------------------------

CASES = [
    # (query condition, verb value, expected)
    ('kubernetes.audit.verb == "create"', "create", True),
    ('kubernetes.audit.verb == "create"', "Create", False),
    ('kubernetes.audit.verb != "create"', "Create", True),
    ('kubernetes.audit.verb in ("get", "create")', "CREATE", False),
    ('kubernetes.audit.verb in~ ("get", "create")', "CREATE", True),
    ('kubernetes.audit.verb not in~ ("get", "create")', "CREATE", False),
    ('kubernetes.audit.verb : "create"', "CrEaTe", True),
    ('kubernetes.audit.verb : ("get", "cre*")', "CREATED", True),
    ('kubernetes.audit.verb like "cre*"', "CREATE", False),
    ('kubernetes.audit.verb like~ "cre*"', "CREATE", True),
    ('kubernetes.audit.verb like "Cre?te"', "Create", True),
    ('kubernetes.audit.verb like "cre?te"', "creaate", False),
    ('kubernetes.audit.verb regex "cr[a-e]+te"', "create", True),
    ('kubernetes.audit.verb regex "cr[a-e]+te"', "CREATE", False),
    ('kubernetes.audit.verb regex ("x", "c.*")', "create", True),
    ('startsWith(kubernetes.audit.verb, "cre")', "CREATE", False),
    ('startsWith~(kubernetes.audit.verb, "cre")', "CREATE", True),
    ('endsWith(kubernetes.audit.verb, "ate")', "create", True),
    ('endsWith~(kubernetes.audit.verb, "ATE")', "create", True),
    ('stringContains(kubernetes.audit.verb, "EAT")', "create", False),
    ('stringContains~(kubernetes.audit.verb, "EAT")', "create", True),
]


@pytest.mark.parametrize(("condition", "value", "expected"), CASES)
def test_case_sensitivity_of_each_operator(condition: str, value: str, expected: bool) -> None:
    assert run(f"any where {condition}", verb(value)) is expected


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        ('kubernetes.audit.verb == "cre*"', "create", False),  # == never expands wildcards
        ('kubernetes.audit.verb == "cre*"', "cre*", True),
        ('kubernetes.audit.verb like "*"', "", True),  # like "*" is "field exists"
        ('kubernetes.audit.verb like ""', "", True),  # no wildcard: equality with ""
        ('kubernetes.audit.verb like "a\\\\*"', "a\\xyz", True),  # no escape char in EQL
        ('kubernetes.audit.verb like "a\\\\*"', "a*", False),
        ('kubernetes.audit.verb like "50%_?"', "50%_x", True),  # % and _ are literal
        ('kubernetes.audit.verb like "*\\n*"', "line\nbreak", True),  # * spans newlines
        ('kubernetes.audit.verb like "?"', "\U0001f600", True),  # ? is one code point
        ('kubernetes.audit.verb : "ß*"', "SS", False),  # per-code-point case folding only
        ('kubernetes.audit.verb : "é"', "É", True),
    ],
)
def test_wildcards(condition: str, value: str, expected: bool) -> None:
    assert run(f"any where {condition}", verb(value)) is expected


# --- null, missing, arrays -------------------------------------------------------------------

USERNAME = "kubernetes.audit.user.username"


@pytest.mark.parametrize(
    ("condition", "source", "expected"),
    [
        (f"{USERNAME} == null", {}, True),
        (f"{USERNAME} == null", {"kubernetes.audit.user.username": None}, True),
        (f"{USERNAME} == null", {"kubernetes": {"audit": {"user": {"username": []}}}}, True),
        (f"{USERNAME} == null", {"kubernetes.audit.user.username": ""}, False),
        (f"{USERNAME} != null", {"kubernetes.audit.user.username": ""}, True),
        (f'{USERNAME} == ""', {"kubernetes.audit.user.username": ""}, True),
        (f'{USERNAME} == ""', {}, False),
        (f'{USERNAME} == "x"', {}, False),
        (f'{USERNAME} != "x"', {}, True),  # must_not term: true when missing
        (f'not {USERNAME} == "x"', {}, True),
        (f'not ({USERNAME} == "x" and {USERNAME} like "x*")', {}, True),
        (f'{USERNAME} not in ("x")', {}, True),
        (f'{USERNAME} like "*"', {}, False),
        (f"?{USERNAME} != null", {}, False),
        (f'{USERNAME} in ("x", null)', {}, False),  # null items are dropped, not matched
    ],
)
def test_null_and_missing_fields(condition: str, source: dict[str, Any], expected: bool) -> None:
    assert run(f"any where {condition}", source) is expected


GROUPS = {"kubernetes": {"audit": {"user": {"groups": ["system:authenticated", "dev"]}}}}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ('kubernetes.audit.user.groups == "dev"', True),
        ('kubernetes.audit.user.groups != "dev"', False),  # no value may equal it
        ('not kubernetes.audit.user.groups == "dev"', False),
        ('kubernetes.audit.user.groups != "ops"', True),
        ('kubernetes.audit.user.groups in ("ops", "dev")', True),
        ('kubernetes.audit.user.groups not in ("ops", "dev")', False),
        ('kubernetes.audit.user.groups like "system:*"', True),
        (
            'kubernetes.audit.user.groups == "dev" and kubernetes.audit.user.groups == "system:authenticated"',
            True,
        ),
        ('kubernetes.audit.user.groups > "d"', True),
    ],
)
def test_arrays_match_by_any_element(condition: str, expected: bool) -> None:
    assert run(f"any where {condition}", GROUPS) is expected


def test_object_arrays_and_dotted_keys_flatten() -> None:
    source = {"kubernetes": [{"audit": {"verb": "get"}}, {"audit.verb": "create"}]}
    assert run('any where kubernetes.audit.verb == "create"', source)
    assert not run('any where kubernetes.audit.verb != "get"', source)


# --- categories, field types -------------------------------------------------------------------


def test_event_category_is_a_term_on_event_category() -> None:
    assert run("process where true", {"event": {"category": ["network", "process"]}})
    assert not run("process where true", {"event": {"category": "Process"}})
    assert not run("process where true", {})
    assert run("any where true", {})
    assert not run("any where false", {})


@pytest.mark.parametrize(
    ("condition", "source", "expected"),
    [
        (
            '`kubernetes.audit.annotations.authorization_k8s_io/decision` == "allow"',
            {"kubernetes": {"audit": {"annotations": {"authorization_k8s_io/decision": "allow"}}}},
            True,
        ),
        ("http.response.status_code >= 400", {"http": {"response": {"status_code": 403}}}, True),
        ("http.response.status_code == 403", {"http.response.status_code": "403"}, True),
        ("http.response.status_code in (200, 201)", {"http.response.status_code": 403}, False),
        ("process.interactive == true", {"process": {"interactive": "true"}}, True),
        ("process.interactive == false", {"process": {"interactive": True}}, False),
        ('source.ip == "10.1.2.3"', {"source": {"ip": "10.1.2.3"}}, True),
        ('source.ip == "10.0.0.0/8"', {"source": {"ip": "10.1.2.3"}}, True),
        ('source.ip == "::ffff:10.1.2.3"', {"source": {"ip": "10.1.2.3"}}, True),
        (
            'cidrMatch(source.ip, "192.168.0.0/16", "10.0.0.0/8")',
            {"source": {"ip": ["1.1.1.1", "10.9.9.9"]}},
            True,
        ),
        ('cidrMatch(source.ip, "192.168.0.0/16")', {"source": {"ip": "not-an-ip"}}, False),
        # dynamic: false: a field the data stream does not map is never matched
        ("unmapped.flag == true", {"unmapped": {"flag": True}}, False),
        ('unmapped.word == "true"', {"unmapped": {"word": True}}, False),
        ('unmapped.word == "5"', {"unmapped": {"word": 5}}, False),
        ("unmapped.word == null", {"unmapped": {"word": 5}}, True),
    ],
)
def test_field_types(condition: str, source: dict[str, Any], expected: bool) -> None:
    assert run(f"any where {condition}", source) is expected


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ('message == "x"', "EQL does not support text fields"),
        ('@timestamp > "2024"', "date fields are not supported"),
        ('kubernetes.audit.annotations == "x"', "flattened field is an object"),
        ("kubernetes.audit.verb == 5", "cannot compare"),
        ('http.response.status_code like "4*"', "only compares strings"),
        ("kubernetes.audit.verb == kubernetes.audit.stage", "Comparisons against fields"),
        ("kubernetes.audit.verb in (null)", "at least one non-null"),
        ('kubernetes.audit.verb regex~ "a"', "regex~ is not supported"),
        ('kubernetes.audit.verb regex "a{"', "invalid regex"),
        ("length(kubernetes.audit.verb) > 3", "Unknown function [length]"),
        ('cidrMatch~(source.ip, "10.0.0.0/8")', "no case-insensitive variant"),
        ("startsWith(kubernetes.audit.verb)", "takes 2 arguments"),
        ('endsWith(kubernetes.audit.verb, "*x")', "wildcard syntax"),
        ('cidrMatch(kubernetes.audit.verb, "10.0.0.0/8")', "needs a ip field"),
        ('cidrMatch(source.ip, "10.0.0.0/33")', "invalid CIDR"),
        ("kubernetes.audit.verb", "a condition must be"),
        ("kubernetes.audit.verb < null", "never holds"),
    ],
)
def test_refused_at_load(condition: str, message: str) -> None:
    reason, line, column = error_at(f"any where {condition}")
    assert message in reason
    assert line == 1
    assert column is not None
    assert column >= 11


# --- functions: table, parser and docs agree -------------------------------------------------


def test_function_table_parser_and_docs_agree() -> None:
    docs = DOCS.read_text(encoding="utf-8")
    documented = dict(re.findall(r"^\| `(\w+)(?:~)?\(` \| (\S+) \|", docs, flags=re.MULTILINE))
    assert set(documented) == set(FUNCTIONS)
    for name, spec in FUNCTIONS.items():
        arity = str(spec.min_args) if spec.max_args == spec.min_args else f"{spec.min_args}+"
        assert documented[name] == arity
        call = parse_eql(f'any where {name}~(f, "x")').condition
        assert call == a.Call(name, (a.FieldRef("f"), a.Literal("x")), insensitive=True)
        assert (f"`{name}~(`" in docs) is spec.insensitive_variant


def test_function_results_compare_with_booleans() -> None:
    assert run('any where startsWith(kubernetes.audit.verb, "cr") == true', verb("create"))
    assert run('any where startsWith(kubernetes.audit.verb, "cr") != true', verb("get"))
    assert run('any where false == startsWith(kubernetes.audit.verb, "cr")', {})


# --- required values, fields -----------------------------------------------------------------


def test_required_values_contract() -> None:
    compiled = compile_eql(
        'process where kubernetes.audit.verb in ("get", "create") and\n'
        '  kubernetes.audit.verb == "create" and "pods" == kubernetes.audit.objectRef.resource'
        ' and (kubernetes.audit.user.username == "x" or true)'
        ' and kubernetes.audit.requestURI not in ("/a") and kubernetes.audit.user.groups in~ ("a")'
    )
    assert isinstance(compiled, EqlPredicate)
    assert dict(compiled.required_values) == {
        "event.category": frozenset({"process"}),
        "kubernetes.audit.verb": frozenset({"create"}),
        "kubernetes.audit.objectRef.resource": frozenset({"pods"}),
    }
    assert compiled.fields >= {"event.category", "kubernetes.audit.user.username"}


# --- linear time and properties ----------------------------------------------------------------

MEGABYTE = 1_000_000
HOST_PATH = "kubernetes.audit.requestObject.spec.volumes.hostPath.path"
"""A flattened field: no ignore_above, so a megabyte value is indexed and really matched (a
keyword field would not index it at all)."""


def host_path(value: str) -> dict[str, Any]:
    return {
        "kubernetes": {
            "audit": {"requestObject": {"spec": {"volumes": [{"hostPath": {"path": value}}]}}}
        }
    }


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        (
            'kubernetes.audit.requestObject.spec.volumes.hostPath.path like "*a*a*a*a*a*a*a*a*a*a*b"',
            "a" * MEGABYTE,
            False,
        ),
        (
            'kubernetes.audit.requestObject.spec.volumes.hostPath.path like~ "*A?A?A?A?A*b"',
            "a" * MEGABYTE + "B",
            True,
        ),
        (
            'kubernetes.audit.requestObject.spec.volumes.hostPath.path : "*a*a*a*a*c"',
            "a" * MEGABYTE,
            False,
        ),
        (
            'kubernetes.audit.requestObject.spec.volumes.hostPath.path regex "(a|aa)*b"',
            "a" * MEGABYTE,
            False,
        ),
        (
            'kubernetes.audit.requestObject.spec.volumes.hostPath.path regex "(a+)+"',
            "a" * MEGABYTE,
            True,
        ),
        (
            'stringContains~(kubernetes.audit.requestObject.spec.volumes.hostPath.path, "aab")',
            "a" * MEGABYTE,
            False,
        ),
        (
            'kubernetes.audit.requestObject.spec.volumes.hostPath.path in~ ("aaaa")',
            "a" * MEGABYTE,
            False,
        ),
    ],
)
def test_linear_time_on_one_megabyte_adversarial_values(
    condition: str, value: str, expected: bool
) -> None:
    assert run(f"any where {condition}", host_path(value)) is expected


def glob(pattern: str, text: str) -> bool:
    """Reference: EQL wildcard by dynamic programming (``*``, ``?``; no escapes)."""
    reach = [True] + [False] * len(text)
    for ch in pattern:
        if ch == "*":
            for j in range(1, len(text) + 1):
                reach[j] = reach[j] or reach[j - 1]
        else:
            reach = [False] + [reach[j] and (ch == "?" or ch == text[j]) for j in range(len(text))]
    return reach[-1]


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@settings(max_examples=200, deadline=None)
@given(st.text("ab*?\\", max_size=6), st.text("ab*?\\", max_size=8))
def test_like_agrees_with_reference_glob(pattern: str, text: str) -> None:
    query = f"any where kubernetes.audit.verb like {_quote(pattern)}"
    assert run(query, verb(text)) is glob(pattern, text)


@settings(max_examples=200, deadline=None)
@given(st.text("aAbB", max_size=5), st.text("aAbB", max_size=5))
def test_insensitive_equality_is_ascii_case_folding(literal: str, value: str) -> None:
    assert run(f"any where kubernetes.audit.verb : {_quote(literal)}", verb(value)) is (
        literal.lower() == value.lower()
    )
    assert run(f"any where kubernetes.audit.verb == {_quote(literal)}", verb(value)) is (
        literal == value
    )


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.sampled_from(["get", "create", "Get", ""]), max_size=3),
    st.sampled_from(["get", "create"]),
)
def test_not_equals_is_the_complement_of_equals(values: list[str], literal: str) -> None:
    source = verb(values)
    eq = run(f'any where kubernetes.audit.verb == "{literal}"', source)
    assert run(f'any where kubernetes.audit.verb != "{literal}"', source) is (not eq)
    assert eq is (literal in values)
