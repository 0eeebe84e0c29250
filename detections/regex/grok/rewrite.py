"""Removes lookaround, ``\\b`` and atomic groups from a grok tree where that is provably exact.

RE2 has none of the three, and the ECS bank uses all of them (NUMBER, IPV4, WORD, HOSTNAME...).
Each occurrence is decided from its *context*: the characters the pattern itself can place just
before and after it (first/last sets through nullable neighbours), and whether it can sit at
the very start or end of the pattern (where the neighbour comes from unmatched text).

* A one-character lookaround whose pattern-side neighbours all pass (or all fail) is dropped
  (or becomes "never"). One at the very start of the pattern is emulated exactly by matching
  once anchored at offset 0 (no previous character) and otherwise with one consumed, checked
  previous character in front; one at the very end by a consumed ``(?:\\z|[allowed])``. Empty
  marker groups locate the real match edges so no column includes the extra character.
* Joni's Unicode ``\\b`` becomes such a lookaround once one side's wordness is known.
* ``(?>X)`` becomes ``(?:X)`` when X can match at most one string at any position, or when X is
  deterministic (every choice decided by the next character, so all its matches are prefixes of
  the first) and what follows can neither start with a character of X nor end the pattern right
  after an assertion. Otherwise the pattern is rejected: no guessing.
"""

from __future__ import annotations

from dataclasses import dataclass

from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.regex.grok.joni_parser import WordBoundary
from auditstream.detections.regex.regex_ast import (
    NOTHING,
    Alt,
    Assert,
    Atomic,
    Chars,
    CharSet,
    Group,
    Look,
    Node,
    Repeat,
    Seq,
    children,
    unicode_category_set,
)


def joni_word() -> CharSet:
    """Joni's Unicode word characters for ``\\b``: letters, marks, numbers, connectors."""
    return unicode_category_set(("L", "M", "N", "Pc"))


@dataclass(frozen=True)
class Side:
    """One side of a position: characters the pattern may put there; whether text may (open)."""

    chars: CharSet
    open: bool
    zero_width: bool = False  # an assertion may come before the next character or the end


@dataclass(frozen=True)
class Info:
    first: CharSet
    last: CharSet
    nullable: bool
    zw_first: bool
    zw_last: bool


def info(node: Node) -> Info:
    """First/last character sets, nullability and whether an assertion can come first/last."""
    if isinstance(node, Chars):
        return Info(node.cs, node.cs, False, False, False)
    if isinstance(node, Assert | Look | WordBoundary):
        return Info(NOTHING, NOTHING, True, True, True)
    if isinstance(node, Seq):
        return _seq_info([info(i) for i in node.items])
    if isinstance(node, Alt):
        parts = [info(b) for b in node.branches]
        return Info(
            _union(p.first for p in parts),
            _union(p.last for p in parts),
            any(p.nullable for p in parts),
            any(p.zw_first for p in parts),
            any(p.zw_last for p in parts),
        )
    if isinstance(node, Repeat):
        if node.max == 0:
            return Info(NOTHING, NOTHING, True, False, False)
        body = info(node.body)
        return Info(
            body.first, body.last, body.nullable or node.min == 0, body.zw_first, body.zw_last
        )
    if isinstance(node, Group | Atomic):
        return info(node.body)
    return Info(NOTHING, NOTHING, True, False, False)


def _union(sets: object) -> CharSet:
    out = NOTHING
    for cs in sets:  # type: ignore[attr-defined]
        out = out.union(cs)
    return out


def _seq_info(parts: list[Info]) -> Info:
    first, zw_first, nullable = NOTHING, False, True
    for p in parts:
        first, zw_first = first.union(p.first), zw_first or p.zw_first
        if not p.nullable:
            nullable = False
            break
    last, zw_last = NOTHING, False
    for p in reversed(parts):
        last, zw_last = last.union(p.last), zw_last or p.zw_last
        if not p.nullable:
            break
    return Info(first, last, nullable, zw_first, zw_last)


