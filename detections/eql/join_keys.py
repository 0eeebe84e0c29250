"""How Elasticsearch reads a sequence's join keys (``by`` fields) from an indexed document.

A key's values are what the field indexes (keyword text, numbers, booleans, an ip as text);
Elasticsearch keeps only events whose non-optional keys are not null (an ``exists`` filter,
PRs #78195 and #79677) and joins on each value of a multi-valued key (PR #89965). See
``docs/eql-sequence-semantics.md``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

from auditstream.detections.elastic.document import ElasticDocument
from auditstream.detections.elastic.fields import field_type
from auditstream.detections.elastic.indexing import INDEXERS, Key
from auditstream.detections.eql import ast
from auditstream.detections.errors import DetectionError
from auditstream.detections.kql import field_kind
from auditstream.detections.values import Scalar

__all__ = ["KeyReader", "key_reader"]

KeyReader = Callable[[ElasticDocument], tuple[Scalar | None, ...]]

_REFUSED_KINDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "text": "EQL does not support text fields",
        "date": "date join keys are not supported",
        "object": "it is an object; name one of its fields",
    }
)


def key_reader(key: ast.FieldRef) -> KeyReader:
    """The join key values of one field, as Elasticsearch reads them: every indexed value
    (a multi-valued field gives one key per value), none when the field has no value (a
    non-optional key must not be null: the event joins nothing), ``null`` for an optional
    (``?field``) key without a value. Decided once, at load."""
    name = key.name
    kind = field_kind(name)
    if kind == "unmapped":
        if key.optional:
            return lambda _doc: (None,)
        raise DetectionError(
            f"join key {name} is not indexed by the audit data stream (dynamic: false): no "
            "event has a non-null value for it, so the sequence can never complete"
        )
    if kind in _REFUSED_KINDS or kind.startswith("unsupported:"):
        why = _REFUSED_KINDS.get(kind, f"fields of type {kind.split(':', 1)[-1]} are refused")
        raise DetectionError(f"join key {name} cannot be used: {why}")
    indexed = INDEXERS[kind]
    mapped = field_type(name) or ""
    value_of = _ip_text if kind == "ip" else _scalar
    missing: tuple[Scalar | None, ...] = (None,) if key.optional else ()

    def read(document: ElasticDocument) -> tuple[Scalar | None, ...]:
        values = indexed(document.values(name), mapped)
        if not values:
            return missing
        return tuple(dict.fromkeys(value_of(value) for value in values))

    return read


def _ip_text(key: Key) -> str:
    """An address as Elasticsearch returns an ip field (IPv4, or IPv4-mapped IPv6, dotted)."""
    assert isinstance(key, int)
    address = ipaddress.IPv6Address(key)
    return str(address.ipv4_mapped or address)


def _scalar(key: Key) -> Scalar:
    assert not isinstance(key, tuple)  # only ip keys are pairs, and they are read as text
    return key
