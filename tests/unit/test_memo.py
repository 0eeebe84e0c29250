"""The exec-path memos: same answers as the function, bounded in entries and in key size."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auditstream.detections.memo import MAX_KEY_CHARS, MEMO_ENTRIES, key_chars, memo


class Counting:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, text: str) -> str:
        self.calls.append(text)
        return text.upper()

    def two(self, text: str, other: int) -> str:
        self.calls.append(text)
        return text * other


def test_equal_strings_are_computed_once() -> None:
    fn = Counting()
    upper = memo(fn)
    assert [upper("ab"), upper("ab"), upper("cd"), upper("a" + "b")] == ["AB", "AB", "CD", "AB"]
    assert fn.calls == ["ab", "cd"]


def test_long_keys_bypass_the_memo() -> None:
    fn = Counting()
    upper = memo(fn)
    long = "x" * (MAX_KEY_CHARS + 1)
    assert upper(long) == long.upper()
    assert upper(long) == long.upper()
    assert fn.calls == [long, long]  # computed both times: never held by the memo
    edge = "y" * MAX_KEY_CHARS
    upper(edge)
    upper(edge)
    assert fn.calls.count(edge) == 1


def test_entries_are_bounded_least_recently_used_first() -> None:
    fn = Counting()
    upper = memo(fn)
    for i in range(MEMO_ENTRIES + 1):
        upper(str(i))
    upper(str(MEMO_ENTRIES))  # the newest: still held
    assert fn.calls.count(str(MEMO_ENTRIES)) == 1
    upper("0")  # the oldest was evicted
    assert fn.calls.count("0") == 2


def test_two_argument_memo_keys_on_both() -> None:
    fn = Counting()
    times = memo(fn.two)
    assert [times("ab", 2), times("ab", 2), times("ab", 3)] == ["abab", "abab", "ababab"]
    assert fn.calls == ["ab", "ab"]
    long = "z" * (MAX_KEY_CHARS + 1)
    times(long, 1)
    times(long, 1)
    assert fn.calls.count(long) == 2


def test_exceptions_are_not_remembered() -> None:
    seen: list[str] = []

    def flaky(text: str) -> str:
        seen.append(text)
        if len(seen) == 1:
            raise ValueError("first call fails")
        return text

    once = memo(flaky)
    with pytest.raises(ValueError, match="first call fails"):
        once("a")
    assert once("a") == "a"
    assert seen == ["a", "a"]


class _Text(str):
    """A str subclass (an enum value, a tagged string): counted by its characters too."""


def _chars_by_definition(key: object) -> int:
    if isinstance(key, str):
        return len(key)
    if isinstance(key, tuple):
        return sum(_chars_by_definition(part) for part in key)
    return 8


_KEYS = st.recursive(
    st.text(max_size=30) | st.builds(_Text, st.text(max_size=5)) | st.integers() | st.none(),
    lambda children: st.lists(children, max_size=5).map(tuple),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(key=_KEYS)
def test_key_size_counts_every_string_however_nested(key: object) -> None:
    # The fast count bounds the memos: it must never undercount what an attacker can nest.
    assert key_chars(key) == _chars_by_definition(key)
