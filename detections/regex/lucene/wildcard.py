"""ES|QL ``LIKE``: whole-string wildcard matching, exactly as Elasticsearch 9.x does it.

``WildcardPattern`` (x-pack/plugin/esql-core, ...predicate/regex) first validates the pattern with
``StringUtils.wildcardToJavaPattern(pattern, '\\\\')`` and then matches with Lucene's
``WildcardQuery.toAutomaton``. Together that means:

* ``*`` is any string (newlines included), ``?`` exactly one code point, matching is
  case-sensitive and covers the whole value;
* the empty pattern matches nothing, not even the empty string: ``WildcardQuery.toAutomaton``
  concatenates an empty list of automata, which Lucene's ``Operations.concatenate`` turns into
  an automaton without states (verified against Lucene 10.4);
* ``\\\\`` may only precede ``*``, ``?`` or ``\\\\`` (then that character is literal); a backslash
  before anything else, or a trailing backslash, is rejected at planning ("Invalid sequence -
  escape character is not followed by special wildcard char"), so we reject it at load.

The pattern becomes the same AST as an RLIKE pattern (literals, one-char sets, any-string) and
is compiled by :mod:`auditstream.detections.regex.lucene.regexp`, which gives RE2 speed with a
linear DFA
fallback.
"""

from __future__ import annotations

import functools

from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.regex.lucene.parser import (
    ANY_CHAR,
    AnyString,
    Concat,
    EmptyLang,
    Lit,
    Node,
)
from auditstream.detections.regex.lucene.regexp import Matcher, matcher_from_node

__all__ = ["compile_like", "like_to_node"]

_ESCAPABLE = "*?\\"


def like_to_node(pattern: str) -> Node:
    """The AST of a LIKE pattern; raises QuerySyntaxError for the escapes ES rejects."""
    parts: list[Node] = []
    literal: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 == len(pattern) or pattern[i + 1] not in _ESCAPABLE:
                raise QuerySyntaxError(
                    "invalid LIKE pattern: escape character is not followed by special wildcard "
                    f"char at offset {i}"
                )
            literal.append(pattern[i + 1])
            i += 2
            continue
        if ch in "*?":
            if literal:
                parts.append(Lit("".join(literal)))
                literal = []
            parts.append(AnyString() if ch == "*" else ANY_CHAR)
        else:
            literal.append(ch)
        i += 1
    if not parts and not literal:
        return EmptyLang()
    if literal:
        parts.append(Lit("".join(literal)))
    node = parts[0]
    for part in parts[1:]:
        node = Concat(node, part)
    return node


@functools.lru_cache(maxsize=512)
def compile_like(pattern: str, *, use_re2: bool = True) -> Matcher:
    """Compiles an ES|QL LIKE pattern into a whole-string, case-sensitive matcher (cached)."""
    return matcher_from_node(pattern, like_to_node(pattern), use_re2=use_re2)
