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

import threading
from collections.abc import Callable, Hashable
from functools import lru_cache
from typing import Final, Generic, ParamSpec, TypeVar

MEMO_ENTRIES: Final = 1024
MAX_KEY_CHARS: Final = 2048
"""Longer first arguments bypass the memo: entries x key x (key + result) stays a few MB."""

_T = TypeVar("_T")
_P = ParamSpec("_P")


def memo(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """``fn`` with a bounded memo (see the module doc for when that is sound): positional
    arguments, hashable, their strings together at most :data:`MAX_KEY_CHARS` (other calls go
    straight to ``fn``)."""
    cached = lru_cache(maxsize=MEMO_ENTRIES)(fn)

    def call(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        if kwargs or key_chars(args) > MAX_KEY_CHARS:
            return fn(*args, **kwargs)
        return cached(*args)

    return call


def key_chars(key: object) -> int:
    """The characters a key holds (strings, and tuples of them, nested), to bound the memos.

    Asked on every memoised call, so the strings of the usual keys (a flat tuple) are counted
    in the loop itself; only other parts take a call."""
    if isinstance(key, str):
        return len(key)
    if not isinstance(key, tuple):
        return 8
    total = 0
    for part in key:
        total += len(part) if type(part) is str else key_chars(part)
    return total


_K = TypeVar("_K", bound=Hashable)


class KeyedMemo(Generic[_K, _T]):
    """A bounded LRU for results whose inputs are not hashable themselves (an event), keyed by
    what the result is a function of (the values of the fields it reads).

    Thread-safe; a key whose strings total more than :data:`MAX_KEY_CHARS` is not stored.
    """

    __slots__ = ("_entries", "_lock")

    def __init__(self) -> None:
        self._entries: dict[_K, _T] = {}
        self._lock = threading.Lock()

    def get(self, key: _K) -> _T | None:
        with self._lock:
            found = self._entries.pop(key, None)
            if found is not None:
                self._entries[key] = found  # most recently used last
            return found

    def put(self, key: _K, value: _T) -> None:
        if key_chars(key) > MAX_KEY_CHARS:
            return
        with self._lock:
            self._entries[key] = value
            if len(self._entries) > MEMO_ENTRIES:
                del self._entries[next(iter(self._entries))]
