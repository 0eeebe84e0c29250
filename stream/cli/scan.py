"""``auditstream scan``: the detection pipeline over JSON-lines files, no Kafka needed.

Alerts go to an :class:`auditstream.stream.sinks.AlertSink` (stdout as JSON lines from the command
line), one per (rule, auditID); the summary goes to stderr. A line that
is not audit data is counted, reported with its number and, with ``--dead-letter``, written out
with its reason; the scan never stops on one.

Sizes: a line is one message, under the pipeline's per-message limit, except a batch: a line
larger than that limit that holds an ``EventList`` or a JSON array (a webhook batch of thousands
of events) is evaluated event by event, each under the per-message limit, and an event that is
too big or not audit data is reported alone, with its place in the batch (``entry``). No line
may exceed ``max_line_bytes`` (:data:`~auditstream.detections.event.decode.MAX_LINE_BYTES`,
256 MiB): a longer one is skipped without being read into memory, reported ``oversized``, and
its first :data:`DEAD_LETTER_HEAD_BYTES` bytes go to ``--dead-letter`` with ``original_bytes``
and ``truncated``. A UTF-8 byte-order mark at the start of an input is not part of its first
line.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final, Protocol

from auditstream.detections.alert import SourceRef
from auditstream.detections.errors import MalformedEvent
from auditstream.detections.event.decode import BOM, MAX_LINE_BYTES, split_batch
from auditstream.detections.event.inflate import is_gzip
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.stream.sinks.alert_sink import AlertSink, written

MALFORMED_LISTED = 20
PROGRESS_MIN_BYTES = 8 * 1024 * 1024
DEAD_LETTER_HEAD_BYTES: Final = 64 * 1024
"""What ``--dead-letter`` keeps of a line too long to read."""
_SKIP_CHUNK: Final = 1024 * 1024


@dataclass(slots=True)
class MalformedLine:
    file: str
    line: int
    reason: str
    detail: str
    entry: int | None = None
    """The entry of the line's cloud batch, when only that entry is malformed."""


@dataclass(slots=True)
class ScanSummary:
    files: int = 0
    lines: int = 0
    events: int = 0
    exec_requests: int = 0
    alerts: int = 0
    repeats: int = 0
    alerts_by_rule: Counter[str] = field(default_factory=Counter)
    malformed: list[MalformedLine] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    """Entries of cloud envelopes passed over on purpose, by reason."""

    def render(self) -> str:
        out = [
            f"scanned {self.files} input(s): {self.lines} lines, {self.events} events, "
            f"{self.exec_requests} exec requests, {self.alerts} alerts "
            f"({self.repeats} repeats of the same exec suppressed), {len(self.malformed)} malformed"
        ]
        for name, count in sorted(self.alerts_by_rule.items()):
            out.append(f"  {count:6d}  {name}")
        for reason, count in sorted(self.skipped.items()):
            out.append(f"  skipped {count} entries: {reason}")
        for bad in self.malformed[:MALFORMED_LISTED]:
            entry = "" if bad.entry is None else f" entry {bad.entry}"
            out.append(f"  malformed {bad.file}:{bad.line}{entry}: {bad.reason}: {bad.detail}")
        if len(self.malformed) > MALFORMED_LISTED:
            out.append(f"  ... and {len(self.malformed) - MALFORMED_LISTED} more malformed lines")
        return "\n".join(out)


