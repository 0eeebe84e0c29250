"""gzip-compressed messages (Kinesis and Firehose deliver CloudWatch Logs payloads so), inflated
with a bound: a small message must not become gigabytes in memory."""

from __future__ import annotations

import zlib
from typing import Final

from auditstream.detections.errors import MalformedEvent

GZIP_MAGIC: Final = b"\x1f\x8b"
MAX_INFLATED_BYTES: Final = 16 * 1_048_576
"""A CloudWatch Logs payload is at most 1 MB of log events before compression; 16 MiB leaves
room for any real payload and stops a zip bomb early."""


def is_gzip(data: bytes) -> bool:
    return data[:2] == GZIP_MAGIC


def inflate(data: bytes, *, limit: int = MAX_INFLATED_BYTES) -> bytes:
    """The bytes of every gzip member of ``data`` (Firehose concatenates members), at most
    ``limit`` of them; raises :class:`MalformedEvent` (``not_gzip``, ``oversized``)."""
    out: list[bytes] = []
    size = 0
    rest = data
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        try:
            chunk = inflater.decompress(rest, limit - size + 1)
        except zlib.error as err:
            raise MalformedEvent("not_gzip", f"cannot inflate: {err}") from err
        size += len(chunk)
        if size > limit or inflater.unconsumed_tail:
            raise MalformedEvent("oversized", f"inflates to more than {limit} bytes")
        if not inflater.eof:
            raise MalformedEvent("not_gzip", "truncated gzip stream")
        out.append(chunk)
        rest = inflater.unused_data
    return b"".join(out)
