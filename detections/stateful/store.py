"""Where a partition's stateful-rule state lives: an ordered key-value store of bytes.

``scan`` and the unit tests use :class:`MemoryStore`; the service uses a RocksDB store on local
disk (``auditstream.stream.state``) whose every change also goes to a changelog topic.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class StateStore(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every entry, in key order (a snapshot: writes while iterating are not seen)."""
        ...


class MemoryStore:
    """A dict: the store of ``scan`` and of tests."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.data[key] = value

    def delete(self, key: bytes) -> None:
        self.data.pop(key, None)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(sorted(self.data.items()))

    def __len__(self) -> int:
        return len(self.data)
