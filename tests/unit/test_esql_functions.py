"""The ES|QL function table is the one list: the parser, the compiler and the docs agree with it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.esql.compiler import compile_query
from auditstream.detections.esql.functions import FUNCTIONS
from auditstream.detections.esql.parser import parse_query
from auditstream.detections.ruleset.loader import load_rules

DOC = Path(__file__).resolve().parents[2] / "docs" / "esql-semantics.md"
SEED = Path(__file__).resolve().parents[2] / "detections" / "rules"


def _documented_functions() -> set[str]:
    text = DOC.read_text(encoding="utf-8")
    paragraph = text.split("\nFunctions: ", 1)[1].split("Any other name", 1)[0]
    return set(re.findall(r"`([A-Z_]+)`", paragraph))


def test_docs_list_exactly_the_functions_of_the_table() -> None:
    assert _documented_functions() == set(FUNCTIONS)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_parser_accepts_and_compiler_checks_every_function(name: str) -> None:
    """Each entry parses, and its arity is enforced where the call is compiled."""
    function = FUNCTIONS[name]
    wrong = [function.min_args - 1] if function.min_args > 0 else []
    if function.max_args is not None:
        wrong.append(function.max_args + 1)
    assert wrong
    for count in wrong:
        arguments = ", ".join(["x"] * count)
        query = f'FROM logs-* | EVAL x = "a" | EVAL y = {name}({arguments})'
        with pytest.raises(QuerySyntaxError, match=rf"^{name} takes .* arguments, got {count}"):
            compile_query(parse_query(query))


def test_a_name_outside_the_table_is_an_unknown_function_with_its_position() -> None:
    with pytest.raises(QuerySyntaxError) as err:
        parse_query("FROM logs-*\n| WHERE NOT_A_FUNCTION(x) == 1")
    assert err.value.reason == "unknown function NOT_A_FUNCTION"
    assert (err.value.line, err.value.column) == (2, 9)


def test_unknown_function_in_a_rule_file_is_reported_not_raised(tmp_path: Path) -> None:
    """One bad rule is a problem with file, line and column; the other rules still load."""
    source = (SEED / "kubernetes_pod_exec_potential_reverse_shell.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(source.replace("URL_DECODE(", "URL_DECODE_TWICE(", 1), encoding="utf-8")
    rules = load_rules([tmp_path], builtin=True)
    (problem,) = rules.problems
    assert problem.path == str(bad)
    assert re.fullmatch(
        r"unknown function URL_DECODE_TWICE at line \d+, column \d+", problem.reason
    ), problem.reason
    assert len(rules.rules) == len(list(SEED.glob("*.toml")))
