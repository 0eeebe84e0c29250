"""Dotted field paths over parsed JSON, compiled once and walked cheaply per event.

Elasticsearch treats ``a.b`` as the object path ``a`` → ``b`` whether the document spells it as
nested objects, as one flattened key ``"a.b"``, or as a mix. A compiled :class:`FieldPath`
resolves the same way: at each level it tries the next segment alone first (the common, nested
case) and then the longer dotted joins, so ``{"a.b": 1}`` and ``{"a": {"b": 1}}`` both answer
``a.b``. Every candidate key is built at compile time; a lookup does only dict probes.

Values follow :mod:`auditstream.detections.values`: a JSON array of several scalars is a
multi-value tuple,
a one-element array is its scalar, and an empty array, a missing key, ``null`` or an object
(a non-leaf) is ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from auditstream.detections.values import Scalar, Value

MISSING: Final = object()
"""Sentinel for "no such key", distinct from a JSON ``null``."""

OPAQUE_MAP_KEYS: Final = frozenset({"annotations", "labels", "extra"})
"""Objects whose keys are free-form and may themselves contain dots (annotation and label keys
such as ``authorization.k8s.io/decision``, ``user.extra`` keys); a flattened path that enters one
of them takes the whole remainder as a single key."""


class FieldPath:
    """A dotted path split once, with every dotted join of its segments precomputed."""

    __slots__ = ("_joins", "_segments", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        segments = text.split(".")
        self._segments = tuple(segments)
        # _joins[i] = (s_i, s_i.s_i+1, ..., s_i.....s_n-1): candidate keys starting at segment i.
        self._joins: tuple[tuple[str, ...], ...] = tuple(
            tuple(".".join(segments[i:j]) for j in range(i + 1, len(segments) + 1))
            for i in range(len(segments))
        )

    def lookup(self, root: object) -> object:
        """Return the raw JSON value at this path under ``root``, or :data:`MISSING`.

        The nested spelling is walked first with plain dict probes (the hot path); only when it
        misses are the dotted joins tried.
        """
        node = root
        for segment in self._segments:
            if type(node) is not dict:
                break
            node = node.get(segment, MISSING)
        else:
            if node is not MISSING or len(self._segments) == 1:
                return node
            if len(self._segments) == 2:
                # Both levels are dicts and only the leaf missed: of the dotted joins, just the
                # one flattened key is left (``objectRef.subresource`` on a routine event).
                return root.get(self._joins[0][1], MISSING)  # type: ignore[attr-defined]
        return _walk(root, self._joins, 0)


def _walk(node: object, joins: tuple[tuple[str, ...], ...], index: int) -> object:
    if index == len(joins):
        return node
    if type(node) is not dict and not isinstance(node, Mapping):
        return MISSING
    for width, key in enumerate(joins[index], start=1):
        child = node.get(key, MISSING)
        if child is not MISSING:
            found = _walk(child, joins, index + width)
            if found is not MISSING:
                return found
    return MISSING


def to_value(raw: object) -> Value:
    """Convert a parsed JSON value to an ES|QL column value.

    Nested arrays are flattened and ``null`` or object elements dropped, as Elasticsearch does when
    it indexes an array; what is left decides scalar, multi-value or null.
    """
    kind = type(raw)
    if kind is str or kind is int or kind is bool or kind is float:
        return raw  # type: ignore[return-value]
    if raw is None or raw is MISSING:
        return None
    if isinstance(raw, str | bool | int | float):
        return raw
    if isinstance(raw, list):
        flat: list[Scalar] = []
        _flatten(raw, flat)
        if not flat:
            return None
        if len(flat) == 1:
            return flat[0]
        return tuple(flat)
    return None


def _flatten(items: list[object], out: list[Scalar]) -> None:
    for item in items:
        if isinstance(item, str | bool | int | float):
            out.append(item)
        elif isinstance(item, list):
            _flatten(item, out)


def ecs_key(key: str) -> str:
    """The Elastic integration's spelling of an annotation key: every ``.`` becomes ``_``."""
    return key.replace(".", "_")


def restore_annotation_key(key: str) -> str:
    """Undo :func:`ecs_key` where it is exact: in the DNS prefix before the first ``/``.

    A DNS subdomain cannot hold ``_``, so ``authorization_k8s_io/decision`` can only have been
    ``authorization.k8s.io/decision``; the name after ``/`` may legally hold both characters and is
    left as it is (lookups compare the ECS spelling of both sides, see :func:`lookup_annotation`).
    """
    prefix, slash, name = key.partition("/")
    if not slash or "_" not in prefix:
        return key
    return f"{prefix.replace('_', '.')}/{name}"


def lookup_annotation(annotations: object, key: str, key_ecs: str) -> object:
    """Find an annotation by its raw or ECS spelling; ``key_ecs`` is ``ecs_key(key)``.

    Exact keys are probed first; only on a miss are the (few) keys compared in ECS spelling.
    """
    if type(annotations) is not dict and not isinstance(annotations, Mapping):
        return MISSING
    found = annotations.get(key, MISSING)
    if found is MISSING and key_ecs != key:
        found = annotations.get(key_ecs, MISSING)
    if found is not MISSING:
        return found
    for candidate, value in annotations.items():
        if isinstance(candidate, str) and ecs_key(candidate) == key_ecs:
            return value
    return MISSING


def split_flattened(path: str) -> list[str]:
    """Split a flattened key into object path segments, keeping opaque map keys whole.

    ``annotations.authorization.k8s.io/decision`` → ``["annotations", "authorization.k8s.io/..."]``.
    """
    segments = path.split(".")
    for i, segment in enumerate(segments[:-1]):
        if segment in OPAQUE_MAP_KEYS:
            return [*segments[: i + 1], ".".join(segments[i + 1 :])]
    return segments
