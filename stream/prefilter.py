"""Skip the rules for messages whose bytes cannot spell an exec request.

Decided once, from the loaded rules: the pre-filter exists only when every rule can fire on
nothing but a pod ``exec``/``attach`` or a kubelet-proxy ``exec``/``run`` request:

* an ES|QL rule qualifies when its first stage is a ``WHERE`` whose *first* conjunct is
  ``kubernetes.audit.objectRef.subresource == "exec"`` (or ``"attach"``, either operand order).
  First, not just any: the stage stops at the first conjunct that is not true, so for an event
  without that subresource no other expression of the rule is ever evaluated (nothing else can
  raise ``evaluation_error``). A first stage runs on the source fields (no EVAL or RENAME before
  it can redefine the column);
* a native rule qualifies by construction: :class:`detections.engine.Detector` runs native rules
  only on a decoded :class:`detections.exec_request.ExecRequest`, whose decoded path has a segment
  ``exec``, ``attach`` or ``run``.

The skip (:meth:`ExecPrefilter.may_hold_exec` false) is sound because every character of a
decoded string comes from a literal byte, a JSON ``\\uXXXX`` escape, or (in a request path) a
``%XX`` escape, possibly nested (a wrapped shipper record escapes the event's escapes once more:
``\\\\u0065``). A message is skipped only when its raw bytes hold none of ``exec``, ``attach``,
``run``; no ``\\u`` escape of a letter, digit, ``%``, backslash or surrogate (Go's ``\\u0026``,
``\\u003c``, ``\\u003e`` and other punctuation or non-ASCII escapes are harmless: none is part of
those words, nor of an escape that could spell them); and no ``%6``/``%7`` (the only percent
escapes of lower-case letters; the comparisons are case-sensitive). Then no decoded string,
percent-decoded or not, contains those words. Few ``{``/``[`` bound the nesting, so the
``subresource`` conjunct cannot hit the recursion limit either.

The skip covers the rules only: the message is still decoded in full, so malformed input
dead-letters with the same reason and the event count stays exact.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from detections.esql import ast
from detections.rule_loader import EsqlRule, LoadedRule

SUBRESOURCE_FIELD: Final = "kubernetes.audit.objectRef.subresource"
EXEC_SUBRESOURCES: Final = frozenset({"exec", "attach"})
_WORDS: Final = (b"exec", b"attach", b"run")
_ESCAPE: Final = re.compile(rb"\\u([0-9A-Fa-f]{4})")
_PERCENT_LOWER: Final = (b"%6", b"%7")
_MAX_BRACKETS: Final = 200
_HARMFUL_ASCII: Final = frozenset(
    b"%\\0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)


class ExecPrefilter:
    """Stateless and thread-safe: one instance serves every message."""

    __slots__ = ()

    @staticmethod
    def may_hold_exec(data: bytes) -> bool:
        """False only when no JSON decoding of ``data`` can hold an exec/attach/run request."""
        for word in _WORDS:
            if word in data:
                return True
        if b"%" in data and any(p in data for p in _PERCENT_LOWER):
            return True
        if b"\\u" in data:
            for match in _ESCAPE.finditer(data):
                if _harmful(int(match[1], 16)):
                    return True
        return data.count(b"{") + data.count(b"[") >= _MAX_BRACKETS


def _harmful(code_point: int) -> bool:
    return code_point in _HARMFUL_ASCII or 0xD800 <= code_point <= 0xDFFF


def build_prefilter(rules: Sequence[LoadedRule]) -> ExecPrefilter | None:
    """The pre-filter when every rule needs an exec request, else ``None`` (full path always)."""
    for rule in rules:
        if isinstance(rule, EsqlRule) and not requires_exec_subresource(rule):
            return None
    return ExecPrefilter()


def requires_exec_subresource(rule: EsqlRule) -> bool:
    """First stage ``WHERE <subresource> == "exec"|"attach" AND ...``, that conjunct first."""
    stages = rule.query.stages
    if not stages:
        return False
    command = stages[0][0]
    if not isinstance(command, ast.Where):
        return False
    first = command.condition
    while isinstance(first, ast.Logical) and first.op == "AND":
        first = first.left
    if not isinstance(first, ast.Compare) or first.op != "==":
        return False
    for field, literal in ((first.left, first.right), (first.right, first.left)):
        if (
            isinstance(field, ast.FieldRef)
            and field.name == SUBRESOURCE_FIELD
            and isinstance(literal, ast.Literal)
            and literal.value in EXEC_SUBRESOURCES
        ):
            return True
    return False
