"""Regular-expression terms with Brzozowski derivatives, for intersection and complement.

Lucene builds automata for ``&`` (product) and ``~`` (determinize + complement); a backtracking
regex engine has neither. Derivatives give both for free: the derivative of ``a & b`` is the
``&`` of the derivatives, of ``~a`` the ``~`` of the derivative. Terms are hash-consed into small
integers and kept in a canonical form (flattened, sorted, deduplicated unions and intersections,
character sets merged) so the set of derivatives of a term is finite and the DFA built from them
(see :mod:`auditstream.detections.regex.lucene.regexp`) stays small.

Characters are not handled one by one: the alphabet is cut into *classes*, maximal code-point
intervals that no character set of the pattern splits, so a set is a bitmask over class indices
and a derivative is taken per class.
"""

from __future__ import annotations

from bisect import bisect_right

from auditstream.detections.regex.lucene.parser import (
    MAX_CODE_POINT,
    AnyString,
    CharSet,
    Complement,
    Concat,
    EmptyLang,
    Inter,
    Interval,
    Lit,
    Node,
    Repeat,
    Union,
)

# Term kinds. Term 0 is the empty language, 1 the empty string, 2 any one char, 3 any string.
K_EMPTY, K_EPS, K_SET, K_CAT, K_OR, K_AND, K_NOT, K_STAR, K_REP = range(9)
EMPTY, EPS, ANY, TOP = 0, 1, 2, 3
_UNBOUNDED = -1


def _flatten(node: Node, kind: type[Concat | Union | Inter]) -> list[Node]:
    """The operands of a left-deep chain of one binary node type, without recursion."""
    out: list[Node] = []
    stack: list[Node] = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, kind):
            stack.append(cur.right)
            stack.append(cur.left)
        else:
            out.append(cur)
    return out


def _interval_nodes(lo: int, hi: int, digits: int) -> Node:
    """Lucene's makeDecimalInterval as plain nodes: digit strings with a value in [lo, hi].

    Fixed width when ``digits`` > 0, else any width (leading zeros allowed), as verified against
    Lucene 10.4 (``<1-100>`` matches ``0050``; ``<10-20>`` has width 2 and rejects ``010``).
    """
    if digits > 0:
        return _fixed_width_range(str(lo).zfill(digits), str(hi).zfill(digits))
    parts: list[Node] = []
    for width in range(len(str(lo)), len(str(hi)) + 1):
        first = 0 if width == 1 else 10 ** (width - 1)
        a, b = max(lo, first), min(hi, 10**width - 1)
        if a <= b:
            parts.append(_fixed_width_range(str(a), str(b)))
    body: Node = parts[0]
    for part in parts[1:]:
        body = Union(body, part)
    return Concat(Repeat(Lit("0"), 0, None), body)


def _digit_set(a: str, b: str) -> CharSet:
    return CharSet(((ord(a), ord(b)),))


def _fixed_width_range(a: str, b: str) -> Node:
    """Strings of len(a) digits between ``a`` and ``b`` (equal length, a <= b)."""
    if not a:
        return Lit("")
    if a[0] == b[0]:
        return Concat(Lit(a[0]), _fixed_width_range(a[1:], b[1:]))
    rest = len(a) - 1
    low = Concat(Lit(a[0]), _fixed_width_range(a[1:], "9" * rest))
    high = Concat(Lit(b[0]), _fixed_width_range("0" * rest, b[1:]))
    node: Node = Union(low, high)
    if ord(b[0]) - ord(a[0]) > 1:
        middle: Node = _digit_set(chr(ord(a[0]) + 1), chr(ord(b[0]) - 1))
        if rest:
            middle = Concat(middle, Repeat(_digit_set("0", "9"), rest, rest))
        node = Union(node, middle)
    return node


def expand_intervals(node: Node) -> Node:
    """Replaces every Interval by equivalent plain nodes (used before term building)."""
    if isinstance(node, Interval):
        return _interval_nodes(node.lo, node.hi, node.digits)
    if isinstance(node, Concat | Union | Inter):
        parts = [expand_intervals(p) for p in _flatten(node, type(node))]
        out = parts[0]
        for part in parts[1:]:
            out = type(node)(out, part)
        return out
    if isinstance(node, Complement):
        return Complement(expand_intervals(node.inner))
    if isinstance(node, Repeat):
        return Repeat(expand_intervals(node.inner), node.lo, node.hi)
    return node


def collect_sets(node: Node, out: list[tuple[tuple[int, int], ...]]) -> None:
    """Every character set (as ranges) that a set or literal character of ``node`` denotes."""
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, CharSet):
            out.append(cur.ranges)
        elif isinstance(cur, Lit):
            out.extend(((ord(ch), ord(ch)),) for ch in cur.text)
        elif isinstance(cur, Concat | Union | Inter):
            stack.extend((cur.left, cur.right))
        elif isinstance(cur, Complement | Repeat):
            stack.append(cur.inner)


