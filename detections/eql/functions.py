"""EQL functions, and the string matchers they share with the operators, as Elasticsearch runs them.

Elasticsearch EQL turns a function call on a field into a Lucene query when it can
(``planner/QueryTranslator.java``): ``startsWith`` -> ``prefix``, ``endsWith`` and
``stringContains`` -> ``wildcard`` (``*s`` and ``*s*``), ``cidrMatch`` -> ``terms`` on an ``ip``
field; the ``~`` form sets the query's ``case_insensitive`` flag. A query matches when *any*
indexed value of the field does, and ``not`` is its complement, so these functions obey the same
two-valued logic as the operators. Functions that Elasticsearch can only run as a Painless script
(``length``, ``substring``, ``between``, ``number``, ``string``, arithmetic ...) have other null
and multi-value rules and are not in the table: they fail at load as "unknown function".

``FUNCTIONS`` is the one table: name -> arity, whether ``name~`` is allowed, the field kinds the
first argument may have, and the builder of a test over the field's indexed values.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from auditstream.detections.eql import ast
from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.regex.lucene.parser import (
    ANY_CHAR,
    AnyString,
    CharSet,
    Concat,
    Lit,
    Node,
)
from auditstream.detections.regex.lucene.regexp import Matcher, matcher_from_node
from auditstream.detections.values import Scalar

__all__ = [
    "FUNCTIONS",
    "FunctionSpec",
    "IpValue",
    "ValuesTest",
    "compile_text",
    "compile_wildcard",
    "ip_values",
    "keyword_values",
    "parse_ip_or_network",
]

ValuesTest = Callable[[tuple[Scalar, ...]], bool]
IpValue = ipaddress.IPv4Address | ipaddress.IPv6Address
IpOrNetwork = IpValue | ipaddress.IPv4Network | ipaddress.IPv6Network

# --- shared value and string helpers ----------------------------------------------------------


def keyword_text(value: Scalar) -> str:
    """How a keyword field indexes a JSON scalar: booleans as ``true``/``false``, numbers as text.

    Elasticsearch keeps a number's original JSON text (``5.00`` stays ``5.00``); after JSON
    decoding we only have the value, so floats are written the way Python prints them.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def keyword_values(values: tuple[Scalar, ...]) -> tuple[str, ...]:
    return tuple(keyword_text(v) for v in values)


def parse_ip_or_network(text: str) -> IpOrNetwork:
    """An ``ip`` term: an address, or a CIDR block (a term query on an ip field accepts both)."""
    if "/" in text:
        return ipaddress.ip_network(text, strict=False)
    return ipaddress.ip_address(text)


def ip_values(values: tuple[Scalar, ...]) -> tuple[IpValue, ...]:
    """The addresses an ``ip`` field indexes; values that are not addresses are skipped."""
    out: list[IpValue] = []
    for value in values:
        if isinstance(value, str):
            try:
                out.append(ipaddress.ip_address(value))
            except ValueError:
                continue
    return tuple(out)


def _other_case(cp: int) -> int:
    """Lucene/Elasticsearch ``AutomatonQueries.toCaseInsensitiveChar``: the one other case of a
    code point (upper for a lower-case letter, else lower), when it is a single code point."""
    ch = chr(cp)
    other = ch.upper() if ch.islower() else ch.lower()
    return ord(other) if len(other) == 1 else cp


def _char_node(ch: str, insensitive: bool) -> Node:
    cp = ord(ch)
    other = _other_case(cp) if insensitive else cp
    if other == cp:
        return Lit(ch)
    lo, hi = sorted((cp, other))
    ranges = ((lo, hi),) if hi == lo + 1 else ((lo, lo), (hi, hi))
    return CharSet(ranges)


def _concat(parts: list[Node]) -> Node:
    """A balanced concatenation, so long case-insensitive patterns do not nest deeply."""
    if not parts:
        return Lit("")
    if len(parts) == 1:
        return parts[0]
    mid = len(parts) // 2
    return Concat(_concat(parts[:mid]), _concat(parts[mid:]))


def _text_parts(text: str, insensitive: bool) -> list[Node]:
    if not insensitive:
        return [Lit(text)] if text else []
    return [_char_node(ch, insensitive) for ch in text]