def scan(
    inputs: list[str],
    pipeline: DetectionPipeline,
    alerts: AlertSink,
    *,
    dead_letter: IO[str] | None = None,
    progress: IO[str] | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> ScanSummary:
    """Scan every input ("-" is stdin) in order and send the alerts to ``alerts``."""
    scanner = _Scanner(pipeline, alerts, dead_letter, max_line_bytes)
    summary = scanner.summary
    for name in inputs:
        summary.files += 1
        meter = _Progress(progress, name) if progress is not None else None
        for number, line, size in _lines(name, max_line_bytes):
            summary.lines += 1
            if meter is not None:
                meter.tick(size)
            if size > max_line_bytes:
                detail = f"line of {size} bytes exceeds the line limit of {max_line_bytes}"
                scanner.malformed(
                    name, number, None, line, MalformedEvent("oversized", detail), size
                )
            elif line.strip():
                scanner.line(name, number, line)
        if meter is not None:
            meter.done()
    return summary


class _Scanner:
    """The scan's state across lines: where alerts and malformed lines go, and the summary."""

    def __init__(
        self,
        pipeline: DetectionPipeline,
        alerts: AlertSink,
        dead_letter: IO[str] | None,
        max_line_bytes: int,
    ) -> None:
        self._pipeline = pipeline
        self._alerts = alerts
        self._dead_letter = dead_letter
        self._max_line_bytes = max_line_bytes
        self.summary = ScanSummary()

    def line(self, name: str, number: int, line: bytes) -> None:
        """One line: one message, or a batch too big for one, event by event."""
        if len(line) > self._pipeline.max_message_bytes and not is_gzip(line):
            try:
                parts = split_batch(line, max_bytes=self._max_line_bytes)
            except MalformedEvent as err:
                self.malformed(name, number, None, line, err)
                return
            if parts is not None:
                for index, part in enumerate(parts):
                    self._message(name, number, index, part)
                return
        self._message(name, number, None, line)

    def _message(self, name: str, number: int, entry: int | None, data: bytes) -> None:
        """A line, or the event at ``entry`` of a line's batch."""
        summary = self.summary
        source = SourceRef(kind="file", file=name, line=number)
        try:
            found = self._pipeline.process_message(data, source)
        except MalformedEvent as err:
            self.malformed(name, number, entry, data, err)
            return
        for aside in found.set_aside:
            where = aside.index if entry is None else entry
            self.malformed(name, number, where, aside.raw, aside.error)
        summary.skipped.update(found.skipped)
        summary.events += found.events
        summary.exec_requests += found.exec_requests
        summary.repeats += found.repeats
        for alert in found.alerts:
            self._alerts.send(alert, self._alerts.encode(alert), written)
            summary.alerts += 1
            summary.alerts_by_rule[alert.rule.name] += 1

    def malformed(
        self,
        name: str,
        number: int,
        entry: int | None,
        value: bytes,
        err: MalformedEvent,
        original_bytes: int | None = None,
    ) -> None:
        """A malformed line, or one malformed entry of a line's batch (``entry``); a line too long
        to read comes as its first bytes and its size (``original_bytes``)."""
        self.summary.malformed.append(MalformedLine(name, number, err.reason, err.detail, entry))
        if self._dead_letter is None:
            return
        record: dict[str, object] = {"file": name, "line": number}
        if entry is not None:
            record["entry"] = entry
        record |= {"reason": err.reason, "detail": err.detail}
        record["value"] = value.decode("utf-8", errors="replace").rstrip("\r\n")
        if original_bytes is not None:
            record |= {"original_bytes": original_bytes, "truncated": True}
        self._dead_letter.write(json.dumps(record, ensure_ascii=False) + "\n")


def _lines(name: str, limit: int) -> Iterator[tuple[int, bytes, int]]:
    """Numbered raw lines of a file (gzip by magic number) or of stdin, and their sizes; the
    input's byte-order mark, if any, is dropped. A line longer than ``limit`` comes as its first
    :data:`DEAD_LETTER_HEAD_BYTES` bytes and its size: the rest is read in chunks and dropped,
    so that a file without newlines cannot fill the memory."""
    with _open(name) as handle:
        number = 0
        while line := handle.readline(limit + 1):
            if number == 0:
                line = line.removeprefix(BOM)
            number += 1
            size = len(line)
            if size > limit and line[limit:] != b"\n":  # limit bytes and the newline: in
                size += _skip_rest_of_line(handle)
                line = line[:DEAD_LETTER_HEAD_BYTES]
            yield number, line, size


class _LineSource(Protocol):
    """A binary input read line by line: a file, a gzip stream, stdin."""

    def readline(self, size: int = -1, /) -> bytes: ...


def _open(name: str) -> contextlib.AbstractContextManager[_LineSource]:
    if name == "-":
        return contextlib.nullcontext(sys.stdin.buffer)
    path = Path(name)
    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else path.open("rb")


def _skip_rest_of_line(handle: _LineSource) -> int:
    skipped = 0
    while chunk := handle.readline(_SKIP_CHUNK):
        skipped += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return skipped


class _Progress:
    """A one-line progress meter on a terminal, for inputs big enough to wait for."""

    def __init__(self, stream: IO[str], name: str) -> None:
        self._stream = stream
        self._name = name
        streamed = name == "-" or name.endswith(".gz")  # no meaningful byte total to show
        self._total = 0 if streamed else Path(name).stat().st_size
        self._enabled = streamed or self._total >= PROGRESS_MIN_BYTES
        self._seen = 0
        self._lines = 0
        self._next = time.monotonic() + 0.5

    def tick(self, size: int) -> None:
        self._seen += size
        self._lines += 1
        if self._enabled and time.monotonic() >= self._next:
            self._next = time.monotonic() + 0.5
            share = f" {100 * self._seen / self._total:5.1f}%" if self._total else ""
            self._stream.write(f"\r{self._name}: {self._lines} lines{share}")
            self._stream.flush()

    def done(self) -> None:
        if self._enabled and self._lines:
            self._stream.write("\r" + " " * 60 + "\r")
            self._stream.flush()
