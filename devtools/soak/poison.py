"""Poison records: input that is not audit data, which the service must dead-letter, never drop.

One of each reason the service gives (``not_json``, ``not_utf8``, ``unknown_shape``,
``not_gzip``, ``oversized``), repeated as the run gets longer, plus one record of about 1.5 MB
that the broker accepts only because the input topic's ``max.message.bytes`` is raised: its dead
letter is larger than the producer's and the dead-letter topic's limits, the case that used to
stop replicas. Each poison record has a key of its own (``soak-poison-<kind>-<n>``), which is
how the checker finds it on the dead-letter topic.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Final

__all__ = ["HUGE", "Poison", "build_poison"]

HUGE: Final = "huge"
_ASCII: Final = b"abcdefghij{}[]:,"
_BINARY: Final = _ASCII + b"\x00\x01\x80\x9f\xff"


@dataclass(frozen=True, slots=True)
class Poison:
    """One poison record and the dead-letter reason the service should give it."""

    kind: str
    key: bytes
    value: bytes
    reason: str


def build_poison(
    rng: random.Random, *, duration: float, max_message_bytes: int, huge_bytes: int
) -> list[Poison]:
    """The poison of a run: every small kind about twice a minute, an oversized record every
    two minutes, and the huge one once (when ``huge_bytes``)."""
    small = max(1, round(duration / 30))
    poison: list[Poison] = []
    for n in range(small):
        not_json = b'{"kind":"Event","stage":' + _noise(rng, 40, _ASCII)
        not_utf8 = b'{"kind":"Event","user":"\xff\xfe' + _noise(rng, 8) + b'"}'
        not_gzip = b"\x1f\x8b\x08\x00" + _noise(rng, 64)
        poison += [
            _poison("not_json", n, not_json, "not_json"),
            _poison("not_utf8", n, not_utf8, "not_utf8"),
            _poison("unknown_shape", n, _json({"hello": "world", "n": n}), "unknown_shape"),
            _poison("not_gzip", n, not_gzip, "not_gzip"),
        ]
    for n in range(max(1, round(duration / 120))):
        size = max_message_bytes + 64 * 1024
        poison.append(_poison("oversized", n, _padded_event(size), "oversized"))
    if huge_bytes:
        poison.append(_poison(HUGE, 0, _padded_event(huge_bytes), "oversized"))
    return poison


def _poison(kind: str, n: int, value: bytes, reason: str) -> Poison:
    return Poison(kind, f"soak-poison-{kind}-{n}".encode(), value, reason)


def _noise(rng: random.Random, size: int, alphabet: bytes = _BINARY) -> bytes:
    """Bytes with no newline (the input is also written as JSON lines for the scan)."""
    return bytes(rng.choice(alphabet) for _ in range(size))


def _json(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _padded_event(size: int) -> bytes:
    """A JSON object that looks like an audit event, padded to ``size`` bytes."""
    head = _json({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "pad": ""})[:-2]
    return head + b"x" * (size - len(head) - 2) + b'"}'