def contexts(root: Node) -> dict[int, tuple[Side, Side]]:
    """(before, after) of every node, keyed by ``id(node)``."""
    out: dict[int, tuple[Side, Side]] = {}
    _visit(root, Side(NOTHING, True), Side(NOTHING, True), out)
    return out


def _visit(node: Node, before: Side, after: Side, out: dict[int, tuple[Side, Side]]) -> None:
    out[id(node)] = (before, after)
    if isinstance(node, Seq):
        infos = [info(i) for i in node.items]
        for k, item in enumerate(node.items):
            _visit(item, _extend_back(infos[:k], before), _extend_fwd(infos[k + 1 :], after), out)
    elif isinstance(node, Repeat):
        body = info(node.body)
        loops = node.max is None or node.max > 1
        b = Side(before.chars.union(body.last), before.open, before.zero_width) if loops else before
        a = (
            Side(after.chars.union(body.first), after.open, after.zero_width or body.zw_first)
            if loops
            else after
        )
        _visit(node.body, b, a, out)
    else:
        for child in children(node):
            _visit(child, before, after, out)


def _extend_back(parts: list[Info], outer: Side) -> Side:
    chars, zw = NOTHING, False
    for p in reversed(parts):
        chars, zw = chars.union(p.last), zw or p.zw_last
        if not p.nullable:
            return Side(chars, False, zw)
    return Side(chars.union(outer.chars), outer.open, zw or outer.zero_width)


def _extend_fwd(parts: list[Info], outer: Side) -> Side:
    chars, zw = NOTHING, False
    for p in parts:
        chars, zw = chars.union(p.first), zw or p.zw_first
        if not p.nullable:
            return Side(chars, False, zw)
    return Side(chars.union(outer.chars), outer.open, zw or outer.zero_width)


# --- resolution ----------------------------------------------------------------------------


class Resolver:
    """Rewrites one tree; ``head``/``tail`` collect the lookarounds left at the pattern edges."""

    def __init__(self, grok_pattern: str) -> None:
        self.grok_pattern = grok_pattern
        self.ctx: dict[int, tuple[Side, Side]] = {}

    def fail(self, what: str) -> QuerySyntaxError:
        return QuerySyntaxError(
            f"Invalid GROK pattern [{self.grok_pattern}]: {what} cannot run on RE2 here"
        )

    def resolve(self, root: Node) -> Node:
        """Lookarounds first (dropping them can free atomic groups), then atomic groups."""
        self.ctx = contexts(root)
        root = self.rewrite(root, atomics=False)
        self.ctx = contexts(root)
        return self.rewrite(root, atomics=True)

    def rewrite(self, node: Node, atomics: bool) -> Node:
        if isinstance(node, WordBoundary):
            return self.boundary(node)
        if isinstance(node, Look):
            return self.look(node, self.ctx[id(node)])
        if isinstance(node, Atomic):
            if atomics:
                return Group(self.rewrite(self.atomic(node), atomics))
            return Atomic(self.rewrite(node.body, atomics))
        if isinstance(node, Seq):
            return Seq([self.rewrite(i, atomics) for i in node.items])
        if isinstance(node, Alt):
            return Alt([self.rewrite(b, atomics) for b in prune_dead_branches(node.branches)])
        if isinstance(node, Group):
            return Group(self.rewrite(node.body, atomics), node.index)
        if isinstance(node, Repeat):
            return Repeat(self.rewrite(node.body, atomics), node.min, node.max, node.greedy)
        return node

    def boundary(self, node: WordBoundary) -> Node:
        before, after = self.ctx[id(node)]
        word = joni_word()
        prev_word = _known(before, word)
        next_word = _known(after, word)
        if next_word is not None:
            # boundary <=> previous wordness differs from the (known) next one
            look = Look(False, word, negated=next_word, at_edge=next_word)
        elif prev_word is not None:
            look = Look(True, word, negated=prev_word, at_edge=prev_word)
        else:
            raise self.fail(r"\b between characters of unknown wordness")
        if node.negated:
            look = Look(look.ahead, look.cs, not look.negated, not look.at_edge)
        self.ctx[id(look)] = (before, after)
        return self.look(look, (before, after))

    def look(self, node: Look, ctx: tuple[Side, Side]) -> Node:
        side = ctx[1] if node.ahead else ctx[0]
        allowed = node.cs.negate() if node.negated else node.cs
        if node.tail:  # a longer negative lookahead: only decidable when its first char can't come
            if not side.open and side.chars.isdisjoint(node.cs):
                return Seq([])
            raise self.fail("a multi-character lookahead")
        if not side.open:
            if side.chars.issubset(allowed):
                return Seq([])
            if side.chars.isdisjoint(allowed):
                return Chars(NOTHING)
            raise self.fail("a lookaround between characters it only sometimes accepts")
        if not side.chars.is_empty() or (node.ahead and side.zero_width):
            raise self.fail("a lookaround that is only sometimes at the pattern edge")
        return node  # at the very start/end: emulated by the edge program

    def atomic(self, node: Atomic) -> Node:
        after = self.ctx[id(node)][1]
        if unique(node.body):
            return node.body
        blocked = after.chars.isdisjoint(alphabet(node.body))
        if deterministic(node.body) and blocked and (not after.open or not after.zero_width):
            return node.body
        raise self.fail("an atomic group whose backtracking could matter")