class Classes:
    """The partition of code points into classes that no set of the pattern tells apart.

    Code points are first cut into intervals at every set boundary; intervals that belong to
    exactly the same sets then share one class, so "every other character" is one class however
    many gaps the pattern's literals leave.
    """

    def __init__(self, sets: list[tuple[tuple[int, int], ...]]) -> None:
        cuts = {0}
        for ranges in sets:
            for lo, hi in ranges:
                cuts.add(lo)
                if hi < MAX_CODE_POINT:
                    cuts.add(hi + 1)
        self.starts: list[int] = sorted(cuts)
        signatures: dict[tuple[bool, ...], int] = {}
        self.class_of_interval: list[int] = []
        distinct = sorted(set(sets))
        for start in self.starts:
            signature = tuple(any(lo <= start <= hi for lo, hi in ranges) for ranges in distinct)
            self.class_of_interval.append(signatures.setdefault(signature, len(signatures)))
        self.count = len(signatures)
        self.all_mask = (1 << self.count) - 1

    def of(self, cp: int) -> int:
        """Class index of code point ``cp``."""
        return self.class_of_interval[bisect_right(self.starts, cp) - 1]

    def mask(self, ranges: tuple[tuple[int, int], ...]) -> int:
        """Bitmask of the classes inside ``ranges`` (whose bounds are interval bounds)."""
        bits = 0
        first = bisect_right(self.starts, ranges[0][0]) - 1 if ranges else 0
        for i in range(first, len(self.starts)):
            start = self.starts[i]
            if any(lo <= start <= hi for lo, hi in ranges):
                bits |= 1 << self.class_of_interval[i]
        return bits


