"""A partition's state on local disk (RocksDB), and the changes it owes its changelog.

Why RocksDB (through ``rocksdict``): new-terms history is days of keys and may not fit in memory;
RocksDB keeps it on disk with a bounded cache, is what Kafka Streams and quix-streams use for the
same job, and ships as a wheel (no build). The local copy is a cache of the changelog topic, the
state's durable home: a store is trusted only when a clean close left a checkpoint file naming
the changelog offset it holds; otherwise it is wiped and restored from the changelog.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from rocksdict import Options, Rdict

CHECKPOINT_FILE: Final = ".checkpoint"


class RocksStore:
    """One partition's store: a RocksDB database in its own folder, keys and values bytes."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._db = Rdict(str(folder / "db"), options=Options(raw_mode=True))

    def get(self, key: bytes) -> bytes | None:
        value = self._db.get(key)
        return value if isinstance(value, bytes) else None

    def put(self, key: bytes, value: bytes) -> None:
        self._db[key] = value

    def delete(self, key: bytes) -> None:
        del self._db[key]

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        yield from self._db.items()

    def close(self) -> None:
        self._db.close()

    def size_bytes(self) -> int:
        """What the store holds, as RocksDB estimates it: live data on disk plus memtables."""
        total = 0
        for name in ("rocksdb.estimate-live-data-size", "rocksdb.cur-size-all-mem-tables"):
            value = self._db.property_int_value(name)
            total += int(value) if value is not None else 0
        return total

    # -- the checkpoint: which changelog offset a cleanly closed store holds -------------------

    def read_checkpoint(self) -> int | None:
        """The next changelog offset to restore from, if a clean close wrote one."""
        try:
            return int(json.loads((self.folder / CHECKPOINT_FILE).read_text())["next_offset"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write_checkpoint(self, next_offset: int) -> None:
        self._db.flush()
        temporary = self.folder / (CHECKPOINT_FILE + ".tmp")
        temporary.write_text(json.dumps({"next_offset": next_offset}))
        temporary.replace(self.folder / CHECKPOINT_FILE)

    def drop_checkpoint(self) -> None:
        """While a replica owns the store its contents run ahead of any checkpoint: a crash
        must find none, so that the next owner restores from the changelog."""
        (self.folder / CHECKPOINT_FILE).unlink(missing_ok=True)


def wipe(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


@dataclass(slots=True)
class Changes:
    """Writes made while applying one candidate, in order: ``None`` is a delete (a tombstone)."""

    entries: list[tuple[bytes, bytes | None]] = field(default_factory=list)


class ChangeloggedStore:
    """A store that also records each write, for the changelog producer to send."""

    def __init__(self, store: RocksStore) -> None:
        self.store = store
        self.changes = Changes()

    def get(self, key: bytes) -> bytes | None:
        return self.store.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.store.put(key, value)
        self.changes.entries.append((key, value))

    def delete(self, key: bytes) -> None:
        self.store.delete(key)
        self.changes.entries.append((key, None))

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return self.store.items()

    def take_changes(self) -> list[tuple[bytes, bytes | None]]:
        taken = self.changes.entries
        self.changes = Changes()
        return taken