def _known(side: Side, word: CharSet) -> bool | None:
    """True/False when every neighbour is (not) a word character; None when it varies."""
    if side.chars.issubset(word) and not side.chars.is_empty() and not side.open:
        return True
    if side.chars.isdisjoint(word) and not side.open:
        return False
    return None


def prune_dead_branches(branches: list[Node]) -> list[Node]:
    """Drops zero-width branches after one that always matches empty: they can never win."""
    out: list[Node] = []
    for branch in branches:
        if any(_always_empty_ok(b) for b in out) and _zero_width_only(branch):
            continue
        out.append(branch)
    return out


def _always_empty_ok(node: Node) -> bool:
    got = info(node)
    return got.nullable and not got.zw_first


def _zero_width_only(node: Node) -> bool:
    if isinstance(node, Chars):
        return False
    return all(_zero_width_only(c) for c in children(node)) and not (
        isinstance(node, Repeat) and node.max != 0
    )


def alphabet(node: Node) -> CharSet:
    if isinstance(node, Chars):
        return node.cs
    return _union(alphabet(c) for c in children(node))


def deterministic(node: Node) -> bool:
    """Every choice is decided by the next character (so all matches prefix the first one)."""
    return _det(node, strict=False)


def unique(node: Node) -> bool:
    """At most one match at any position."""
    return _det(node, strict=True)


def _det(node: Node, strict: bool) -> bool:
    if isinstance(node, Chars):
        return True
    if isinstance(node, Group | Atomic):
        return _det(node.body, strict)
    if isinstance(node, Alt):
        seen = NOTHING
        for branch in node.branches:
            got = info(branch)
            if got.nullable or got.zw_first or not seen.isdisjoint(got.first):
                return False
            if not _det(branch, strict):
                return False
            seen = seen.union(got.first)
        return True
    if isinstance(node, Repeat):
        if not node.greedy or info(node.body).nullable:
            return False
        body_ok = _det(node.body, False) if node.max == 1 else unique(node.body)
        return body_ok and (node.min == node.max or not strict)
    if isinstance(node, Seq):
        return _det_seq(node.items, strict)
    return False


def _det_seq(items: list[Node], strict: bool) -> bool:
    for k, item in enumerate(items):
        optional = isinstance(item, Repeat) and item.max != item.min
        if not _det(item, strict and not optional):
            return False
        if optional:
            rest = _seq_info([info(i) for i in items[k + 1 :]])
            if not rest.first.isdisjoint(info(item).first) or rest.zw_first:
                return False
            if strict and rest.nullable:
                return False
    return True
