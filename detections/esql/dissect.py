"""ES|QL ``DISSECT input "pattern" [APPEND_SEPARATOR="sep"]``: Elasticsearch's dissect parser.

Semantics of ``libs/dissect`` (``DissectParser``, ``DissectKey``, ``DissectMatch``) reproduced
quirk for quirk, and ES|QL's restrictions (``LogicalPlanBuilder.visitDissectCommand``):

* keys ``%{a}``, ``%{+a}`` (append, implicit order), ``%{+a/2}`` (append with order),
  ``%{?a}`` and ``%{}`` (skipped), ``%{a->}`` (skip repeated delimiters to the right);
  reference keys ``%{*a}``/``%{&a}`` are rejected by ES|QL, and so here;
* the text before the first ``%{`` must prefix the input, and the input must be *longer*;
* the input is walked left to right as UTF-8 bytes looking for the next delimiter; repeated
  copies of a delimiter give the following keys empty values, unless the key has ``->``;
  the last key takes the rest when its delimiter is empty; all keys must be seen (no match ->
  None). Elasticsearch starts the walk at the leading delimiter's length in UTF-16 units but
  indexes bytes, so a non-ASCII leading delimiter shifts the first value: reproduced.
* appended values are joined with the separator, sorted by order (implicit orders first).

Linear in the input for a fixed pattern: one ``bytes.find`` per delimiter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from auditstream.detections.errors import QuerySyntaxError

_LEADING = re.compile(r"^(.*?)%\{", re.DOTALL)
_KEY_AND_DELIMITER = re.compile(r"%\{([^}]*?)}(.+?(?=%\{)|.*$)", re.DOTALL)
_MODIFIERS = re.compile(r"[/+*&?]")
_ORDERED = re.compile(r"[+](.*?)(/)([0-9]+)(->)?$", re.DOTALL)
_IMPLICIT_ORDER_START = -1000


@dataclass(frozen=True)
class _Key:
    name: str
    modifier: str  # "", "+", "/", "?", "*", "&"
    skip: bool
    right_padding: bool
    order: int = 0


@dataclass(frozen=True)
class Dissect:
    """A compiled DISSECT command; build it with :func:`compile_dissect`."""

    pattern: str
    columns: tuple[str, ...]
    _leading: bytes
    _leading_units: int  # UTF-16 length: where Elasticsearch starts the byte walk
    _pairs: tuple[tuple[_Key, bytes], ...]
    _separator: str

    def match(self, text: str) -> dict[str, str | None] | None:
        """Column values, or None when the pattern does not match (every column null)."""
        data = text.encode("utf-8", "surrogatepass")
        if not (len(data) > len(self._leading) and data.startswith(self._leading)):
            return None
        found = self._walk(data)
        if found is None:
            return None
        return self._results(found)

    def _walk(self, data: bytes) -> list[tuple[_Key, str]] | None:
        pairs, n = self._pairs, len(data)
        found: list[tuple[_Key, str]] = []
        k = 0
        key, delim = pairs[0]
        i = start = self._leading_units
        while i < n and delim:
            hit = data.find(delim, i)
            if hit < 0:
                break
            found.append((key, data[start:hit].decode("utf-8", "replace")))
            i = hit + len(delim)
            while i < n and data.startswith(delim, i):
                i += len(delim)
                if not key.right_padding:
                    if k + 1 >= len(pairs):
                        break
                    k += 1
                    key = pairs[k][0]
                    found.append((key, ""))
            if k + 1 >= len(pairs):
                break
            k += 1
            key, delim = pairs[k]
            start = i
        if len(found) != len(pairs) and not delim:
            found.append((key, data[start:].decode("utf-8", "replace")))
        return found if len(found) == len(pairs) else None

    def _results(self, found: list[tuple[_Key, str]]) -> dict[str, str | None] | None:
        simple: dict[str, str] = {}
        appended: dict[str, list[tuple[int, str]]] = {}
        implicit = _IMPLICIT_ORDER_START
        for key, value in found:
            if key.skip:
                continue
            if key.modifier == "+":
                appended.setdefault(key.name, []).append((implicit, value))
                implicit += 1
            elif key.modifier == "/":
                appended.setdefault(key.name, []).append((key.order, value))
            else:
                simple[key.name] = value
        results: dict[str, str | None] = dict(simple)
        for name, values in appended.items():
            results[name] = self._separator.join(v for _, v in sorted(values, key=lambda p: p[0]))
        if len(results) != len(self.columns):
            return None
        return {column: results.get(column) for column in self.columns}


def compile_dissect(pattern: str, append_separator: str = "") -> Dissect:
    """Parses a dissect pattern once; QuerySyntaxError where Elasticsearch rejects it."""
    leading = ""
    for found in _LEADING.finditer(pattern):
        leading = found.group(1)
    pairs = [
        (_parse_key(m.group(1), pattern), m.group(2))
        for m in _KEY_AND_DELIMITER.finditer(pattern[len(leading) :])
    ]
    names = list(dict.fromkeys(key.name for key, _ in pairs if not key.skip))
    if not pairs or not names:
        raise QuerySyntaxError(f"Invalid pattern for dissect: [{pattern}]")
    appended = {key.name for key, _ in pairs if key.modifier in ("+", "/")}
    pairs = [
        (
            _Key(k.name, "+", k.skip, k.right_padding)
            if k.modifier == "" and k.name in appended
            else k,
            d,
        )
        for k, d in pairs
    ]
    if any(key.modifier in ("*", "&") for key, _ in pairs):
        raise QuerySyntaxError(f"Reference keys not supported in dissect patterns: [{pattern}]")
    return Dissect(
        pattern,
        tuple(names),
        leading.encode("utf-8", "surrogatepass"),
        len(leading.encode("utf-16-le", "surrogatepass")) // 2,
        tuple((k, d.encode("utf-8", "surrogatepass")) for k, d in pairs),
        append_separator,
    )


def _parse_key(key: str, pattern: str) -> _Key:
    modifiers = _MODIFIERS.findall(key)
    if (len(modifiers) > 1 and modifiers[:2] != ["+", "/"]) or len(modifiers) > 2:
        raise QuerySyntaxError(f"Invalid pattern for dissect: [{pattern}]")
    modifier = "/" if modifiers[-1:] == ["/"] else (modifiers[-1] if modifiers else "")
    padding = key.endswith("->")
    if modifier == "":
        name = key[:-2] if padding else key
        return _Key(name, "", name == "", padding)
    if modifier == "/":
        found = _ORDERED.search(key)
        if found is None:
            raise QuerySyntaxError(f"Invalid pattern for dissect: [{pattern}]")
        return _Key(found.group(1), "/", False, found.group(4) is not None, int(found.group(3)))
    first = re.search(r"[+*&?](.*?)(->)?$", key, re.DOTALL)
    assert first is not None
    name = first.group(1)
    if name == "" and modifier != "?":
        raise QuerySyntaxError(f"Invalid pattern for dissect: [{pattern}]")
    return _Key(name, modifier, modifier == "?", first.group(2) is not None)
