"""Golden tests for compiled ES|QL: three-valued logic, functions, scoping, shared stages.

Each expectation is what Elasticsearch's ES|QL gives for the same expression on the same document
(see docs/esql-semantics.md for the table that points back here).
"""

from __future__ import annotations

from typing import Any

import pytest

from auditstream.detections.errors import MalformedEvent, QuerySyntaxError
from tests.unit.esql_harness import audit_event, run, value, where

# --- three-valued logic ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "kept"),
    [
        ("missing.field == 1", False),  # null == 1 is null, WHERE drops null
        ("NOT missing.field == 1", False),  # NOT null is null
        ("missing.field != 1", False),
        ("missing.field IS NULL", True),
        ("missing.field IS NOT NULL", False),
        ("true OR missing.field == 1", True),
        ("false OR missing.field == 1", False),
        ("missing.field == 1 OR true", True),
        ("false AND missing.field == 1", False),
        ("true AND missing.field == 1", False),
        ("NOT (true AND missing.field == 1)", False),
        ("NOT (false AND missing.field == 1)", True),
        ('kubernetes.audit.verb == "create"', True),
        ('kubernetes.audit.verb != "create"', False),
        ('kubernetes.audit.verb IN ("get", "create")', True),
        ('kubernetes.audit.verb IN ("get", null)', False),  # no match and a null: null
        ('kubernetes.audit.verb NOT IN ("get", null)', False),
        ('kubernetes.audit.verb NOT IN ("get", "list")', True),
        ("kubernetes.audit.verb == 1", False),  # keyword vs number: no match, never an error
        ('kubernetes.audit.verb < "d"', True),
        ('kubernetes.audit.verb > "d"', False),
    ],
)
def test_where_keeps_only_true(condition: str, kept: bool) -> None:
    assert where(condition) is kept


def test_multivalued_fields_compare_to_null() -> None:
    # user.groups has two values: a comparison on a multi-value is null (with a warning) in ES|QL.
    assert not where('kubernetes.audit.user.groups == "devs"')
    assert not where('kubernetes.audit.user.groups != "devs"')
    assert where("kubernetes.audit.user.groups IS NOT NULL")


def test_like_and_rlike_on_null_are_null() -> None:
    assert not where('missing.field LIKE "*"')
    assert not where('NOT missing.field LIKE "*"')
    assert not where('missing.field RLIKE ".*"')
    assert where('kubernetes.audit.requestURI LIKE "*command=*"')
    assert not where('kubernetes.audit.requestURI NOT LIKE "*command=*"')


# --- functions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('URL_DECODE("a%20b+c")', "a b c"),
        ('URL_DECODE("bad%zz")', None),
        ('URL_DECODE("trailing%4")', None),
        ('REPLACE("a+b+c", "\\\\+", " ")', "a b c"),
        ('REPLACE("abc", "x*", "-")', "-a-b-c-"),
        ('REPLACE("command=ls&command=-l", "command=", "")', "ls&-l"),
        ('REPLACE(missing.field, "a", "b")', None),
        ('TO_LOWER("AbC")', "abc"),
        ('TO_UPPER("AbC")', "ABC"),
        ('CONCAT("a", "b", "c")', "abc"),
        ('CONCAT("a", missing.field)', None),
        ('LENGTH("héllo")', 5),
        ('SUBSTRING("kubernetes", 1, 4)', "kube"),
        ('SUBSTRING("kubernetes", 0, 4)', "kube"),
        ('SUBSTRING("kubernetes", -3)', "tes"),
        ('SUBSTRING("kubernetes", 5)', "rnetes"),
        ('SUBSTRING("kubernetes", 20, 2)', ""),
        ('SUBSTRING("kubernetes", 2, -1)', None),
        ('STARTS_WITH("kubectl", "kube")', True),
        ('ENDS_WITH("kubectl", "ctl")', True),
        ('LOCATE("kubernetes", "ne")', 6),
        ('LOCATE("kubernetes", "zz")', 0),
        ('LOCATE("kubernetes", "e", 5)', 7),
        ('TRIM("  \\t padded \\n ")', "padded"),
        ('SPLIT("a,b,,c", ",")', ("a", "b", "", "c")),
        ('SPLIT("abc", ",")', "abc"),
        ('CASE(false, "a", missing.field == 1, "b", "c")', "c"),
        ('CASE(false, "a")', None),
        ('COALESCE(missing.field, null, "x")', "x"),
        ("COALESCE(missing.field)", None),
        ("MV_COUNT(kubernetes.audit.user.groups)", 2),
        ("MV_COUNT(kubernetes.audit.verb)", 1),
        ("MV_COUNT(missing.field)", None),
        ('MV_CONTAINS(kubernetes.audit.user.groups, "devs")', True),
        ('MV_CONTAINS(kubernetes.audit.user.groups, "ops")', False),
        ("MV_CONTAINS(kubernetes.audit.user.groups, missing.field)", True),
        ('CIDR_MATCH(source.ip, "192.0.2.0/24")', True),
        ('CIDR_MATCH(source.ip, "10.0.0.0/8", "198.51.100.0/24")', False),
        ('CIDR_MATCH(missing.field, "10.0.0.0/8")', None),
        ("TO_STRING(true)", "true"),
        ("TO_STRING(42)", "42"),
        ("TO_STRING(1.5)", "1.5"),
        ("TO_STRING(1.0E20)", "1.0E20"),
        ("TO_STRING(kubernetes.audit.user.groups)", ("system:authenticated", "devs")),
        ('TO_INTEGER("42")', 42),
        ('TO_INTEGER("+7")', 7),
        ('TO_INTEGER("5.5")', 6),
        ('TO_INTEGER("2147483648")', None),
        ('TO_INTEGER("forty")', None),
        ("TO_INTEGER(true)", 1),
    ],
)
def test_function_values(expression: str, expected: Any) -> None:
    assert value(expression) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('FROM logs-* | EVAL x = REPLACE("a", "(?<=a)b", "")', "REPLACE"),
        ('FROM logs-* | EVAL x = SPLIT("a", "::")', "single-byte"),
        ('FROM logs-* | EVAL x = CIDR_MATCH(source.ip, "not a cidr")', "CIDR_MATCH"),
        ('FROM logs-* | EVAL x = LENGTH("a", "b")', "LENGTH takes 1 arguments"),
        ('FROM logs-* | WHERE x RLIKE "a(b"', "line 1"),
    ],
)
def test_bad_constant_arguments_fail_at_load(query: str, message: str) -> None:
    with pytest.raises(QuerySyntaxError) as caught:
        run(query)
    assert message in str(caught.value) or caught.value.line == 1


