"""DISSECT: Elasticsearch's dissect parser (libs/dissect) under ES|QL's restrictions.

The cases are DissectParser's own documented examples plus its quirks (consecutive delimiters,
the leading-delimiter offset); property tests check round trips. Elasticsearch does not publish
the dissect library, so there is no JVM oracle here.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.esql.dissect import compile_dissect


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("%{a} %{b},%{c}", "foo bar,baz", {"a": "foo", "b": "bar", "c": "baz"}),
        ("%{a} %{b},%{c}", "foo bar baz", None),
        ("%{a},%{b}:%{c}", "foo,bar,baz", None),
        ("%{a->} %{b} %{c}", "foo         bar baz", {"a": "foo", "b": "bar", "c": "baz"}),
        ("%{a} %{+a} %{+a}", "foo bar baz", {"a": "foobarbaz"}),
        ("%{a} %{+a/2} %{+a/1}", "foo bar baz", {"a": "foobazbar"}),
        ("%{a} %{?skipme} %{c}", "foo bar baz", {"a": "foo", "c": "baz"}),
        ("%{a} %{} %{c}", "foo bar baz", {"a": "foo", "c": "baz"}),
        ("%{a},%{b},%{c},%{d}", "foo,,,", {"a": "foo", "b": "", "c": "", "d": ""}),
        # a repeated delimiter hands the *next* keys empty values, whatever their delimiter
        ("%{a},%{b}:%{c}", "x,,y:z", {"a": "x", "b": "", "c": "y:z"}),
        ("%{a},", "x,y", {"a": "x"}),  # text after the last delimiter is ignored
        ("[%{ts}] %{msg}", "[x] hello world", {"ts": "x", "msg": "hello world"}),
        ("[%{ts}] %{msg}", "[x]", None),
        ("[%{ts}]", "[", None),  # the input must be longer than the leading delimiter
        ("x%{a}", "y1", None),
        ("%{a}", "", None),
        ("%{a} %{b}", "é ü", {"a": "é", "b": "ü"}),
        # ES starts the walk at the leading delimiter's UTF-16 length, used as a byte offset
        ("é%{a} %{b}", "éxy z", {"a": "\ufffdxy", "b": "z"}),
        ("%{a}&%{b}", "a&&b", {"a": "a", "b": ""}),
    ],
)
def test_dissect_cases(pattern: str, text: str, expected: dict[str, str] | None) -> None:
    assert compile_dissect(pattern).match(text) == expected


def test_append_separator_and_columns() -> None:
    dissect = compile_dissect("%{+a} %{b} %{+a} %{?c}", append_separator="|")
    assert dissect.columns == ("a", "b")
    assert dissect.match("1 2 3 4") == {"a": "1|3", "b": "2"}


@pytest.mark.parametrize(
    "pattern", ["%{*a} %{&a}", "no keys", "%{}", "%{?a}", "%{+a/x}", "%{?+a}", "%{a/1}"]
)
def test_rejected_patterns(pattern: str) -> None:
    with pytest.raises(QuerySyntaxError):
        compile_dissect(pattern)


_VALUE = st.text(alphabet="abcé1-_.", min_size=1, max_size=8)


@given(st.lists(_VALUE, min_size=1, max_size=6), st.sampled_from([" ", ",", " | ", "=>", "é"]))
@settings(max_examples=300)
def test_round_trip(values: list[str], delimiter: str) -> None:
    assume(all(delimiter not in v for v in values))
    pattern = delimiter.join(f"%{{k{i}}}" for i in range(len(values)))
    dissect = compile_dissect(pattern)
    assert dissect.match(delimiter.join(values)) == {f"k{i}": v for i, v in enumerate(values)}


@given(st.lists(_VALUE, min_size=2, max_size=6))
@settings(max_examples=200)
def test_append_round_trip(values: list[str]) -> None:
    pattern = " ".join("%{+k}" for _ in values)
    assert compile_dissect(pattern, "/").match(" ".join(values)) == {"k": "/".join(values)}


def test_megabyte_inputs_finish() -> None:
    big = "a" * 1_000_000
    assert compile_dissect("%{a} %{b}").match(big) is None
    assert compile_dissect("%{a->} %{b}").match("x" + " " * 1_000_000 + "y") == {"a": "x", "b": "y"}
    assert compile_dissect("%{a},%{b}").match("," * 1_000_000) == {"a": "", "b": ""}
