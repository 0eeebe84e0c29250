"""``auditstream scan``: the detection pipeline over JSON-lines files, no Kafka needed.

Alerts go to an :class:`auditstream.stream.sinks.AlertSink` (stdout as JSON lines from the command
line), one per (rule, auditID); the summary goes to stderr. A line that
is not audit data is counted, reported with its number and, with ``--dead-letter``, written out
with its reason; the scan never stops on one.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from auditstream.detections.alert import SourceRef
from auditstream.detections.errors import MalformedEvent
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.stream.sinks.alert_sink import AlertSink, written

MALFORMED_LISTED = 20
PROGRESS_MIN_BYTES = 8 * 1024 * 1024


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
) -> ScanSummary:
    """Scan every input ("-" is stdin) in order and send the alerts to ``alerts``."""
    summary = ScanSummary()
    for name in inputs:
        summary.files += 1
        meter = _Progress(progress, name) if progress is not None else None
        for number, line in _lines(name):
            summary.lines += 1
            if meter is not None:
                meter.tick(len(line))
            if not line.strip():
                continue
            _scan_line(name, number, line, pipeline, alerts, summary, dead_letter)
        if meter is not None:
            meter.done()
    return summary


def _scan_line(
    name: str,
    number: int,
    line: bytes,
    pipeline: DetectionPipeline,
    alerts: AlertSink,
    summary: ScanSummary,
    dead_letter: IO[str] | None,
) -> None:
    source = SourceRef(kind="file", file=name, line=number)
    try:
        found = pipeline.process_message(line, source)
    except MalformedEvent as err:
        _malformed(name, number, None, line, err, summary, dead_letter)
        return
    for entry in found.set_aside:
        _malformed(name, number, entry.index, entry.raw, entry.error, summary, dead_letter)
    summary.skipped.update(found.skipped)
    summary.events += found.events
    summary.exec_requests += found.exec_requests
    summary.repeats += found.repeats
    for alert in found.alerts:
        alerts.send(alert, alerts.encode(alert), written)
        summary.alerts += 1
        summary.alerts_by_rule[alert.rule.name] += 1


def _malformed(
    name: str,
    number: int,
    entry: int | None,
    value: bytes,
    err: MalformedEvent,
    summary: ScanSummary,
    dead_letter: IO[str] | None,
) -> None:
    """A malformed line, or one malformed entry of a line's cloud batch (``entry``)."""
    summary.malformed.append(MalformedLine(name, number, err.reason, err.detail, entry))
    if dead_letter is not None:
        record: dict[str, object] = {"file": name, "line": number}
        if entry is not None:
            record["entry"] = entry
        record |= {"reason": err.reason, "detail": err.detail}
        record["value"] = value.decode("utf-8", errors="replace").rstrip("\r\n")
        dead_letter.write(json.dumps(record, ensure_ascii=False) + "\n")


def _lines(name: str) -> Iterator[tuple[int, bytes]]:
    """Numbered raw lines of a file (gzip by magic number) or of stdin."""
    if name == "-":
        yield from enumerate(sys.stdin.buffer, start=1)
        return
    path = Path(name)
    with path.open("rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    with opener(path, "rb") as handle:
        yield from enumerate(handle, start=1)


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
