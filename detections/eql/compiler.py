"""Compile an EQL single-event query into a predicate over an indexed Elastic document.

Elasticsearch runs such a query as a Query DSL filter (``planner/QueryTranslator.java``): every
comparison of a field with constants becomes a ``term``/``terms``/``wildcard``/``regexp``/
``prefix``/``exists`` query, which holds when *any* indexed value of the field satisfies it, and
``not`` becomes ``bool.must_not``. So the logic is two-valued: a comparison on a missing field is
false, and ``not`` of it (``!=`` is ``not ==``) is true. We compile to exactly that, reading
values with :meth:`ElasticDocument.values`; everything Elasticsearch would run as a Painless
script (arithmetic, script-only functions, comparisons of function results) is refused at load.
See ``docs/eql-semantics.md`` for every rule and the test that proves it.
"""

from __future__ import annotations

import ipaddress
import operator
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from auditstream.detections.elastic.document import ElasticDocument
from auditstream.detections.elastic.fields import (
    IGNORE_ABOVE,
    NOT_INDEXED,
    field_type,
)
from auditstream.detections.eql import ast
from auditstream.detections.eql.functions import (
    FUNCTIONS,
    IpValue,
    ValuesTest,
    compile_text,
    compile_wildcard,
    ip_values,
    keyword_values,
    parse_ip_or_network,
)
from auditstream.detections.eql.parser import parse_eql
from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.regex.lucene.regexp import Matcher, compile_rlike
from auditstream.detections.values import Scalar

__all__ = ["CATEGORY_FIELD", "EqlPredicate", "compile_eql", "compile_event_query"]

CATEGORY_FIELD = "event.category"
Predicate = Callable[[ElasticDocument], bool]

