"""GROK: Elasticsearch's grok (ECS bank, Joni) and ES|QL's column rules, run on RE2.

Hand-picked cases pin the seed rule and each ES|QL rule; a differential test runs random
patterns built from the commonly used bank entries against Elasticsearch's own grok library
(tests/oracle/jdk, skipped without a JDK 21+ toolchain), which also checks the bank data.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.regex.grok.bank import ECS_V1_PATTERNS
from auditstream.detections.regex.grok.expression import (
    GrokColumn,
    GrokConversionError,
    compile_grok,
)
from auditstream.detections.values import Value
from tests.oracle.jdk.oracle_client import JdkOracle, build

SEED = r"%{DATA}/exec\?%{DATA:raw_commands}&(?:container|stdin|stdout|stderr)=%{GREEDYDATA}"
EXEC = "/api/v1/namespaces/ns/pods/p/exec"


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (
            EXEC + "?command=sh&command=-c&command=id&container=c&stdin=true&stdout=true",
            "command=sh&command=-c&command=id",
        ),
        (EXEC + "?command=cat&command=/etc/shadow&stdout=true", "command=cat&command=/etc/shadow"),
        (
            EXEC + "?stdout=true&stderr=true&command=ls&container=c",
            "stdout=true",
        ),  # JS client order
        (EXEC + "?command=sh&command=-c&command=echo a\nb&container=c", None),  # . stops at \n
        ("x\n" + EXEC + "?command=id&container=c", "command=id"),  # a newline before is fine
        (EXEC + "?command=id&tty=true", None),
        (EXEC + "?command=id", None),
        ("", None),
    ],
)
def test_seed_rule_grok(uri: str, expected: str | None) -> None:
    grok = compile_grok(SEED)
    assert grok.columns == (GrokColumn("raw_commands", "keyword"),)
    found = grok.match(uri)
    assert (None if found is None else found["raw_commands"]) == expected


def test_columns_sorted_typed_and_multivalued() -> None:
    grok = compile_grok("%{WORD:z} %{NUMBER:a:int} %{NUMBER:m:float} %{WORD:z} %{WORD:b:boolean}")
    assert [c.name for c in grok.columns] == ["a", "b", "m", "z"]
    assert [c.type for c in grok.columns] == ["integer", "boolean", "double", "keyword"]
    found = grok.match("x 12 1.1 y TRUE")
    assert found == {"a": 12, "b": True, "m": 1.100000023841858, "z": ("x", "y")}


def test_raw_named_groups_and_unmatched_optional_groups() -> None:
    grok = compile_grok(r"(?<user>\w+)(?: (?<extra>\d+))?")
    assert grok.match("bob") == {"extra": None, "user": "bob"}
    assert grok.match("!!") is None


@pytest.mark.parametrize(
    "pattern",
    [
        "%{NUMBER:foo} %{WORD:foo}",  # one column from two group names
        "%{NOSUCHPATTERN:x}",
        "(?<x>a)\\1",
        "a++",
        "(?i)a",
        "[[:alpha:]]",
        "%{PATH:p}",  # POSIX brackets in the bank entry
    ],
)
def test_rejected_patterns(pattern: str) -> None:
    with pytest.raises(QuerySyntaxError):
        compile_grok(pattern)


def test_unclosed_reference_is_literal_text() -> None:
    grok = compile_grok("%{WORD:x")  # no reference: Joni reads "{" literally
    assert grok.columns == () and grok.match("a %{WORD:x b") == {} and grok.match("x") is None


def test_same_group_name_twice_is_one_column() -> None:
    assert compile_grok("%{WORD:w} %{WORD:w}").match("a b") == {"w": ("a", "b")}


def test_ipv4_needs_a_non_digit_before_it() -> None:
    assert compile_grok("%{IPV4:ip}").match("1111.2.3.4") is None


def test_conversion_failure_fails_the_query() -> None:
    with pytest.raises(GrokConversionError):
        compile_grok("%{WORD:n:int}").match("abc")
    assert compile_grok("%{INT:n:long}").match("-9223372036854775808") == {"n": -(2**63)}


MUST_WORK = [
    "DATA",
    "GREEDYDATA",
    "WORD",
    "NOTSPACE",
    "SPACE",
    "INT",
    "NUMBER",
    "POSINT",
    "IP",
    "IPV4",
    "HOSTNAME",
    "USERNAME",
    "USER",
    "EMAILADDRESS",
    "URIPATH",
    "URIPARAM",
    "QUOTEDSTRING",
    "TIMESTAMP_ISO8601",
    "LOGLEVEL",
    "UUID",
]


@pytest.mark.parametrize("name", MUST_WORK)
def test_common_patterns_compile_alone_and_between_separators(name: str) -> None:
    compile_grok(f"%{{{name}:v}}")
    compile_grok(f"a=%{{{name}:v}} %{{WORD:w}}")
    compile_grok(f"%{{{name}:v}},%{{NUMBER:n}}")


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("%{NUMBER:n}", "x=-1.5e", "-1.5"),
        ("%{NUMBER:n}", "a1.5", "1.5"),  # lookbehind: a letter may precede
        ("%{NUMBER:n}", "1.2.3", "1.2"),
        ("%{IPV4:ip}", "1.2.3.4.5", "1.2.3.4"),
        ("%{IPV4:ip}", "a1.2.3.4", "1.2.3.4"),
        ("%{IP:ip} ", "::1 ", "::1"),
        ("%{WORD:w}", "é ab_1 c", "ab_1"),  # \b treats é as a word character
        ("%{HOSTNAME:h}", "-x.example.org-", "x.example.org-"),
        ("%{QUOTEDSTRING:q}", r'say "a \"b\" c" ok', r'"a \"b\" c"'),
        ("%{QUOTEDSTRING:q}", r'\"x" "y"', '" "'),
        ("%{EMAILADDRESS:e}", "to: joe.doe+x@mail.example.com.", "joe.doe+x@mail.example.com."),
        (
            "%{TIMESTAMP_ISO8601:t}",
            "at 2024-05-06T07:08:09.123+02:00 x",
            "2024-05-06T07:08:09.123+02:00",
        ),
        ("%{LOGLEVEL:l}", "[WARNING] x", "WARNING"),
        (
            "%{UUID:u}",
            "id 123e4567-e89b-12d3-a456-426614174000",
            "123e4567-e89b-12d3-a456-426614174000",
        ),
        ("%{URIPATH:p}%{URIPARAM:q}", "GET /a/b?x=1&y=2 HTTP", "/a/b"),
        ("%{USER:u}", "~~root.x-1", "root.x-1"),
    ],
)
def test_common_pattern_values(pattern: str, text: str, expected: str) -> None:
    found = compile_grok(pattern).match(text)
    assert found is not None and next(iter(found.values())) == expected


# --- differential test against Elasticsearch's grok --------------------------------------------


def test_bank_equals_elasticsearch_jar(jdk_oracle: JdkOracle) -> None:
    root, _ = build()
    jar = next(Path(root / "lib").glob("elasticsearch-grok-*.jar"))
    bank: dict[str, str] = {}
    with zipfile.ZipFile(jar) as archive:
        for entry in archive.namelist():
            if entry.startswith("patterns/ecs-v1/") and not entry.endswith("/"):
                for raw in archive.read(entry).decode("utf-8").splitlines():
                    line = raw.lstrip()
                    if line and not line.startswith("#"):
                        name, definition = line.split(maxsplit=1)
                        bank[name] = definition
    for name, definition in ECS_V1_PATTERNS.items():
        assert bank.get(name) == definition, name


def _java_answer(answer: list[str]) -> dict[str, Value] | None:
    if answer[0] != "ok":
        return None
    names = [entry.split("\x00")[0] for entry in answer[1].split("\x01") if entry]
    out: dict[str, Value] = {}
    for name, raw in zip(names, answer[2:], strict=True):
        values = [_java_value(v) for v in raw.split("\x00") if v]
        out[name] = None if not values else values[0] if len(values) == 1 else tuple(values)
    return out


def _java_value(encoded: str) -> str | int | float | bool:
    kind, text = encoded[0], encoded[1:]
    if kind in "il":
        return int(text)
    if kind in "fd":
        return float(text)
    if kind == "b":
        return text == "true"
    return text


_FIELDS = [f"%{{{name}:f{k}}}" for k, name in enumerate(MUST_WORK)] + [
    "%{NUMBER:n:int}",
    "%{INT:i:long}",
]
_SEPARATORS = [" ", ",", "=", " - ", "/", "&", "\\?"]
_TOKENS = [*"0123456789+-._ ,=/?&@:", "1.2", "abc", "Z", '"', "'", "\\", "\n", "é", "٣", "\u00a0"]
_TOKENS += [
    "2024-01-02T03:04:05Z",
    "10.0.0.1",
    "::1",
    "INFO",
    "x.y.org",
    "123e4567-e89b-12d3-a456-426614174000",
]
_TEXT = st.lists(st.sampled_from(_TOKENS), max_size=14).map("".join)


@st.composite
def _grok_patterns(draw: st.DrawFn) -> str:
    fields = draw(st.lists(st.sampled_from(_FIELDS), min_size=1, max_size=3, unique=True))
    seps = [draw(st.sampled_from(_SEPARATORS)) for _ in fields[1:]]
    out = fields[0]
    for sep, field in zip(seps, fields[1:], strict=True):
        out += sep + field
    return out


@given(_grok_patterns(), _TEXT)
@settings(max_examples=300, deadline=None)
def test_matches_elasticsearch_grok(jdk_oracle: JdkOracle, pattern: str, text: str) -> None:
    answer = jdk_oracle.ask("grok", pattern, text)
    assert answer[0] in ("ok", "nomatch", "err"), answer
    grok = compile_grok(pattern)
    if answer[0] == "err":
        with pytest.raises(GrokConversionError):
            grok.match(text)
        return
    assert grok.match(text) == _java_answer(answer), answer


def test_seed_matches_elasticsearch_grok(jdk_oracle: JdkOracle) -> None:
    for uri in [
        EXEC + "?command=sh&command=-c&command=id&container=c",
        EXEC + "?stdout=1&command=ls&stdin=1",
    ]:
        assert compile_grok(SEED).match(uri) == _java_answer(jdk_oracle.ask("grok", SEED, uri))


def test_megabyte_inputs_finish() -> None:
    big = "&" * 500_000 + "exec?" + "a" * 500_000
    assert compile_grok(SEED).match(big) is None
    assert compile_grok("%{DATA:a}%{DATA:b}x%{GREEDYDATA:c}").match("y" * 1_000_000) is None
    found = compile_grok("%{NUMBER:n} %{WORD:w}").match("1" * 999_000 + " end")
    assert found is not None and found["w"] == "end"
