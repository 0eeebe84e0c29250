"""Compile KQL into a predicate over an indexed Elastic document, with Elasticsearch's verdicts.

The detection engine turns a rule's KQL into Query DSL with Kibana's ``buildEsQuery`` and an
index pattern without fields (``getQueryFilter``), so every leaf becomes, per field:
``field:*`` an ``exists`` query, a quoted value ``match_phrase``, an unquoted value ``match``,
an unquoted value with ``*`` a ``query_string`` wildcard, a date value a ``range``, and
``f < v`` a ``range`` query. What each query does depends on the field's mapping, which we
read once per leaf at compile time (:func:`field_type`); the per-event work is one closure over
:meth:`ElasticDocument.values`. A query Elasticsearch would reject (a wildcard on an ip field, a
non-boolean on a boolean field, ...) is refused here at load. ``docs/kql-semantics.md`` lists
every rule with its evidence and the test that proves it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from auditstream.detections.elastic.document import ElasticDocument
from auditstream.detections.elastic.fields import field_type
from auditstream.detections.elastic.indexing import (
    INDEXERS,
    Key,
    contains_run,
    dates,
    ip_key,
    ips,
    keyword_text,
    keywords,
    lowercase,
    parse_date,
    parse_number,
    round_float,
    tokenize,
    tokens_of,
)
from auditstream.detections.errors import QuerySyntaxError
from auditstream.detections.kql import ast
from auditstream.detections.kql.parser import parse_kql
from auditstream.detections.regex.lucene.parser import AnyString, Concat, Lit, Node
from auditstream.detections.regex.lucene.regexp import matcher_from_node
from auditstream.detections.values import Scalar

__all__ = ["KqlPredicate", "compile_kql", "field_kind"]

Predicate = Callable[[ElasticDocument], bool]
QUERY_STRING_SPACE = " \t\n\r\u3000"  # the classic query parser's whitespace
ValuesTest = Callable[[tuple[Scalar, ...]], bool]

_KINDS: Final[Mapping[str, str]] = MappingProxyType(
    {"keyword": "keyword", "wildcard": "keyword", "constant_keyword": "constant"}
    | {"flattened": "flattened", "text": "text", "match_only_text": "text"}
    | {"ip": "ip", "boolean": "boolean", "date": "date", "object": "object"}
    | dict.fromkeys(("long", "integer", "short", "byte"), "integer")
    | dict.fromkeys(("double", "float", "half_float"), "float")
)
_RANGE_TESTS: Final[Mapping[str, Callable[[Key, Key], bool]]] = MappingProxyType(
    {
        "lt": lambda a, b: a < b,  # type: ignore[operator]
        "lte": lambda a, b: a <= b,  # type: ignore[operator]
        "gt": lambda a, b: a > b,  # type: ignore[operator]
        "gte": lambda a, b: a >= b,  # type: ignore[operator]
    }
)


@dataclass(frozen=True, slots=True)
class KqlPredicate:
    """A compiled KQL query.

    ``predicate(doc)`` is Elasticsearch's verdict for the document. ``fields`` is every field
    the query reads; ``unmapped`` those of them the mapping does not index (they never match).
    ``required_values`` is for indexing rules by value: for each field F in it, a document can
    match only if one of F's values, in keyword form (``true``/``false`` for booleans, numbers
    as text), is in ``required_values[F]``. It comes from the top-level ``and`` conjuncts that
    are ``F:literal`` or ``F:(literal or literal ...)`` on keyword, constant_keyword and
    flattened fields; the converse does not hold: the whole predicate still decides.
    """

    query: str
    predicate: Predicate
    fields: frozenset[str]
    unmapped: frozenset[str]
    required_values: Mapping[str, frozenset[str]]
    required_present: frozenset[str] = frozenset()
    """Fields that must hold an indexed value for a document to match: those of top-level
    ``and`` conjuncts (through nested ``and`` groups) that are a positive ``F:value`` or ``F:*``
    (an exists, a term, a phrase or a wildcard never matches a field without values)."""

    def __call__(self, doc: ElasticDocument) -> bool:
        return self.predicate(doc)


def compile_kql(text: str) -> KqlPredicate:
    """Parse and compile ``text``; raises QuerySyntaxError (with line and column) at load."""
    tree = parse_kql(text)
    predicate = _compile(tree)
    fields = frozenset(_fields(tree))
    return KqlPredicate(
        query=text,
        predicate=predicate,
        fields=fields,
        unmapped=frozenset(f for f in fields if field_kind(f) == "unmapped"),
        required_values=MappingProxyType(_required(tree)),
        required_present=_present(tree),
    )


def _error(message: str, pos: ast.Pos) -> QuerySyntaxError:
    return QuerySyntaxError(message, pos.line, pos.column)


# --- the tree ----------------------------------------------------------------------------------


def _compile(node: ast.Node) -> Predicate:
    match node:
        case ast.MatchAll():
            return lambda _doc: True
        case ast.And(items=items):
            tests = tuple(_compile(item) for item in items)
            return lambda doc: all(test(doc) for test in tests)
        case ast.Or(items=items):
            tests = tuple(_compile(item) for item in items)
            return lambda doc: any(test(doc) for test in tests)
        case ast.Not(inner=inner):
            test = _compile(inner)
            return lambda doc: not test(doc)
        case ast.Is():
            return _is(node)
        case ast.Range():
            return _range(node)
        case ast.Nested():
            raise _error(
                "nested queries (field:{...}) need a 'nested' mapping, which the integration "
                "does not use; Elasticsearch rejects them on object fields",
                node.pos,
            )
        case _:
            raise TypeError(f"unknown KQL node {node!r}")


def _field_name(field: ast.Value) -> str:
    if isinstance(field, ast.Wildcard):
        raise _error(
            "wildcard field names are not supported (the detection engine sends them to "
            "Elasticsearch unexpanded)",
            field.pos,
        )
    value = field.value
    return value if isinstance(value, str) else str(value).lower()


def field_kind(name: str) -> str:
    """How ``name`` is indexed: ``keyword``, ``constant``, ``flattened``, ``text``, ``ip``,
    ``boolean``, ``integer``, ``float``, ``date``, ``object`` or ``unmapped``.

    A key under a ``flattened`` field is ``flattened`` (each leaf a keyword string). ``None``
    from :func:`field_type` means the mapping does not index the field (dynamic: false, or never
    seen): Elasticsearch then matches nothing on it.
    """
    mapped = field_type(name)
    if mapped is None:
        parts = name.split(".")
        if any(field_type(".".join(parts[:n])) == "flattened" for n in range(1, len(parts))):
            return "flattened"
        return "unmapped"
    return _KINDS.get(mapped, f"unsupported:{mapped}")


def _on_field(name: str, test: ValuesTest) -> Predicate:
    return lambda doc: test(doc.values(name))


def _never(_doc: ElasticDocument) -> bool:
    return False


# --- field:value ---------------------------------------------------------------------------------


def _is(node: ast.Is) -> Predicate:
    value = node.value
    if node.field is None:
        if isinstance(value, ast.Wildcard) and value.lone:
            return lambda _doc: True  # `*`: query_string "*", a match_all
        raise _error(
            "free text (a value without a field) searches every field; name the field",
            node.pos,
        )
    lone_field = isinstance(node.field, ast.Wildcard) and node.field.lone
    if lone_field and isinstance(value, ast.Wildcard) and value.lone:
        return lambda _doc: True  # `*:*`: match_all
    name = _field_name(node.field)
    kind = field_kind(name)
    mapped = field_type(name) or ""
    if kind.startswith("unsupported:"):
        raise _error(f"fields of type {mapped} are not supported: {name}", node.pos)
    if isinstance(value, ast.Wildcard) and value.lone:
        if kind == "unmapped":
            return _never
        if kind == "object":
            return lambda doc: doc.has_object(name) or bool(doc.values(name))
        indexed = INDEXERS[kind]
        return _on_field(name, lambda values: bool(indexed(values, mapped)))
    if kind == "object":
        raise _error(f"{name} is an object; query one of its fields", node.pos)
    if isinstance(value, ast.Literal) and value.value is None:
        raise _error("null is not a value (Elasticsearch rejects a match on null)", value.pos)
    if kind == "unmapped":
        return _never
    test = _wildcard_test(kind, value, name) if isinstance(value, ast.Wildcard) else None
    if test is None:
        assert isinstance(value, ast.Literal)
        test = _literal_test(kind, mapped, value, name)
    return _on_field(name, test)


def _wildcard_test(kind: str, value: ast.Wildcard, name: str) -> ValuesTest:
    if kind not in ("keyword", "constant", "flattened", "text"):
        raise _error(f"wildcards only work on keyword and text fields: {name}", value.pos)
    if any(ch in QUERY_STRING_SPACE for part in value.parts for ch in part):
        raise _error(
            "a wildcard value with whitespace is split into several terms by query_string "
            "(and read whole by a wildcard query on data views): write it as a list",
            value.pos,
        )
    if kind == "text":
        parts = tuple(lowercase(p) for p in value.parts)
        token_match = _wildcard_matcher(parts)
        return lambda values: any(token_match(tok) for toks in tokens_of(values) for tok in toks)
    matches = _wildcard_matcher(value.parts)
    ignore_above = kind == "keyword"
    return lambda values: any(matches(v) for v in keywords(values, ignore_above=ignore_above))


def _wildcard_matcher(parts: tuple[str, ...]) -> Callable[[str], bool]:
    """Whole-value match: literal parts joined by any-string, linear time (RE2 or a DFA)."""
    nodes: list[Node] = []
    for i, part in enumerate(parts):
        if i:
            nodes.append(AnyString())
        if part:
            nodes.append(Lit(part))
    node = nodes[0]
    for nxt in nodes[1:]:
        node = Concat(node, nxt)
    return matcher_from_node("*".join(parts), node).matches


def _literal_test(kind: str, mapped: str, value: ast.Literal, name: str) -> ValuesTest:
    raw = value.value
    assert raw is not None
    if kind in ("keyword", "constant", "flattened"):
        target = keyword_text(raw)
        indexed = INDEXERS[kind]
        return lambda values: target in indexed(values, "")
    if kind == "text":
        wanted = tokenize(keyword_text(raw))
        if not wanted:
            return lambda _values: False  # no terms: match_none
        if value.quoted:
            return lambda values: any(contains_run(toks, wanted) for toks in tokens_of(values))
        terms = frozenset(wanted)
        return lambda values: any(tok in terms for toks in tokens_of(values) for tok in toks)
    if kind == "date":
        low = _query_date(raw, False, value.pos)
        high = _query_date(raw, True, value.pos)
        return lambda values: any(low <= v <= high for v in dates(values))
    key = _query_key(kind, mapped, raw, value.pos, name)
    if isinstance(key, tuple):  # an ip network
        lo, hi = key
        return lambda values: any(lo <= ip <= hi for ip in ips(values))
    indexed = INDEXERS[kind]
    return lambda values: key in indexed(values, mapped)


def _query_key(kind: str, mapped: str, raw: str | bool, pos: ast.Pos, name: str) -> Key:
    """The query value as the field's term query parses it; refused where ES would fail."""
    text = keyword_text(raw)
    if kind == "ip":
        if isinstance(raw, bool):
            raise _error(f"{raw} is not an IP string literal ({name} is ip)", pos)
        try:
            if "/" in text:
                net = ipaddress.ip_network(text, strict=False)
                lo = ip_key(net.network_address)
                hi = ip_key(net.broadcast_address)
                return (lo, hi)
            return ip_key(ipaddress.ip_address(text))
        except ValueError:
            raise _error(f"'{text}' is not an IP string literal ({name} is ip)", pos) from None
    if kind == "boolean":
        if text not in ("true", "false"):
            raise _error(f"can't parse boolean value [{text}] for {name}", pos)
        return text == "true"
    number = None if isinstance(raw, bool) else parse_number(text)
    if number is None:
        raise _error(f"'{text}' is not a number ({name} is {mapped})", pos)
    if kind == "integer":
        # A decimal part never equals an integer (LONG.termQuery answers match_none), and as a
        # range bound 4.5 orders against integers as ES's rounding does.
        return int(number) if number == int(number) else float(number)
    return round_float(float(number), mapped)


