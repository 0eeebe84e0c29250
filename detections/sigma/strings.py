"""Sigma string values: ``*`` and ``?`` wildcards, case-insensitive unless ``|cased``.

pySigma has already applied the escapes and the string modifiers (``contains`` put ``*`` around
the value, ``base64`` encoded it), so a value arrives as parts: literal text and wildcards. Most
values are a plain string, a prefix, a suffix or a substring, and compile to ``==``,
``startswith``, ``endswith`` or ``in``. Anything else compiles to an RE2 full match, which runs
in time linear in the value, whatever the pattern.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from typing import Final

import re2
from sigma.types import SigmaCasedString, SigmaString, SpecialChars

TextMatcher = Callable[[str], bool]

_MULTI: Final = SpecialChars.WILDCARD_MULTI
_SINGLE: Final = SpecialChars.WILDCARD_SINGLE


def fold(text: str) -> str:
    """Sigma's case-insensitive comparison folds both sides with this."""
    return text.lower()


def is_match_all(value: SigmaString) -> bool:
    """A value of ``*`` wildcards only: it matches any value the field holds, objects and
    arrays included (as the Elasticsearch backend's ``field:*``, an exists query)."""
    return bool(value.s) and all(part is _MULTI for part in value.s)


def plain_text(value: SigmaString) -> str | None:
    """The value as text when it holds no wildcard (after case folding unless cased)."""
    if any(not isinstance(part, str) for part in value.s):
        return None
    text = "".join(part for part in value.s if isinstance(part, str))
    return text if isinstance(value, SigmaCasedString) else fold(text)


def compile_string(value: SigmaString) -> TextMatcher:
    """A matcher of one text (a string value, or a number's or boolean's JSON text)."""
    cased = isinstance(value, SigmaCasedString)
    parts = _merge_stars(value.s)
    literal = [p for p in parts if isinstance(p, str)]
    norm: Callable[[str], str] = (lambda t: t) if cased else fold
    shape = tuple("*" if p is _MULTI else "?" if p is _SINGLE else "s" for p in parts)
    if shape == ():
        return lambda text: text == ""
    if shape == ("s",):
        want = norm(literal[0])
        return lambda text: norm(text) == want
    if shape == ("s", "*"):
        head = norm(literal[0])
        return lambda text: norm(text).startswith(head)
    if shape == ("*", "s"):
        tail = norm(literal[0])
        return lambda text: norm(text).endswith(tail)
    if shape == ("*", "s", "*"):
        middle = norm(literal[0])
        return lambda text: middle in norm(text)
    if shape == ("*",):
        return lambda _text: True
    return _regex_matcher(parts, cased)


def _merge_stars(parts: Sequence[object]) -> list[object]:
    merged: list[object] = []
    for part in parts:
        if part is _MULTI and merged and merged[-1] is _MULTI:
            continue
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] = merged[-1] + part
            continue
        merged.append(part)
    return merged


def _regex_matcher(parts: list[object], cased: bool) -> TextMatcher:
    """``?`` or inner ``*``: an RE2 full match of the folded text (RE2 does not backtrack)."""
    pieces = []
    for part in parts:
        if part is _MULTI:
            pieces.append(".*")
        elif part is _SINGLE:
            pieces.append(".")
        else:
            text = str(part)
            pieces.append(_escape(text if cased else fold(text)))
    pattern = re2.compile("(?s)" + "".join(pieces))
    if cased:
        return lambda text: pattern.fullmatch(text) is not None
    return lambda text: pattern.fullmatch(fold(text)) is not None


def _escape(text: str) -> str:
    """RE2 literal text: ASCII punctuation escaped, everything else (whitespace, non-ASCII)
    taken literally, which RE2 accepts and ``re.escape``'s spelling of it does not promise."""
    return "".join("\\" + c if c in string.punctuation else c for c in text)
