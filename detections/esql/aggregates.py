"""ES|QL aggregate functions (the ones ``STATS`` takes), with Elasticsearch's null and
multi-value rules.

An aggregate folds the values its argument took on every row of a group. As the ``STATS`` docs
say, individual nulls are skipped; a multi-valued row contributes each of its values (``COUNT``
counts them all: ``COUNT(SPLIT("foo;bar;baz;qux;quux;foo", ";"))`` is 6). ``COUNT`` and
``COUNT_DISTINCT`` never return null (``Nullability.FALSE``); the others return null for a group
with no value. Adding one is one entry in :data:`AGGREGATES` (the parser accepts exactly these
names, in ``STATS`` only), its tests in ``tests/unit/test_stateful_stats.py`` and its row in
``docs/esql-stats-semantics.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.esql import ast
from auditstream.detections.values import Scalar, Value

_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
COUNT_DISTINCT_PRECISION: Final = 3000
"""``CountDistinct.DEFAULT_PRECISION``. With it, HyperLogLog++ counts by linear counting (a set
of 32-bit hashes, exact unless two values' hashes collide) up to 3072 distinct values per group."""

Fold = Callable[[Sequence[Value]], Value]


def scalars(value: Any) -> Iterator[Scalar]:
    """The values one row contributes: none for null, each value of a multi-value (a tuple, or
    a list once it has crossed JSON), else the value itself."""
    if value is None:
        return
    if isinstance(value, tuple | list):
        yield from (v for v in value if v is not None)
    else:
        yield value


def _identity(value: Scalar) -> tuple[bool, Scalar]:
    """Set identity of a value: ``True`` and ``1`` are different values (ES columns are typed,
    Python's ``True == 1`` is not how Elasticsearch sees them)."""
    return (isinstance(value, bool), value)


def _order(value: Scalar) -> tuple[int, Any]:
    """Order within a column: booleans (false first), numbers, strings by code point (which is
    the UTF-8 byte order Elasticsearch compares keywords in). A column mixes kinds only in data
    Elasticsearch would have refused to map; the ranks keep that deterministic."""
    if isinstance(value, bool):
        return (0, value)
    if isinstance(value, int | float):
        return (1, value)
    return (2, value)


def _count(rows: Sequence[Value]) -> Value:
    return sum(1 for row in rows for _ in scalars(row))


def _count_distinct(rows: Sequence[Value]) -> Value:
    return len({_identity(v) for row in rows for v in scalars(row)})


def _values(rows: Sequence[Value]) -> Value:
    """Distinct values in the order first met (``ValuesBytesRefAggregator`` emits a group's
    first value, then the others in the order its hash first saw them; Elasticsearch documents
    the order as not guaranteed). One value is a single value; none is null."""
    seen: dict[tuple[bool, Scalar], Scalar] = {}
    for row in rows:
        for value in scalars(row):
            seen.setdefault(_identity(value), value)
    found = tuple(seen.values())
    if not found:
        return None
    return found[0] if len(found) == 1 else found


def _min(rows: Sequence[Value]) -> Value:
    return min((v for row in rows for v in scalars(row)), key=_order, default=None)


def _max(rows: Sequence[Value]) -> Value:
    return max((v for row in rows for v in scalars(row)), key=_order, default=None)


def _sum(rows: Sequence[Value]) -> Value:
    """Whole numbers sum to a long (null on overflow: ``Math.addExact`` throws, the row is
    nulled with a warning); any double makes a double (summed exactly rounded with ``fsum``;
    Elasticsearch's compensated summation agrees but for the last bit in rare cases).
    Non-numbers are skipped (Elasticsearch refuses such a column at planning)."""
    numbers = [
        v
        for row in rows
        for v in scalars(row)
        if isinstance(v, int | float) and not isinstance(v, bool)
    ]
    if not numbers:
        return None
    if any(isinstance(v, float) for v in numbers):
        return math.fsum(numbers)
    total = sum(numbers)
    assert isinstance(total, int)
    return total if _LONG_MIN <= total <= _LONG_MAX else None


def _check_precision(call: ast.Call) -> None:
    """``COUNT_DISTINCT(field, precision)``: the precision must be a constant whole number.
    Counts here are exact whatever it is (see :data:`COUNT_DISTINCT_PRECISION`)."""
    if len(call.args) == 2:
        precision = call.args[1]
        if not (
            isinstance(precision, ast.Literal)
            and isinstance(precision.value, int)
            and not isinstance(precision.value, bool)
        ):
            raise QuerySyntaxError(
                "COUNT_DISTINCT takes a constant whole number as its precision",
                call.pos.line,
                call.pos.column,
            )


@dataclass(frozen=True, slots=True)
class Aggregate:
    """One ES|QL aggregate: its arity and how a group's rows fold into a value."""

    min_args: int
    max_args: int
    fold: Fold
    typed_like_input: bool = False
    """The result has its argument's type (``MIN``, ``MAX``, ``VALUES``): a date in, a date out."""
    takes_dates: bool = True
    check: Callable[[ast.Call], None] | None = None
    """Checks of constant arguments, at load."""


AGGREGATES: Final[Mapping[str, Aggregate]] = MappingProxyType(
    {
        "COUNT": Aggregate(0, 1, _count),
        "COUNT_DISTINCT": Aggregate(1, 2, _count_distinct, check=_check_precision),
        "VALUES": Aggregate(1, 1, _values, typed_like_input=True),
        "MIN": Aggregate(1, 1, _min, typed_like_input=True),
        "MAX": Aggregate(1, 1, _max, typed_like_input=True),
        "SUM": Aggregate(1, 1, _sum, takes_dates=False),
    }
)


def check_aggregate(call: ast.Call) -> Aggregate:
    """The aggregate of a call, its arity and constant arguments checked (at load)."""
    aggregate = AGGREGATES[call.name]
    count = len(call.args)
    if not aggregate.min_args <= count <= aggregate.max_args:
        low, high = aggregate.min_args, aggregate.max_args
        expected = str(low) if low == high else f"{low} to {high}"
        raise QuerySyntaxError(
            f"{call.name} takes {expected} arguments, got {count}", call.pos.line, call.pos.column
        )
    if aggregate.check is not None:
        aggregate.check(call)
    return aggregate