def _query_date(raw: str | bool, round_up: bool, pos: ast.Pos) -> int:
    parsed = None if isinstance(raw, bool) else parse_date(raw, round_up=round_up)
    if parsed is None:
        raise _error(
            f"{raw!r} is not a date in strict_date_optional_time or epoch_millis "
            "(date math is refused: it depends on the clock)",
            pos,
        )
    return parsed


# --- ranges --------------------------------------------------------------------------------------


def _range(node: ast.Range) -> Predicate:
    name = _field_name(node.field)
    kind = field_kind(name)
    mapped = field_type(name) or ""
    value = node.value
    raw: str | bool | None = (
        "*".join(value.parts) if isinstance(value, ast.Wildcard) else value.value
    )
    if raw is None:
        raise _error("null is not a range bound", node.pos)
    if kind.startswith("unsupported:") or kind == "object":
        raise _error(f"range queries are not supported on {mapped} field {name}", node.pos)
    if kind == "unmapped":
        return _never
    holds = _RANGE_TESTS[node.op]
    bound: Key
    if kind in ("keyword", "constant", "flattened"):
        bound = keyword_text(raw)
        indexed = INDEXERS[kind]
        return _on_field(name, lambda values: any(holds(v, bound) for v in indexed(values, "")))
    if kind == "text":
        bound = lowercase(keyword_text(raw))
        return _on_field(
            name,
            lambda values: any(holds(t, bound) for toks in tokens_of(values) for t in toks),
        )
    if kind == "date":
        bound = _query_date(raw, node.op in ("gt", "lte"), node.pos)
        return _on_field(name, lambda values: any(holds(v, bound) for v in dates(values)))
    if kind == "ip" and "/" in keyword_text(raw):
        raise _error("a range bound must be an address, not a network", node.pos)
    bound = _query_key(kind, mapped, raw, node.pos, name)
    indexed = INDEXERS[kind]
    return _on_field(name, lambda values: any(holds(v, bound) for v in indexed(values, mapped)))


