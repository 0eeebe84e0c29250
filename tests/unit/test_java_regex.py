"""REPLACE = Pattern.compile(regex).matcher(str).replaceAll(newStr) as ES|QL's Replace runs it.

Hand-picked cases pin each Java rule; a property test checks literal patterns against
``str.replace``; a differential test compares random patterns and texts with the real JDK
(tests/oracle/jdk, skipped without a JDK 21+ toolchain).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.regex.java.pattern import (
    MAX_RESULT_UTF16,
    ReplacementError,
    compile_java_regex,
)
from tests.oracle.jdk.oracle_client import JdkOracle


def replace(text: str, pattern: str, replacement: str) -> str | None:
    return compile_java_regex(pattern).replace_all(text, replacement)


def test_seed_rule_replacements() -> None:
    raw = "command=sh&command=-c&command=cat+%2Fetc%2Fshadow"
    step = replace(raw, "command=", "")
    assert step == "sh&-c&cat+%2Fetc%2Fshadow"
    step = replace(step, "&", " ")
    assert step == "sh -c cat+%2Fetc%2Fshadow"
    assert replace(step, r"\+", " ") == "sh -c cat %2Fetc%2Fshadow"


@pytest.mark.parametrize(
    ("text", "pattern", "replacement", "expected"),
    [
        ("abc", "x*", "-", "-a-b-c-"),  # empty matches between every character
        ("baaac", "a*", "-", "-b--c-"),  # an empty match right after a non-empty one
        ("", "x*", "-", "-"),
        ("abc", "", "-", "-a-b-c-"),
        ("a.b", ".", "x", "xxx"),
        ("a\nb\rc\u0085d\u2028e\u2029f", ".", "x", "x\nx\rx\u0085x\u2028x\u2029x"),
        ("a\nb", "(?s).", "x", "xxx"),
        ("a\nb\rc", "(?d).", "x", "x\nxxx"),
        ("a \t\n\x0b\f\rb\u00a0", r"\s", "_", "a______b\u00a0"),  # ASCII \s only
        ("é1٣", r"\w|\d", "_", "é_٣"),
        ("a\u00a0b\u2003", r"\h", "_", "a_b_"),
        ("x\u2028y", r"\v", "_", "x_y"),
        ("x\r\ny\nz", r"\R", "_", "x_y_z"),
        ("AbC é É", "(?i)[a-c]|é", "_", "___ _ É"),  # CASE_INSENSITIVE is ASCII-only
        ("abcxyz", "[a-z&&[^b-y]]", "_", "_bcxy_"),
        ("a-b]c", "[]-]", "_", "a_b_c"),
        ("a.b*c", r"\Q.b*\E", "_", "a_c"),
        ("tab\there", r"\x09|\u0009|\011|\t", "_", "tab_here"),
        ("a😀b", r"\x{1F600}|\uD83D\uDE00", "_", "a_b"),
        ("ab\n", "b$", "X", "aX\n"),  # $ before a final line terminator
        ("ab\r\n", "b$", "X", "aX\r\n"),
        ("ab\r\n", "\r$", "X", "ab\r\n"),  # never between \r and \n
        ("ab\n\n", "b$", "X", "ab\n\n"),  # only the final terminator
        ("ab\u2028", "b\\Z", "X", "aX\u2028"),
        ("a\nb", "^.", "X", "X\nb"),
        ("joe@host x", r"(\w+)@(?<d>\w+)", "$2:${d}:$1", "host:host:joe x"),
        ("abc", "(b)", "\\$1\\\\", "a$1\\c"),
        ("abc", "(b)", "$11", "ab1c"),  # the longest existing group number wins
        ("abc", "(b)|(z)", "[$2]", "a[]c"),  # an unmatched group appends nothing
        ("abc", "z", "$", "abc"),  # no match: the replacement is never parsed
        ("abc", "b", "x\\", None),  # trailing backslash: IllegalArgumentException
        ("abc", "b", "$", None),
        ("abc", "b", "${", None),
        ("abc", "(?<n>b)", "${m}", None),
        ("abc", "b", "$x", None),
        ("word word", r"\bword\b", "W", "W W"),
        ("ab", "a(?=b)|b", "_", None),  # replaced below: lookahead is rejected at compile
    ][:-1],
)
def test_replace_cases(text: str, pattern: str, replacement: str, expected: str | None) -> None:
    assert replace(text, pattern, replacement) == expected


def test_missing_group_number_fails_the_query() -> None:
    with pytest.raises(ReplacementError):
        replace("abc", "(b)", "$2")
    assert replace("abc", "z", "$2") == "abc"


@pytest.mark.parametrize(
    "pattern",
    [
        "a(?=b)",
        "(?<!a)b",
        "(?>a)",
        "a*+",
        r"(a)\1",
        r"\k<n>(?<n>a)",
        "(?m)^a",
        r"\Ga",
        "a{1001}",
        "(?U)a",
        "a$b",
        "(a$)*",
        "(",
        "a)",
        "[a",
        "*a",
        "a**",
        "a{2,1}",
        r"\p{IsLatin}",
        r"\y",
        "(?<1a>x)",
        "(?<a>x)(?<a>y)",
        "(^|b){2}",  # Java stops a loop after an empty iteration; RE2 does not
        "(a*)*",
    ],
)
def test_invalid_or_unsupported_patterns_raise(pattern: str) -> None:
    with pytest.raises(QuerySyntaxError):
        compile_java_regex(pattern)


def test_error_messages_carry_offsets() -> None:
    with pytest.raises(QuerySyntaxError, match="offset 2"):
        compile_java_regex("a**")


def test_search_is_find() -> None:
    regex = compile_java_regex(r"b\d")
    assert regex.search("ab1") and not regex.search("abc")
    assert regex.pattern == r"b\d"


def test_result_over_one_mebibyte_is_null() -> None:
    # Replace.safeReplace refuses when (result so far + estimate + rest) > 1 MiB, where the
    # estimate counts each "$" as a whole match: "$0$0" on one 524288-unit match is exactly 1 MiB.
    assert replace("a" * 524_288, "a+", "$0$0") == "a" * 1_048_576
    assert replace("a" * 524_289, "a+", "$0$0") is None
    assert replace("a" * 524_289, "a+", "$0") == "a" * 524_289
    text = "a" * (MAX_RESULT_UTF16 // 2 + 1)
    assert replace(text, "a", "bb") is None  # literal fast path must agree with the loop
    assert replace(text, "a", "b") == "b" * len(text)
    assert replace(text, "[a]", "bb") is None


@given(st.integers(400, 600), st.integers(-3, 3), st.sampled_from(["", "$0", "\\$", "$0$0"]))
@settings(max_examples=60, deadline=None)
def test_literal_fast_path_equals_exact_loop(count: int, slack: int, suffix: str) -> None:
    # lengths chosen so that the result lands within a few units of the 1 MiB limit
    text = ("a" + "-" * 99) * count
    repl = "b" * ((MAX_RESULT_UTF16 - len(text)) // count + 1 + slack) + suffix
    assert replace(text, "a", repl) == replace(text, "[a]", repl)


_LITERALS = st.text(alphabet="ab.*+?()[]{}|^$\\\n-", min_size=1, max_size=4)


@given(
    st.text(alphabet="ab.*+?()[]\\\n-é", max_size=30),
    _LITERALS,
    st.text(alphabet="xyz", max_size=3),
)
@settings(max_examples=300)
def test_literal_patterns_match_str_replace(text: str, literal: str, replacement: str) -> None:
    quoted = "\\Q" + literal + "\\E" if "\\E" not in literal else None
    if quoted is None:
        return
    assert replace(text, quoted, replacement) == text.replace(literal, replacement)


# --- differential test against the JDK ------------------------------------------------------

_ATOMS = [
    "a",
    "b",
    ".",
    r"\s",
    r"\S",
    r"\w",
    r"\d",
    r"\b",
    "[ab]",
    "[^a]",
    "[a-c&&[^b]]",
    r"\n",
    r"\+",
    "&",
    "=",
    "%",
    "é",
    r"\u2028",
    "(?i)a",
    "(?s).",
    "^",
]
_QUANTS = ["", "", "*", "+", "?", "*?", "+?", "{2}", "{0,2}", "{1,}?"]


@st.composite
def _java_patterns(draw: st.DrawFn) -> str:
    parts: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        atom = draw(st.sampled_from(_ATOMS))
        if draw(st.booleans()):
            atom = "(" + atom + draw(st.sampled_from(["", "|b", "|", "|&"])) + ")"
        quant = draw(st.sampled_from(_QUANTS)) if atom not in (r"\b", "^") else ""
        parts.append(atom + quant)
    if draw(st.integers(0, 5)) == 0:
        parts.append("$")
    return "".join(parts)


_TEXT = st.lists(
    st.sampled_from([*"ab&=%+ \n\r\t", "é", "\u0085", "\u2028", "\r\n", "command="]), max_size=12
)


@given(_java_patterns(), _TEXT.map("".join), st.sampled_from(["-", "", "[$0]", "<$1>", "\\$"]))
@settings(max_examples=300, deadline=None)
def test_matches_real_jdk(jdk_oracle: JdkOracle, pattern: str, text: str, replacement: str) -> None:
    answer = jdk_oracle.ask("replace", pattern, text, replacement)
    if answer[0] == "pse":
        with pytest.raises(QuerySyntaxError):
            compile_java_regex(pattern)
        return
    try:
        regex = compile_java_regex(pattern)
    except QuerySyntaxError as exc:
        assert "not supported" in str(exc)  # a documented RE2 limit, not a wrong answer
        return
    if answer[0] == "ioobe":
        with pytest.raises(ReplacementError):
            regex.replace_all(text, replacement)
        return
    expected = answer[1] if answer[0] == "ok" else None
    assert regex.replace_all(text, replacement) == expected, answer


@pytest.mark.parametrize(
    ("text", "pattern", "replacement"),
    [
        ("a" * 524_289, "a+", "$0$0"),
        ("a" * 524_288, "a+", "$0$0"),
        ("ab" * 300_000, "a", "xy"),
        ("é" * 349_526, "é", "\\$é"),
        ("a-" * 1000, "a", "b" * 1048),
    ],
)
def test_size_limit_matches_jdk(
    jdk_oracle: JdkOracle, text: str, pattern: str, replacement: str
) -> None:
    answer = jdk_oracle.ask("replace", pattern, text, replacement)
    assert replace(text, pattern, replacement) == (answer[1] if answer[0] == "ok" else None)


def test_supplementary_split_matches_jdk(jdk_oracle: JdkOracle) -> None:
    answer = jdk_oracle.ask("replace", "x*", "a\U0001f600b", "-")
    assert replace("a\U0001f600b", "x*", "-") == answer[1] == "-a-\ufffd-\ufffd-b-"


def test_megabyte_inputs_finish() -> None:
    big = "a" * 1_000_000
    assert replace(big + "b", "(a|aa)*b", "x") == "x"  # catastrophic for backtracking engines
    assert replace(big, "(?:a|b)*$", "") == ""
    assert replace("&" * 500_000, "&", " ") == " " * 500_000
    assert replace(big, "a", "bb") is None  # result would pass 1 MiB