@functools.lru_cache(maxsize=1024)
def compile_text(
    text: str, insensitive: bool, *, prefix: bool = False, suffix: bool = False
) -> Matcher:
    """Whole-value match of a literal, optionally with any string before (``prefix``) or after
    (``suffix``) it; ``insensitive`` as Elasticsearch's ``case_insensitive`` queries fold case."""
    parts = ([AnyString()] if prefix else []) + _text_parts(text, insensitive)
    parts += [AnyString()] if suffix else []
    return matcher_from_node(text, _concat(parts))


@functools.lru_cache(maxsize=1024)
def compile_wildcard(pattern: str, insensitive: bool) -> Matcher:
    """An EQL wildcard (``like``, ``:``): ``*`` any string, ``?`` one code point, everything else
    literal. EQL has no escape character here: ``StringUtils.toLikePattern`` and
    ``LikePattern.asLuceneWildcard`` escape ``\\`` like any other literal character."""
    parts: list[Node] = []
    run: list[str] = []
    for ch in pattern:
        if ch in "*?":
            parts += _text_parts("".join(run), insensitive)
            run = []
            parts.append(AnyString() if ch == "*" else ANY_CHAR)
        else:
            run.append(ch)
    parts += _text_parts("".join(run), insensitive)
    return matcher_from_node(pattern, _concat(parts))


def _any(matcher: Matcher) -> ValuesTest:
    matches = matcher.matches
    return lambda values: any(matches(keyword_text(v)) for v in values)


# --- the table -------------------------------------------------------------------------------


def _string_arg(name: str, arg: ast.Literal) -> str:
    if not isinstance(arg.value, str):
        raise QuerySyntaxError(
            f"{name}: the second argument must be a string literal", arg.pos.line, arg.pos.column
        )
    return arg.value


def _wildcard_safe(name: str, arg: ast.Literal) -> str:
    """Elasticsearch builds ``*`` + s (+ ``*``) without escaping s, so ``*``, ``?`` and ``\\``
    in the argument would become wildcard syntax; that is surprising enough to refuse."""
    text = _string_arg(name, arg)
    if any(ch in text for ch in "*?\\"):
        raise QuerySyntaxError(
            f"{name}: '*', '?' and '\\' in the argument are wildcard syntax in Elasticsearch; "
            "use like/like~ instead",
            arg.pos.line,
            arg.pos.column,
        )
    return text


def _starts_with(args: tuple[ast.Literal, ...], insensitive: bool) -> ValuesTest:
    return _any(compile_text(_string_arg("startsWith", args[0]), insensitive, suffix=True))


def _ends_with(args: tuple[ast.Literal, ...], insensitive: bool) -> ValuesTest:
    return _any(compile_text(_wildcard_safe("endsWith", args[0]), insensitive, prefix=True))


def _string_contains(args: tuple[ast.Literal, ...], insensitive: bool) -> ValuesTest:
    text = _wildcard_safe("stringContains", args[0])
    return _any(compile_text(text, insensitive, prefix=True, suffix=True))


def _cidr_match(args: tuple[ast.Literal, ...], _insensitive: bool) -> ValuesTest:
    networks = []
    for arg in args:
        text = _string_arg("cidrMatch", arg)
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as err:
            raise QuerySyntaxError(
                f"cidrMatch: invalid CIDR {text!r}", arg.pos.line, arg.pos.column
            ) from err
    nets = tuple(networks)
    return lambda values: any(ip in net for ip in ip_values(values) for net in nets)


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """One EQL function: ``min_args``..``max_args`` arguments (``None``: any number), the first a
    field of one of ``field_kinds``, the rest constants handed to ``build``."""

    name: str
    min_args: int
    max_args: int | None
    insensitive_variant: bool
    field_kinds: frozenset[str]
    build: Callable[[tuple[ast.Literal, ...], bool], ValuesTest]
    summary: str


_KEYWORD = frozenset({"keyword"})

FUNCTIONS: Final[Mapping[str, FunctionSpec]] = MappingProxyType(
    {
        spec.name: spec
        for spec in (
            FunctionSpec(
                "startsWith", 2, 2, True, _KEYWORD, _starts_with, "prefix query on the field"
            ),
            FunctionSpec("endsWith", 2, 2, True, _KEYWORD, _ends_with, "wildcard query `*s`"),
            FunctionSpec(
                "stringContains", 2, 2, True, _KEYWORD, _string_contains, "wildcard query `*s*`"
            ),
            FunctionSpec(
                "cidrMatch", 2, None, False, frozenset({"ip"}), _cidr_match, "terms query of CIDRs"
            ),
        )
    }
)
