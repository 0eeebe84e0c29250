"""Bounded memos for the pure functions on the exec path, and why they pay.

An exec request reaches the audit log two or three times (``RequestReceived`` unless the policy
omits it, ``ResponseStarted``, ``ResponseComplete``), every time with the same request URI, and
automation runs the same commands in pod after pod. So the URL decoding, GROK, REPLACE, RLIKE,
query parsing and command analysis of most exec events have been done before, on equal strings.

Only pure functions are memoised (same arguments, same result, no side effect); their results
are immutable or copied by the caller. Each memo is a ``functools.lru_cache`` (thread-safe, C
implementation, about a dict probe per hit) bounded in entries, and only keys of at most
:data:`MAX_KEY_CHARS` go in, so attacker-chosen strings can evict entries but never hold more
than a few MB; Python's randomised string hashing keeps collisions out of an attacker's hands.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Final, TypeVar

MEMO_ENTRIES: Final = 1024
MAX_KEY_CHARS: Final = 2048
"""Longer first arguments bypass the memo: entries x key x (key + result) stays a few MB."""

_T = TypeVar("_T")
_U = TypeVar("_U")


def memo(fn: Callable[[str], _T]) -> Callable[[str], _T]:
    """``fn`` with a bounded memo (see the module doc for when that is sound)."""
    cached = lru_cache(maxsize=MEMO_ENTRIES)(fn)

    def call(text: str) -> _T:
        return cached(text) if len(text) <= MAX_KEY_CHARS else fn(text)

    return call


def memo2(fn: Callable[[str, _U], _T]) -> Callable[[str, _U], _T]:
    """:func:`memo` for two arguments; the second must be hashable and small."""
    cached = lru_cache(maxsize=MEMO_ENTRIES)(fn)

    def call(text: str, other: _U) -> _T:
        return cached(text, other) if len(text) <= MAX_KEY_CHARS else fn(text, other)

    return call