# --- fields and required values ------------------------------------------------------------------


def _fields(node: ast.Node) -> Iterator[str]:
    match node:
        case ast.And(items=items) | ast.Or(items=items):
            for item in items:
                yield from _fields(item)
        case ast.Not(inner=inner):
            yield from _fields(inner)
        case ast.Is(field=ast.Literal() as field) | ast.Range(field=ast.Literal() as field):
            yield _field_name(field)
        case ast.Nested(field=ast.Literal() as field, query=query):
            yield _field_name(field)
            yield from _fields(query)
        case _:
            return


def _present(node: ast.Node) -> frozenset[str]:
    if isinstance(node, ast.And):
        return frozenset().union(*(_present(item) for item in node.items))
    if isinstance(node, ast.Is) and isinstance(node.field, ast.Literal):
        name = _field_name(node.field)
        if field_kind(name) in ("keyword", "constant", "flattened", "text"):
            return frozenset({name})
    return frozenset()


def _required(node: ast.Node) -> dict[str, frozenset[str]]:
    conjuncts = node.items if isinstance(node, ast.And) else (node,)
    out: dict[str, frozenset[str]] = {}
    for conjunct in conjuncts:
        found = _literal_alternatives(conjunct)
        if found is None:
            continue
        name, values = found
        out[name] = out[name] & values if name in out else values
    return out


def _literal_alternatives(node: ast.Node) -> tuple[str, frozenset[str]] | None:
    """``F:lit`` or an ``or`` of them on one keyword-like field: (F, keyword texts)."""
    leaves = node.items if isinstance(node, ast.Or) else (node,)
    name: str | None = None
    values: set[str] = set()
    for leaf in leaves:
        if not (
            isinstance(leaf, ast.Is)
            and isinstance(leaf.field, ast.Literal)
            and isinstance(leaf.value, ast.Literal)
            and leaf.value.value is not None
        ):
            return None
        leaf_name = _field_name(leaf.field)
        if name not in (None, leaf_name):
            return None
        name = leaf_name
        values.add(keyword_text(leaf.value.value))
    if name is None or field_kind(name) not in ("keyword", "constant", "flattened"):
        return None
    return name, frozenset(values)
