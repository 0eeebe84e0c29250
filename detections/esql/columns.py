"""What ES|QL's column types decide for a ``STATS`` window, at load: which columns hold dates,
and in what order a field's multi-values reach an aggregate.

auditstream's per-event stages are untyped (a date is its text, see ``temporal``). A window
needs two facts from the types. Dates: ``MIN``/``MAX`` must compare times, not text, and
``NOW() - 9 minutes`` must compare with them, so date inputs become epoch milliseconds and date
columns print as ES|QL prints dates. Multi-values: ES|QL reads a field from its doc values, where
"in case of the keyword field type, the multi-valued values for each document are ordered
lexicographically and duplicates are lost" while numeric values are sorted and keep duplicates
(Elasticsearch's doc-values reference; the ES|QL multivalued-fields page shows both); ``text``
fields are read from ``_source``, in the order given. ``COUNT(field)`` and the order of
``VALUES`` see the difference.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any, Final

from auditstream.detections.elastic.fields import field_type
from auditstream.detections.esql import ast
from auditstream.detections.values import Scalar, Value

Normalizer = Callable[[Value], Value]

_SETS: Final = frozenset(("keyword", "constant_keyword", "wildcard", "version"))
_SORTED: Final = frozenset(
    {
        "long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float",
        "unsigned_long", "date", "boolean",
    }
)  # fmt: skip


class DateColumns:
    """Which columns hold dates, followed through commands as ES|QL's planner types them."""

    def __init__(self, computed: set[str], dates: set[str], *, sources: bool) -> None:
        self.computed = computed
        """Names the commands so far defined (a source field of that name is hidden)."""
        self.dates = dates
        self.sources = sources
        """Whether source fields are visible (before ``STATS``; after it only its columns)."""

    def of(self, expr: ast.Expr) -> bool:
        match expr:
            case ast.FieldRef(name=name):
                if name in self.computed:
                    return name in self.dates
                return self.sources and field_type(name) == "date"
            case ast.Call(name="DATE_TRUNC" | "NOW"):
                return True
            case ast.Arithmetic(left=left, right=right):
                return self.of(right if isinstance(left, ast.TimeSpan) else left)
            case _:
                return False

    def define(self, name: str, is_date: bool) -> None:
        self.computed.add(name)
        if is_date:
            self.dates.add(name)
        else:
            self.dates.discard(name)

    def follow(self, command: ast.Command) -> None:
        match command:
            case ast.Eval(assignments=assignments):
                for name, expr in assignments:
                    self.define(name, self.of(expr))
            case ast.Rename(pairs=pairs):
                for old, new in pairs:
                    self.define(new, self.of(ast.FieldRef(old)))
            case _:
                pass  # GROK and DISSECT columns are text or numbers, never dates

    def source_type(self, expr: ast.Expr) -> str | None:
        """The mapping type of a source field read directly, else ``None``."""
        if isinstance(expr, ast.FieldRef) and self.sources and expr.name not in self.computed:
            return field_type(expr.name)
        return None


def doc_values_order(kind: str | None) -> Normalizer | None:
    """How a field of mapping type ``kind`` presents a multi-value to ES|QL; ``None``: as
    given (``text``, unmapped, computed columns)."""
    if kind in _SETS:
        return lambda value: _reordered(value, _utf8, unique=True)
    if kind == "ip":
        return lambda value: _reordered(value, _address, unique=True)
    if kind in _SORTED:
        return lambda value: _reordered(value, _number, unique=False)
    return None


def _reordered(value: Value, key: Callable[[Scalar], Any], *, unique: bool) -> Value:
    if not isinstance(value, tuple):
        return value
    values = tuple(dict.fromkeys(value)) if unique else value
    ordered = tuple(sorted(values, key=key))
    return ordered[0] if len(ordered) == 1 else ordered


def _utf8(value: Scalar) -> tuple[int, Any]:
    return (0, value.encode("utf-8", "surrogatepass")) if isinstance(value, str) else (1, value)


def _address(value: Scalar) -> tuple[int, Any]:
    """Elasticsearch stores an ip as 16 bytes (IPv4 as IPv4-mapped IPv6) and orders by them."""
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        return (1, str(value))
    if isinstance(address, ipaddress.IPv4Address):
        address = ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + address.packed)
    return (0, address.packed)


def _number(value: Scalar) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) else (1, str(value))
