"""LIKE: ES|QL wildcard patterns (``*``, ``?``, ``\\`` escapes) as Elasticsearch 9.x runs them."""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.regex.lucene.regexp import Matcher
from auditstream.detections.regex.lucene.wildcard import compile_like
from tests.oracle.lucene.oracle_client import LuceneOracle


@functools.lru_cache(maxsize=256)
def both(pattern: str) -> tuple[Matcher, Matcher]:
    """The production matcher and the pure-DFA one."""
    return compile_like(pattern), compile_like(pattern, use_re2=False)


def reference(pattern: str, text: str) -> bool:
    """Independent glob DP: tokens are '*', '?' or a literal; O(len(pattern) * len(text))."""
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            tokens.append(("lit", pattern[i + 1]))
            i += 2
        else:
            kind = {"*": "star", "?": "one"}.get(pattern[i], "lit")
            tokens.append((kind, pattern[i]))
            i += 1
    reachable = [True] + [False] * len(text)  # prefixes of text matched by the tokens so far
    for kind, ch in tokens:
        nxt = [False] * (len(text) + 1)
        for j, ok in enumerate(reachable):
            if not ok:
                continue
            if kind == "star":
                for k in range(j, len(text) + 1):
                    nxt[k] = True
                break
            if j < len(text) and (kind == "one" or text[j] == ch):
                nxt[j + 1] = True
        reachable = nxt
    return bool(tokens) and reachable[-1]


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("*command=*", "/api/v1/namespaces/x/pods/y/exec?command=sh&command=-c", True),
        ("*command=*", "/api/v1/namespaces/x/pods/y/exec", False),
        ("*", "", True),
        ("*", "a\nb", True),
        ("?", "", False),
        ("?", "\n", True),
        ("?", "é", True),
        ("?", "😀", True),  # one code point, not one UTF-16 unit
        ("??", "😀", False),
        ("a?c", "abc", True),
        ("a?c", "ac", False),
        ("abc", "ABC", False),  # case-sensitive
        ("a*b*c", "axxbyyc", True),
        ("a*b*c", "axxbyy", False),
        ("\\*", "*", True),
        ("\\*", "a", False),
        ("\\?", "?", True),
        ("\\?", "a", False),
        ("\\\\", "\\", True),
        ("a\\\\*", "a\\xyz", True),
        ("", "", False),  # Lucene: concatenating no automata gives the empty language
        ("", "a", False),
        ("[a]", "[a]", True),  # no character classes in LIKE
        (".*", "abc", False),
        ("%", "abc", False),
    ],
)
def test_golden(pattern: str, text: str, expected: bool) -> None:
    for matcher in both(pattern):
        assert matcher.matches(text) is expected


@pytest.mark.parametrize("pattern", ["\\", "abc\\", "\\a", "a\\b*", "\\%", "\\_", "*\\ "])
def test_escape_errors(pattern: str) -> None:
    # StringUtils.wildcardToJavaPattern: "Invalid sequence - escape character is not followed by
    # special wildcard char"; only `\*`, `\?` and `\\` are accepted.
    with pytest.raises(QuerySyntaxError, match="offset"):
        compile_like(pattern)


def test_matcher_api() -> None:
    matcher = compile_like("a*")
    assert matcher.pattern == "a*"
    assert matcher.matches("abc")


def test_one_megabyte_adversarial_input() -> None:
    text = "a" * 10**6
    for pattern, expected in [("*a*a*a*a*b", False), ("*a*a*a*a*a", True), ("a*?*?*b*", False)]:
        for matcher in both(pattern):
            assert matcher.matches(text) is expected


_PATTERN_ALPHABET = ["a", "b", "*", "?", "\\*", "\\?", "\\\\", "\n", "é", "."]
_PATTERNS = st.lists(st.sampled_from(_PATTERN_ALPHABET), max_size=8).map("".join)
_TEXTS = st.text(alphabet="ab*?\\\n.é", max_size=10)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_PATTERNS, st.lists(_TEXTS, min_size=1, max_size=5))
def test_agrees_with_reference(pattern: str, texts: list[str]) -> None:
    for matcher in both(pattern):
        for text in texts:
            assert matcher.matches(text) is reference(pattern, text), (pattern, text)


def _ours(pattern: str, text: str) -> str:
    try:
        matcher = both(pattern)[0]
    except QuerySyntaxError as error:
        return "E " + str(error)
    return "M" if matcher.matches(text) else "N"


_RAW_PATTERNS = st.text(alphabet="ab*?\\\n %_", max_size=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_RAW_PATTERNS, st.lists(_TEXTS, min_size=1, max_size=4))
def test_agrees_with_real_lucene(
    lucene_oracle: LuceneOracle, pattern: str, texts: list[str]
) -> None:
    # The oracle mirrors WildcardPattern: ES's escape validation, then WildcardQuery.toAutomaton.
    for text in texts:
        theirs = lucene_oracle.ask("like", pattern, text)
        ours = _ours(pattern, text)
        assert ours[0] == theirs[0], (pattern, text, ours, theirs)
