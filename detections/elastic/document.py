"""Field values of an Elastic document as Elasticsearch indexes them, read straight from _source.

Elasticsearch flattens a document before it indexes it: ``a.b`` is the object path ``a`` -> ``b``
whether the source spells it nested, as one dotted key, or as a mix; an array of objects
contributes every object's ``b`` to ``a.b`` (objects are not ``nested`` here); arrays of values
are flattened and ``null`` elements dropped. A query on ``a.b`` sees that bag of values, in
source order. :meth:`ElasticDocument.values` gives exactly that bag, so every rule language
that queries indexed documents (KQL, EQL, ES|QL's ``KQL()``) reads fields one way.

Under a ``flattened`` field (:data:`~auditstream.detections.elastic.fields.FLATTENED`) every
leaf is indexed as a keyword: its values are strings (``true`` -> ``"true"``), and the root
field holds every leaf below it at any depth, as Elasticsearch indexes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from auditstream.detections.elastic.fields import flattened_root
from auditstream.detections.values import Scalar


class ElasticDocument:
    """One indexed document (its ``_source``); values are computed per field on demand."""

    __slots__ = ("_cache", "source")

    def __init__(self, source: Mapping[str, Any]) -> None:
        self.source = source
        self._cache: dict[str, tuple[Scalar, ...]] = {}

    def values(self, field: str) -> tuple[Scalar, ...]:
        """Every leaf value indexed under ``field`` (``()``: missing, null, empty, or only
        objects there)."""
        found = self._cache.get(field)
        if found is None:
            out: list[Scalar] = []
            root = flattened_root(field)
            if root == field:
                _collect_all(self.source, field.split("."), out)
            else:
                _collect(self.source, _joins(field), 0, out)
            if root is not None:
                out = [_keyword(value) for value in out]
            found = self._cache[field] = tuple(out)
        return found

    def has_object(self, field: str) -> bool:
        """True when ``field`` names an object (or objects) in the source, not a leaf: what
        ``field:*`` and ``exists`` need to know besides :meth:`values`."""
        probe: list[Scalar] = []
        return _collect(self.source, _joins(field), 0, probe, objects=True)


def _collect_all(source: object, parts: list[str], out: list[Scalar]) -> None:
    """Every leaf at any depth under the objects at ``parts`` (a flattened root's values)."""
    objects: list[object] = []
    _collect_objects(source, parts, 0, objects)
    for node in objects:
        _leaves(node, out)


def _collect_objects(node: object, parts: list[str], index: int, out: list[object]) -> None:
    if isinstance(node, list):
        for item in node:
            _collect_objects(item, parts, index, out)
        return
    if index == len(parts):
        out.append(node)
        return
    if not isinstance(node, Mapping):
        return
    for end in range(index + 1, len(parts) + 1):
        key = ".".join(parts[index:end])
        if key in node:
            _collect_objects(node[key], parts, end, out)


def _leaves(node: object, out: list[Scalar]) -> None:
    if isinstance(node, Mapping):
        for value in node.values():
            _leaves(value, out)
    elif isinstance(node, list):
        for item in node:
            _leaves(item, out)
    elif isinstance(node, str | int | float | bool):
        out.append(node)


def _keyword(value: Scalar) -> str:
    """A flattened leaf as indexed: its JSON text (``true``, ``1``, ``1.5``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


Joins = tuple[tuple[tuple[int, str], ...], ...]
"""Per segment index of a field path: each (end, key) to probe there, the segment alone first,
then the longer dotted joins ("a.b" spelled as one key)."""


@lru_cache(maxsize=1024)
def _joins(field: str) -> Joins:
    parts = field.split(".")
    return tuple(
        tuple((end, ".".join(parts[index:end])) for end in range(index + 1, len(parts) + 1))
        for index in range(len(parts))
    )


def _collect(
    node: object, joins: Joins, index: int, out: list[Scalar], *, objects: bool = False
) -> bool:
    """Walk the path from segment ``index`` under ``node``; append leaves to ``out``. Returns
    whether an object was found at the end of the path (only tracked with ``objects``)."""
    if isinstance(node, list):
        found = False
        for item in node:
            found = _collect(item, joins, index, out, objects=objects) or found
        return found
    # dict first: the ABC check behind isinstance(..., Mapping) costs more than the walk itself
    mapping = node if type(node) is dict or isinstance(node, Mapping) else None
    if index == len(joins):
        if mapping is not None:
            return objects
        if isinstance(node, str | int | float | bool):
            out.append(node)
        return False
    if mapping is None:
        return False
    found = False
    for end, key in joins[index]:
        if key in mapping:
            found = _collect(mapping[key], joins, end, out, objects=objects) or found
    return found