class Terms:
    """A hash-consing store of terms with smart constructors and memoized derivatives.

    Not thread-safe: it is only used while a pattern is compiled, never while matching.
    """

    def __init__(self, classes: Classes) -> None:
        self.classes = classes
        self.kind: list[int] = []
        self.args: list[tuple[int, ...]] = []
        self.nullable: list[bool] = []
        self._ids: dict[tuple[int, tuple[int, ...]], int] = {}
        self._deriv: dict[tuple[int, int], int] = {}
        self._front: dict[int, frozenset[int]] = {}
        for kind, args, nullable in (
            (K_EMPTY, (), False),
            (K_EPS, (), True),
            (K_SET, (classes.all_mask,), False),
        ):
            self._intern(kind, args, nullable)
        self._intern(K_STAR, (ANY,), True)

    def _intern(self, kind: int, args: tuple[int, ...], nullable: bool) -> int:
        key = (kind, args)
        found = self._ids.get(key)
        if found is not None:
            return found
        tid = len(self.kind)
        self.kind.append(kind)
        self.args.append(args)
        self.nullable.append(nullable)
        self._ids[key] = tid
        return tid

    # -- smart constructors ---------------------------------------------------------------------

    def charset(self, mask: int) -> int:
        return EMPTY if mask == 0 else self._intern(K_SET, (mask,), False)

    def cat(self, items: list[int]) -> int:
        flat: list[int] = []
        for t in items:
            if t == EMPTY:
                return EMPTY
            if t == EPS or (t == TOP and flat and flat[-1] == TOP):
                continue
            flat.extend(self.args[t] if self.kind[t] == K_CAT else (t,))
        if not flat:
            return EPS
        if len(flat) == 1:
            return flat[0]
        nullable = all(self.nullable[t] for t in flat)
        return self._intern(K_CAT, tuple(flat), nullable)

    def union(self, items: list[int]) -> int:
        members: set[int] = set()
        mask = 0
        for t in items:
            for u in self.args[t] if self.kind[t] == K_OR else (t,):
                if u == TOP:
                    return TOP
                if self.kind[u] == K_SET:
                    mask |= self.args[u][0]
                elif u != EMPTY:
                    members.add(u)
        if mask:
            members.add(self.charset(mask))
        if not members:
            return EMPTY
        if len(members) == 1:
            return members.pop()
        ordered = tuple(sorted(members))
        return self._intern(K_OR, ordered, any(self.nullable[t] for t in ordered))

    def inter(self, items: list[int]) -> int:
        members: set[int] = set()
        mask = -1
        for t in items:
            for u in self.args[t] if self.kind[t] == K_AND else (t,):
                if u == EMPTY:
                    return EMPTY
                if self.kind[u] == K_SET:
                    mask &= self.args[u][0]
                elif u != TOP:
                    members.add(u)
        if mask != -1:
            if mask == 0:
                return EMPTY
            members.add(self.charset(mask))
        if EPS in members:
            return EPS if all(self.nullable[t] for t in members) else EMPTY
        if not members:
            return TOP
        if len(members) == 1:
            return members.pop()
        ordered = tuple(sorted(members))
        return self._intern(K_AND, ordered, all(self.nullable[t] for t in ordered))

    def complement(self, t: int) -> int:
        if t == EMPTY:
            return TOP
        if t == TOP:
            return EMPTY
        if self.kind[t] == K_NOT:
            return self.args[t][0]
        return self._intern(K_NOT, (t,), not self.nullable[t])

    def star(self, t: int) -> int:
        if t in (EMPTY, EPS):
            return EPS
        if self.kind[t] == K_STAR:
            return t
        return self._intern(K_STAR, (t,), True)

    def repeat(self, t: int, lo: int, hi: int) -> int:
        """``t{lo,hi}``; ``hi`` is -1 when unbounded."""
        if hi != _UNBOUNDED and lo > hi:
            return EMPTY
        if hi == 0 or t == EPS:
            return EPS
        if t == EMPTY:
            return EPS if lo == 0 else EMPTY
        if hi == _UNBOUNDED and lo == 0:
            return self.star(t)
        if lo == 1 and hi == 1:
            return t
        return self._intern(K_REP, (t, lo, hi), lo == 0 or self.nullable[t])

    # -- from the AST ----------------------------------------------------------------------------

    def build(self, node: Node) -> int:
        """The term of an (interval-free) AST node."""
        if isinstance(node, Lit):
            return self.cat(
                [self.charset(self.classes.mask(((ord(c), ord(c)),))) for c in node.text]
            )
        if isinstance(node, CharSet):
            return self.charset(self.classes.mask(node.ranges))
        if isinstance(node, EmptyLang):
            return EMPTY
        if isinstance(node, AnyString):
            return TOP
        if isinstance(node, Concat):
            return self.cat([self.build(p) for p in _flatten(node, Concat)])
        if isinstance(node, Union):
            return self.union([self.build(p) for p in _flatten(node, Union)])
        if isinstance(node, Inter):
            return self.inter([self.build(p) for p in _flatten(node, Inter)])
        if isinstance(node, Complement):
            return self.complement(self.build(node.inner))
        if isinstance(node, Repeat):
            hi = _UNBOUNDED if node.hi is None else node.hi
            return self.repeat(self.build(node.inner), node.lo, hi)
        raise TypeError(f"unexpected node {node!r}")  # Interval: expand_intervals first

    # -- derivatives -----------------------------------------------------------------------------

    def blocks(self, t: int) -> list[int]:
        """Class bitmasks on which ``t``'s derivative is constant: one derivative per block.

        Single-class masks (literal characters) each make their own block; only wider sets
        need the general refinement.
        """
        singles = 0
        out = [self.classes.all_mask]
        for mask in self.front(t):
            if mask & (mask - 1) == 0:
                singles |= mask
                continue
            split: list[int] = []
            for block in out:
                split.extend(b for b in (block & mask, block & ~mask) if b)
            out = split
        if singles:
            out = [b & ~singles for b in out if b & ~singles]
            while singles:
                low = singles & -singles
                out.append(low)
                singles ^= low
        return out

    def front(self, t: int) -> frozenset[int]:
        """Masks of the character sets that can consume ``t``'s first character."""
        found = self._front.get(t)
        if found is not None:
            return found
        kind, args = self.kind[t], self.args[t]
        masks: set[int] = set()
        if kind == K_SET:
            if args[0] != self.classes.all_mask:
                masks.add(args[0])
        elif kind == K_CAT:
            for head in args:
                masks |= self.front(head)
                if not self.nullable[head]:
                    break
        elif kind in (K_OR, K_AND):
            for u in args:
                masks |= self.front(u)
        elif kind in (K_NOT, K_STAR, K_REP):
            masks |= self.front(args[0])
        found = self._front[t] = frozenset(masks)
        return found

    # -- derivatives (per class) ------------------------------------------------------------------

    def derive(self, t: int, cls: int) -> int:
        """The term that matches ``w`` iff ``t`` matches ``c + w``, for ``c`` in class ``cls``."""
        key = (t, cls)
        found = self._deriv.get(key)
        if found is None:
            found = self._derive(t, cls)
            self._deriv[key] = found
        return found

    def _derive(self, t: int, cls: int) -> int:
        kind, args = self.kind[t], self.args[t]
        if kind in (K_EMPTY, K_EPS):
            return EMPTY
        if kind == K_SET:
            return EPS if args[0] >> cls & 1 else EMPTY
        if kind == K_CAT:
            # d(x1..xn) = d(x1)x2..xn | d(x2)x3..xn | ... while the skipped heads are nullable.
            parts: list[int] = []
            for i, head in enumerate(args):
                parts.append(self.cat([self.derive(head, cls), *args[i + 1 :]]))
                if not self.nullable[head]:
                    break
            return self.union(parts)
        if kind == K_OR:
            return self.union([self.derive(u, cls) for u in args])
        if kind == K_AND:
            return self.inter([self.derive(u, cls) for u in args])
        if kind == K_NOT:
            return self.complement(self.derive(args[0], cls))
        if kind == K_STAR:
            return self.cat([self.derive(args[0], cls), t])
        inner, lo, hi = args
        rest = self.repeat(inner, max(lo - 1, 0), hi if hi == _UNBOUNDED else hi - 1)
        return self.cat([self.derive(inner, cls), rest])