# --- scoping and output columns --------------------------------------------------------------


def test_from_must_read_kubernetes_audit_logs() -> None:
    with pytest.raises(QuerySyntaxError, match="does not read Kubernetes audit logs"):
        run("FROM logs-aws.cloudtrail-* | WHERE true")
    assert run("FROM logs-*, other | WHERE true") is not None
    assert run("FROM remote:logs-kubernetes.audit_logs-* | WHERE true") is not None


def test_metadata_columns_need_metadata() -> None:
    with pytest.raises(QuerySyntaxError, match=r"Unknown column \[_index\]"):
        run("FROM logs-* | WHERE _index IS NOT NULL")
    assert run('FROM logs-* METADATA _index | WHERE _index LIKE "logs-kubernetes*"') is not None


def test_output_columns_follow_keep_drop_rename() -> None:
    fields = run('FROM logs-* | EVAL a = "1", b = "2", c = "3" | DROP b | RENAME c AS d | KEEP *')
    assert fields == {"a": "1", "d": "3"}
    assert run('FROM logs-* | EVAL a = "1", b = "2" | KEEP b') == {"b": "2"}


def test_keep_hides_source_fields_from_later_commands() -> None:
    with pytest.raises(QuerySyntaxError, match=r"Unknown column \[kubernetes.audit.verb\]"):
        run('FROM logs-* | EVAL a = "1" | KEEP a | WHERE kubernetes.audit.verb == "create"')


def test_eval_overwrites_and_later_assignments_see_earlier_ones() -> None:
    fields = run('FROM logs-* | EVAL x = "a", y = CONCAT(x, "b") | EVAL x = CONCAT(y, "c")')
    assert fields == {"y": "ab", "x": "abc"}


def test_grok_without_match_nulls_every_column() -> None:
    fields = run('FROM logs-* | GROK kubernetes.audit.verb "%{WORD:a}-%{WORD:b}"')
    assert fields == {"a": None, "b": None}
    fields = run('FROM logs-* | GROK kubernetes.audit.user.username "%{WORD:a}"')
    assert fields == {"a": "alice"}


def test_limit_zero_drops_and_sort_is_accepted() -> None:
    assert run("FROM logs-* | LIMIT 0") is None
    assert run("FROM logs-* | SORT kubernetes.audit.verb DESC NULLS LAST | LIMIT 10") == {}


def test_events_without_the_field_do_not_fire() -> None:
    event = audit_event()
    del event["objectRef"]
    assert not where('kubernetes.audit.objectRef.subresource == "exec"', event)


def test_a_failure_elasticsearch_raises_at_run_time_dead_letters_the_event() -> None:
    # ES fails the whole query when a typed GROK capture cannot convert ("create" as int); per
    # event, that event cannot be evaluated: it becomes a dead letter, never a crash.
    with pytest.raises(MalformedEvent) as caught:
        run('FROM logs-* | GROK kubernetes.audit.verb "%{WORD:n:int}"')
    assert caught.value.reason == "evaluation_error"
