"""Golden tests for the ES|QL lexer and parser: query text in, syntax tree or positioned error out."""

from __future__ import annotations

import re

import pytest

from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.esql import ast
from auditstream.detections.esql.parser import parse_query

SEED_PREFIX = """FROM logs-kubernetes.audit_logs-* metadata _id, _index, _version
| WHERE kubernetes.audit.objectRef.subresource == "exec"
AND kubernetes.audit.requestURI LIKE "*command=*"
| EVAL decoded_uri = URL_DECODE(kubernetes.audit.requestURI)
| GROK decoded_uri "%{DATA}/exec\\\\?%{DATA:raw_commands}&(?:container|stdin|stdout|stderr)=%{GREEDYDATA}"
| EVAL command = REPLACE(raw_commands, "command=", "")
| EVAL command = REPLACE(command, "&", " ")
| EVAL Esql.executed_command = REPLACE(command, "\\\\+", " ")"""


def where(text: str) -> ast.Expr:
    command = parse_query(f"FROM logs-* | WHERE {text}").commands[0]
    assert isinstance(command, ast.Where)
    return command.condition


def test_seed_prefix_parses_to_the_expected_commands() -> None:
    query = parse_query(SEED_PREFIX)
    assert query.source == ast.From(
        ("logs-kubernetes.audit_logs-*",), ("_id", "_index", "_version")
    )
    kinds = [type(c).__name__ for c in query.commands]
    assert kinds == ["Where", "Eval", "Grok", "Eval", "Eval", "Eval"]
    grok = query.commands[2]
    assert isinstance(grok, ast.Grok)
    # "\\?" in a double-quoted string reaches GROK as \? (one backslash).
    assert (
        grok.pattern
        == "%{DATA}/exec\\?%{DATA:raw_commands}&(?:container|stdin|stdout|stderr)=%{GREEDYDATA}"
    )
    last = query.commands[5]
    assert isinstance(last, ast.Eval)
    assert last.assignments[0][0] == "Esql.executed_command"
    call = last.assignments[0][1]
    assert isinstance(call, ast.Call) and call.args[1] == ast.Literal("\\+")


def test_positions_do_not_affect_equality() -> None:
    a = parse_query("FROM logs-*\n| WHERE x == 1")
    b = parse_query("FROM logs-*   |   WHERE   x==1")
    assert a == b
    assert a.commands[0].pos != b.commands[0].pos


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ('"a\\tb"', "a\tb"),
        ('"a\\nb"', "a\nb"),
        ('"a\\rb"', "a\rb"),
        ('"say \\"hi\\""', 'say "hi"'),
        ('"back\\\\slash"', "back\\slash"),
        ('"""raw \\s+ \\d"""', "raw \\s+ \\d"),
        ('"""has "quotes" inside"""', 'has "quotes" inside'),
        ('""""x""""', '"x"'),  # ANTLR's rule lets the closing run swallow two extra quotes
    ],
)
def test_string_literals(literal: str, value: str) -> None:
    assert where(f"x == {literal}") == ast.Compare("==", ast.FieldRef("x"), ast.Literal(value))


@pytest.mark.parametrize("bad", ['"\\+"', '"\\d"', '"\\u0041"'])
def test_double_quoted_strings_reject_other_escapes(bad: str) -> None:
    with pytest.raises(QuerySyntaxError, match="invalid escape"):
        where(f"x == {bad}")


def test_strings_may_not_span_lines() -> None:
    with pytest.raises(QuerySyntaxError, match="unterminated"):
        where('x == "a\nb"')
    with pytest.raises(QuerySyntaxError, match="unterminated triple-quoted"):
        where('x == """a\nb"""')


def test_precedence_not_binds_tighter_than_and_which_binds_tighter_than_or() -> None:
    a, b, c = ast.FieldRef("a"), ast.FieldRef("b"), ast.FieldRef("c")
    t = ast.Literal(True)
    expr = where("NOT a == true AND b == true OR c == true")
    expected = ast.Logical(
        "OR",
        ast.Logical("AND", ast.Not(ast.Compare("==", a, t)), ast.Compare("==", b, t)),
        ast.Compare("==", c, t),
    )
    assert expr == expected


def test_predicates() -> None:
    x = ast.FieldRef("x")
    assert where('x NOT LIKE "a*"') == ast.PatternMatch(x, ("a*",), False, True)
    assert where('x RLIKE ("a.*", "b")') == ast.PatternMatch(x, ("a.*", "b"), True, False)
    assert where("x IS NOT NULL") == ast.IsNull(x, True)
    assert where("x NOT IN (1, -2.5, null)") == ast.InList(
        x, (ast.Literal(1), ast.Literal(-2.5), ast.Literal(None)), True
    )


def test_comments_are_ignored() -> None:
    query = parse_query("FROM logs-* // trailing\n/* block\ncomment */ | WHERE a == 1 // x")
    assert len(query.commands) == 1


def test_eval_without_a_name_uses_the_expression_text() -> None:
    command = parse_query("FROM logs-* | EVAL TO_LOWER(user.name), y = 1").commands[0]
    assert isinstance(command, ast.Eval)
    assert [name for name, _ in command.assignments] == ["TO_LOWER(user.name)", "y"]


def test_keep_drop_rename_patterns() -> None:
    query = parse_query(
        "FROM logs-* | KEEP kubernetes.*, `a.b`, * | DROP x* | RENAME a AS b, c = d"
    )
    keep, drop, rename = query.commands
    assert keep == ast.Keep(("kubernetes.*", "a.b", "*"))
    assert drop == ast.Drop(("x*",))
    assert rename == ast.Rename((("a", "b"), ("d", "c")))


@pytest.mark.parametrize(
    ("query", "message", "line", "column"),
    [
        (
            "FROM logs-*\n| INLINESTATS count = COUNT(*) BY user.name",
            "INLINESTATS is not supported",
            2,
            3,
        ),
        (
            "FROM logs-*\n| WHERE a == 1\n| EVAL x = 1\n| EVAL y = FOO(x)",
            "unknown function FOO",
            4,
            12,
        ),
        ("ROW a = 1", "must start with FROM", 1, 1),
        ("FROM logs-* | WHERE a * 1 > 2", "operator * is not supported", 1, 23),
        ("FROM logs-* | WHERE a == ", "expected an expression", 1, 26),
        ("FROM logs-* | MV_EXPAND a", "MV_EXPAND is not supported", 1, 15),
        ("FROM logs-* | WHERE a LIKE b", "expected string", 1, 28),
        ("FROM logs-* | FLY", "unknown command FLY", 1, 15),
    ],
)
def test_errors_carry_positions(query: str, message: str, line: int, column: int) -> None:
    with pytest.raises(QuerySyntaxError, match=re.escape(message)) as caught:
        parse_query(query)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert f"at line {line}, column {column}" in str(caught.value)
