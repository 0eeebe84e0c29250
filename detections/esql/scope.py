"""What a name means at each point of an ES|QL pipeline, and the row a stage works on.

ES|QL's planner resolves every column reference before anything runs; auditstream does the same
at rule load, so a stage never looks a name up by string at run time unless it is a computed
column (a dict read) or a source field (a pre-split path into the audit event).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.esql import ast
from auditstream.detections.event.audit_event import AuditEvent
from auditstream.detections.values import Value

"""The index Elastic Agent's Kubernetes audit integration writes to; FROM patterns must match it."""

METADATA_FIELDS = frozenset({"_id", "_index", "_version", "_ignored", "_score", "_source"})


WHOLE_DOCUMENT: Final = "<document>"
"""Recorded in a query's reads when a function reads the whole indexed document (``KQL()``)."""


class Row:
    """One event flowing through one rule's stages: the event plus the columns computed so far.

    ``now_ms`` is what ``NOW()`` returns; only rows after ``STATS`` have one (the end of the
    window being evaluated, see :mod:`auditstream.detections.stateful.stats`).
    """

    __slots__ = ("cols", "event", "now_ms")

    def __init__(
        self, event: AuditEvent, cols: dict[str, Value], now_ms: int | None = None
    ) -> None:
        self.event = event
        self.cols = cols
        self.now_ms = now_ms


_T = TypeVar("_T")
Evaluator = Callable[[Row], Value]
Stage = Callable[[Row], bool]


def wildcard(pattern: str) -> re.Pattern[str]:
    """Column and index patterns (rule text, not event data): ``*`` is the only wildcard."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


class Scope:
    """What each name means at a point of the pipeline, as ES|QL's planner tracks it."""

    def __init__(self, metadata: frozenset[str]) -> None:
        self.computed: dict[str, None] = {}  # ordered set of computed column names
        self.metadata = metadata
        self.reads: dict[str, None] = {}  # ordered set of the source and metadata fields read
        self._source_filters: list[tuple[bool, tuple[re.Pattern[str], ...]]] = []
        self._hidden: set[str] = set()
        self.clock = False
        """Whether ``NOW()`` has a value here: only after ``STATS``, where a row is a window."""

    def source_visible(self, name: str) -> bool:
        if name in self._hidden:
            return False
        for keep, patterns in self._source_filters:
            matched = any(p.fullmatch(name) for p in patterns)
            if matched != keep:
                return False
        return True

    def define(self, name: str) -> None:
        self.computed.pop(name, None)
        self.computed[name] = None
        self._hidden.discard(name)

    def keep(self, patterns: Sequence[str]) -> None:
        compiled = tuple(wildcard(p) for p in patterns)
        ordered: dict[str, None] = {}
        for pattern in compiled:
            for name in self.computed:
                if pattern.fullmatch(name):
                    ordered.setdefault(name, None)
        self.computed = ordered
        self._source_filters.append((True, compiled))

    def drop(self, patterns: Sequence[str]) -> None:
        compiled = tuple(wildcard(p) for p in patterns)
        self.computed = {
            n: None for n in self.computed if not any(p.fullmatch(n) for p in compiled)
        }
        self._source_filters.append((False, compiled))

    def hide(self, name: str) -> None:
        self.computed.pop(name, None)
        self._hidden.add(name)


def at(pos: ast.Pos, build: Callable[[], _T]) -> _T:
    """Give errors from pattern compilers the position of the command that holds the pattern."""
    try:
        return build()
    except QuerySyntaxError as err:
        if err.line is not None:
            raise
        raise QuerySyntaxError(err.reason, pos.line, pos.column) from err
