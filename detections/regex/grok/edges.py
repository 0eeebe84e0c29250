"""Emulates the lookarounds :mod:`grok_rewrite` leaves at the very start or end of a pattern.

Joni tries start offsets 0, 1, 2... and at each the alternatives in priority order. A lookbehind
at the start of the pattern looks at the character before the start offset. We split the search:

* ``at_text_start`` — the pattern as it behaves at offset 0 (no previous character: each
  lookbehind yields its ``at_edge`` value), matched anchored at 0;
* ``with_prefix`` — for offsets >= 1: every path first consumes the previous character, which
  must pass that path's lookbehinds, then an empty marker group records the real start.
  RE2's unanchored leftmost-first search then visits (offset, alternative) pairs in Joni's order.

A lookahead at the very end becomes ``()(?:\\z|[allowed])``: at most one of the two can succeed
for a given path, so priorities are unchanged; the marker records the real end. Captures that
include the consumed characters are clamped to the markers by :mod:`grok`.
"""

from __future__ import annotations

from collections.abc import Callable

from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.regex.regex_ast import (
    ANY,
    NOTHING,
    Alt,
    Assert,
    Chars,
    CharSet,
    Group,
    Look,
    Marker,
    Node,
    Repeat,
    Seq,
    walk,
)

HEAD, TAIL = 0, 1  # Marker.index: which edge a marker locates


def has_head_looks(root: Node) -> bool:
    return any(isinstance(n, Look) and not n.ahead for n in walk(root))


def with_tail_markers(node: Node) -> Node:
    """Replaces each remaining (end-of-pattern) lookahead by a consumed check plus marker."""
    if isinstance(node, Look) and node.ahead:
        allowed = node.cs.negate() if node.negated else node.cs
        return Seq([Marker(TAIL), Alt([Assert(r"\z"), Chars(allowed)])])
    return _map(node, with_tail_markers)


def at_text_start(node: Node) -> Node:
    """The tree for a match starting at offset 0: no character precedes it."""
    if isinstance(node, Look) and not node.ahead:
        return Seq([]) if node.at_edge else Chars(NOTHING)
    return _map(node, at_text_start)


def with_prefix(node: Node, allowed: CharSet, fail: QuerySyntaxError) -> Node:
    """The tree for offsets >= 1: one consumed previous character, checked per path."""
    if not has_head_looks(node):
        return Seq([Chars(allowed), Marker(HEAD), node])
    if isinstance(node, Look):
        return Seq([Chars(allowed.intersect(_passing(node))), Marker(HEAD)])
    if isinstance(node, Alt):
        return Alt([with_prefix(b, allowed, fail) for b in node.branches])
    if isinstance(node, Group):
        return Group(with_prefix(node.body, allowed, fail), node.index)
    if isinstance(node, Seq):
        return _seq_with_prefix(node.items, allowed, fail)
    raise fail  # a lookbehind under a repeat or inside an atomic group


def _seq_with_prefix(items: list[Node], allowed: CharSet, fail: QuerySyntaxError) -> Node:
    k = 0
    while k < len(items) and _zero_width_head(items[k]):
        allowed = allowed.intersect(_head_constraint(items[k], fail))
        k += 1
    rest = items[k:]
    if not rest or not has_head_looks(rest[0]):
        return Seq([Chars(allowed), Marker(HEAD), *rest])
    if isinstance(rest[0], Repeat):
        raise fail
    return Seq([with_prefix(rest[0], allowed, fail), *rest[1:]])


def _zero_width_head(node: Node) -> bool:
    return isinstance(node, Look | Assert) or (isinstance(node, Seq) and not node.items)


def _head_constraint(node: Node, fail: QuerySyntaxError) -> CharSet:
    if isinstance(node, Look):
        return _passing(node)
    if isinstance(node, Seq):
        return ANY
    assert isinstance(node, Assert)
    if node.re2 == r"\A":
        return NOTHING
    if node.re2 == "(?m:^)":
        return CharSet.of(10)
    raise fail


def _passing(look: Look) -> CharSet:
    return look.cs.negate() if look.negated else look.cs


def _map(node: Node, fn: Callable[[Node], Node]) -> Node:
    if isinstance(node, Seq):
        return Seq([fn(i) for i in node.items])
    if isinstance(node, Alt):
        return Alt([fn(b) for b in node.branches])
    if isinstance(node, Group):
        return Group(fn(node.body), node.index)
    if isinstance(node, Repeat):
        return Repeat(fn(node.body), node.min, node.max, node.greedy)
    return node