_KIND_OF_TYPE: Final[Mapping[str, str]] = MappingProxyType(
    {"keyword": "keyword", "constant_keyword": "keyword", "wildcard": "keyword"}
    | dict.fromkeys(("long", "integer", "short", "byte", "double", "float"), "number")
    | dict.fromkeys(("half_float", "scaled_float", "unsigned_long"), "number")
    | {"boolean": "boolean", "ip": "ip"}
)
_REFUSED_TYPES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "text": "EQL does not support text fields",
        "match_only_text": "EQL does not support text fields",
        "date": "date fields are not supported yet",
        "flattened": "a flattened field is an object; compare one of its keys",
    }
)
_BOOLEAN_STRINGS: Final[Mapping[str, bool]] = MappingProxyType(
    {"true": True, "false": False, "": False}
)
_ORDERINGS: Final[Mapping[str, Callable[[Any, Any], bool]]] = MappingProxyType(
    {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
)
_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


@dataclass(frozen=True, slots=True)
class EqlPredicate:
    """A compiled single-event EQL query.

    ``predicate(doc)`` is Elasticsearch's verdict for the document, category included.
    ``category`` is ``None`` for ``any where``. ``fields`` are every field the query reads.
    ``required_values`` is for indexing rules by value: for each field F in it, an event can match
    only if one of F's indexed keyword values (booleans as ``true``/``false``, numbers as text) is
    in ``required_values[F]``. It comes from the top-level ``and`` conjuncts ``F == "literal"`` and
    ``F in (...)`` (case-sensitive, keyword fields) and from the category
    (``event.category``); the converse does not hold: the rest of the query still decides.
    """

    query: str
    category: str | None
    predicate: Predicate
    fields: frozenset[str]
    required_values: Mapping[str, frozenset[str]]
    required_present: frozenset[str] = frozenset()
    """Fields that must hold a value to match (not derived for EQL yet: always empty)."""

    def __call__(self, doc: ElasticDocument) -> bool:
        return self.predicate(doc)


def compile_eql(text: str) -> EqlPredicate:
    """Parse and compile ``text``; raises QuerySyntaxError (with line and column) at load."""
    return compile_event_query(parse_eql(text), text)


def compile_event_query(query: ast.EventQuery, text: str) -> EqlPredicate:
    """Compile a parsed single-event query (``text`` is its source, kept for display): one
    query alone, or one term of a sequence."""
    condition = _compile(query.condition)
    predicate = condition
    fields = set(_fields(query.condition))
    required = _required(query.condition)
    if query.category is not None:
        category = query.category
        fields.add(CATEGORY_FIELD)
        required[CATEGORY_FIELD] = frozenset({category})

        def predicate(doc: ElasticDocument) -> bool:
            return category in keyword_values(doc.values(CATEGORY_FIELD)) and condition(doc)

    return EqlPredicate(
        query=text,
        category=query.category,
        predicate=predicate,
        fields=frozenset(fields),
        required_values=MappingProxyType(required),
    )


def _error(message: str, pos: ast.Pos) -> QuerySyntaxError:
    return QuerySyntaxError(message, pos.line, pos.column)


def _compile(expr: ast.Expr) -> Predicate:
    match expr:
        case ast.Literal(value=bool() as value):
            return lambda _doc: value
        case ast.Literal() | ast.FieldRef():
            raise _error("a condition must be a comparison, a function or true/false", expr.pos)
        case ast.Not(inner=inner):
            test = _compile(inner)
            return lambda doc: not test(doc)
        case ast.And(left=left, right=right):
            first, second = _compile(left), _compile(right)
            return lambda doc: first(doc) and second(doc)
        case ast.Or(left=left, right=right):
            first, second = _compile(left), _compile(right)
            return lambda doc: first(doc) or second(doc)
        case ast.Compare():
            return _compare(expr)
        case ast.InList():
            return _on_field(_field_of(expr.value, expr.pos), _in_test(expr))
        case ast.PatternMatch():
            return _on_field(_field_of(expr.value, expr.pos), _pattern_test(expr))
        case ast.Call():
            field, values_test = _call(expr)
            return _on_field(field, values_test)
        case _:
            raise TypeError(f"unknown EQL node {expr!r}")


def _on_field(field: ast.FieldRef, test: ValuesTest) -> Predicate:
    read = indexed_values(field.name)
    return lambda doc: test(read(doc))


def _under_flattened(name: str) -> bool:
    parts = name.split(".")
    return any(field_type(".".join(parts[:n])) == "flattened" for n in range(1, len(parts)))


def indexed_values(name: str) -> Callable[[ElasticDocument], tuple[Scalar, ...]]:
    """How a query reads ``name``: its indexed values, decided once at load.

    The data stream maps with ``dynamic: false``, so a field it does not declare (and one that
    is ``index: false``) is in ``_source`` but no query matches it: it reads as missing, like a
    field that is not there (``== null`` holds, ``==`` does not). Keyword strings longer than
    ``ignore_above`` are not indexed either.
    """
    mapped = field_type(name)
    parts = name.split(".")
    under_flattened = any(
        field_type(".".join(parts[:n])) == "flattened" for n in range(1, len(parts))
    )
    if name in NOT_INDEXED or (mapped is None and not under_flattened):
        return lambda _doc: ()
    if mapped == "keyword":
        return lambda doc: tuple(
            v for v in doc.values(name) if not (isinstance(v, str) and len(v) > IGNORE_ABOVE)
        )
    return lambda doc: doc.values(name)


def _field_of(expr: ast.Expr, pos: ast.Pos) -> ast.FieldRef:
    if isinstance(expr, ast.FieldRef):
        return expr
    raise _error("the left side must be a field (Elasticsearch would run a script)", pos)


def _literal_kind(value: ast.Constant) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return None if value is None else "keyword"


def field_kind(field: ast.FieldRef, default: str | None) -> str:
    """``keyword``, ``number``, ``boolean`` or ``ip``, from the integration's mapping.

    A key under a ``flattened`` field is a keyword. An unmapped field is read the way the
    literal it is compared with would be mapped dynamically (``default``; strings as keyword).
    """
    if _under_flattened(field.name):
        return "keyword"  # a key under a flattened field: every leaf is a keyword string
    mapped = field_type(field.name)
    if mapped is None:
        parts = field.name.split(".")
        prefixes = (".".join(parts[:n]) for n in range(1, len(parts)))
        return (
            "keyword"
            if any(field_type(p) == "flattened" for p in prefixes)
            else default or "keyword"
        )
    if mapped in _REFUSED_TYPES:
        raise _error(f"{_REFUSED_TYPES[mapped]}: {field.name} is {mapped}", field.pos)
    kind = _KIND_OF_TYPE.get(mapped)
    if kind is None:
        raise _error(f"fields of type {mapped} are not supported: {field.name}", field.pos)
    return kind


def _check_literal(kind: str, literal: ast.Literal, field: ast.FieldRef) -> None:
    value = literal.value
    ok = _literal_kind(value) == kind or (kind == "ip" and isinstance(value, str))
    if not ok:
        raise _error(f"cannot compare {field.name} ({kind}) with {value!r}", literal.pos)


def _compare(node: ast.Compare) -> Predicate:
    left, right, op = node.left, node.right, node.op
    if isinstance(left, ast.Literal) and not isinstance(right, ast.Literal):
        left, right, op = right, left, _FLIP[op]
    if not isinstance(right, ast.Literal):
        raise _error("Comparisons against fields are not (currently) supported", right.pos)
    if isinstance(left, ast.Call):
        field, test = _call(left)
        if op not in ("==", "!=") or not isinstance(right.value, bool):
            raise _error("a function result can only be compared with true or false", node.pos)
        negate = (op == "==") != right.value
        call = _on_field(field, test)
        return (lambda doc: not call(doc)) if negate else call
    field = _field_of(left, node.pos)
    name = field.name
    if right.value is None:
        if op not in ("==", "!="):
            raise _error(f"{op} null never holds; use == null or != null", node.pos)
        present = op == "!="
        read = indexed_values(name)
        return lambda doc: bool(read(doc)) == present
    kind = field_kind(field, _literal_kind(right.value))
    _check_literal(kind, right, field)
    test = _equals(kind, right) if op in ("==", "!=") else _ordering(kind, op, right, field)
    read = indexed_values(name)
    if op == "!=":
        return lambda doc: not test(read(doc))
    return lambda doc: test(read(doc))


def _equals(kind: str, literal: ast.Literal) -> ValuesTest:
    value = literal.value
    if kind == "keyword":
        return lambda values: value in keyword_values(values)
    if kind == "number":
        return lambda values: value in _numbers(values)
    if kind == "boolean":
        return lambda values: value in _booleans(values)
    target = _ip_literal(literal)
    if isinstance(target, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return lambda values: any(ip in target for ip in ip_values(values))
    key = _ip_key(target)
    return lambda values: any(_ip_key(ip) == key for ip in ip_values(values))


def _ordering(kind: str, op: str, literal: ast.Literal, field: ast.FieldRef) -> ValuesTest:
    holds: Callable[[Any, Any], bool] = _ORDERINGS[op]
    value = literal.value
    if kind == "keyword":  # code point order equals the UTF-8 byte order of Lucene terms
        return lambda values: any(holds(v, value) for v in keyword_values(values))
    if kind == "number":
        return lambda values: any(holds(v, value) for v in _numbers(values))
    if kind == "ip":
        target = _ip_literal(literal)
        if not isinstance(target, ipaddress.IPv4Address | ipaddress.IPv6Address):
            raise _error("a range comparison on an ip field needs an address", literal.pos)
        key = _ip_key(target)
        return lambda values: any(holds(_ip_key(ip), key) for ip in ip_values(values))
    raise _error(f"{op} is not defined on {field.name} ({kind})", literal.pos)


def _numbers(values: tuple[Scalar, ...]) -> tuple[int | float, ...]:
    """A numeric field indexes numbers and numeric strings (Elasticsearch's ``coerce``)."""
    out: list[int | float] = []
    for v in values:
        if isinstance(v, bool):
            continue
        if isinstance(v, int | float):
            out.append(v)
        else:
            try:
                out.append(float(v))
            except ValueError:
                continue
    return tuple(out)


def _booleans(values: tuple[Scalar, ...]) -> tuple[bool, ...]:
    """A boolean field indexes true/false and the strings "true", "false" and "" (false)."""
    out: list[bool] = []
    for v in values:
        if isinstance(v, bool):
            out.append(v)
        elif isinstance(v, str) and v in _BOOLEAN_STRINGS:
            out.append(_BOOLEAN_STRINGS[v])
    return tuple(out)


def _ip_literal(literal: ast.Literal) -> IpValue | ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return parse_ip_or_network(str(literal.value))
    except ValueError as err:
        raise _error(f"invalid ip address {literal.value!r}", literal.pos) from err


def _ip_key(ip: IpValue) -> int:
    """Lucene indexes every address as 16 bytes, IPv4 as IPv4-mapped IPv6."""
    if isinstance(ip, ipaddress.IPv4Address):
        return int(ipaddress.IPv6Address(f"::ffff:{ip}"))
    return int(ip)


def _in_test(node: ast.InList) -> ValuesTest:
    field = _field_of(node.value, node.pos)
    literals = [_literal_item(item) for item in node.items]
    present = [lit for lit in literals if lit.value is not None]  # ES drops nulls from terms
    if not present:
        raise _error("in (...) needs at least one non-null value", node.pos)
    kind = field_kind(field, _literal_kind(present[0].value))
    for lit in present:
        _check_literal(kind, lit, field)
    if node.insensitive:
        if kind != "keyword":
            raise _error("in~ only compares strings", node.pos)
        test = _any_matcher([compile_text(str(lit.value), True) for lit in present])
    elif kind == "keyword":
        wanted = frozenset(str(lit.value) for lit in present)
        test = lambda values: not wanted.isdisjoint(keyword_values(values))  # noqa: E731
    else:
        tests = [_equals(kind, lit) for lit in present]
        test = lambda values: any(t(values) for t in tests)  # noqa: E731
    if node.negated:
        return lambda values: not test(values)
    return test


def _literal_item(item: ast.Expr) -> ast.Literal:
    if isinstance(item, ast.Literal):
        return item
    raise _error("Comparisons against fields are not (currently) supported", item.pos)


def _pattern_test(node: ast.PatternMatch) -> ValuesTest:
    field = _field_of(node.value, node.pos)
    if field_kind(field, "keyword") != "keyword":
        raise _error(f"{node.kind} only compares strings; {field.name} is not a string", node.pos)
    matchers: list[Matcher] = []
    exact: set[str] = set()
    for lit in node.patterns:
        if not isinstance(lit.value, str):
            raise _error(f"{node.kind} needs string patterns", lit.pos)
        pattern = lit.value
        if node.kind == "regex":
            if node.insensitive:
                raise _error("regex~ is not supported yet (Lucene's ASCII case folding)", node.pos)
            try:
                matchers.append(compile_rlike(pattern))
            except QuerySyntaxError as err:
                raise _error(f"invalid regex {pattern!r}: {err.reason}", lit.pos) from err
        elif "*" in pattern or "?" in pattern:
            matchers.append(compile_wildcard(pattern, node.insensitive))
        elif node.insensitive:  # no wildcard: Elasticsearch rewrites it to (insensitive) equality
            matchers.append(compile_text(pattern, True))
        else:
            exact.add(pattern)
    test = _any_matcher(matchers)
    if not exact:
        return test
    return lambda values: not exact.isdisjoint(keyword_values(values)) or test(values)


def _any_matcher(matchers: list[Matcher]) -> ValuesTest:
    checks = tuple(m.matches for m in matchers)
    return lambda values: any(check(v) for v in keyword_values(values) for check in checks)


def _call(node: ast.Call) -> tuple[ast.FieldRef, ValuesTest]:
    spec = FUNCTIONS.get(node.name)
    if spec is None:
        raise _error(f"Unknown function [{node.name}]", node.pos)
    if node.insensitive and not spec.insensitive_variant:
        raise _error(f"{node.name} has no case-insensitive variant", node.pos)
    count, low, high = len(node.args), spec.min_args, spec.max_args
    if count < low or (high is not None and count > high):
        expected = str(low) if low == high else f"at least {low}"
        raise _error(f"{node.name} takes {expected} arguments, got {count}", node.pos)
    field = _field_of(node.args[0], node.pos)
    kind = field_kind(field, next(iter(sorted(spec.field_kinds))))
    if kind not in spec.field_kinds:
        raise _error(f"{node.name} needs a {'/'.join(sorted(spec.field_kinds))} field", node.pos)
    return field, spec.build(tuple(_literal_item(arg) for arg in node.args[1:]), node.insensitive)


def _fields(expr: ast.Expr) -> Iterator[str]:
    match expr:
        case ast.FieldRef(name=name):
            yield name
        case ast.Not(inner=inner):
            yield from _fields(inner)
        case ast.And(left=left, right=right) | ast.Or(left=left, right=right):
            yield from _fields(left)
            yield from _fields(right)
        case ast.Compare(left=left, right=right):
            yield from _fields(left)
            yield from _fields(right)
        case ast.InList(value=value, items=items) | ast.Call(args=(value, *items)):
            yield from _fields(value)
            for item in items:
                yield from _fields(item)
        case ast.PatternMatch(value=value):
            yield from _fields(value)
        case _:
            return


def _conjuncts(expr: ast.Expr) -> Iterator[ast.Expr]:
    if isinstance(expr, ast.And):
        yield from _conjuncts(expr.left)
        yield from _conjuncts(expr.right)
    else:
        yield expr


def _required(condition: ast.Expr) -> dict[str, frozenset[str]]:
    """The ``required_values`` contract of :class:`EqlPredicate` (category aside)."""
    out: dict[str, frozenset[str]] = {}
    for part in _conjuncts(condition):
        field, values = _required_of(part)
        if field is not None and field_kind(field, "keyword") == "keyword":
            out[field.name] = out[field.name] & values if field.name in out else values
    return out


def _required_of(part: ast.Expr) -> tuple[ast.FieldRef | None, frozenset[str]]:
    match part:
        case ast.Compare(op="==", left=ast.FieldRef() as f, right=ast.Literal(value=str() as v)):
            return f, frozenset({v})
        case ast.Compare(op="==", left=ast.Literal(value=str() as v), right=ast.FieldRef() as f):
            return f, frozenset({v})
        case ast.InList(value=ast.FieldRef() as f, negated=False, insensitive=False, items=items):
            if all(isinstance(i, ast.Literal) and isinstance(i.value, str | None) for i in items):
                return f, frozenset(
                    i.value
                    for i in items
                    if isinstance(i, ast.Literal) and isinstance(i.value, str)
                )
    return None, frozenset()
