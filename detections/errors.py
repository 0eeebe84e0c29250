"""The one exception root of the detection package.

Errors carry their context (file, line, column, reason code) as attributes so that callers can
report them without parsing messages.
"""

from __future__ import annotations


class DetectionError(Exception):
    """Root of every error raised by :mod:`detections`."""


class QuerySyntaxError(DetectionError):
    """A rule's query (or a pattern inside it) cannot be compiled.

    ``line`` and ``column`` are 1-based positions in the query text when known.
    """

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        self.reason = message
        self.line = line
        self.column = column
        where = (
            f" at line {line}, column {column}" if line is not None and column is not None else ""
        )
        super().__init__(f"{message}{where}")


class RuleLoadError(DetectionError):
    """A rule file, or one rule inside it, cannot be loaded; the other rules still run."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class MalformedEvent(DetectionError):
    """Input that is not an audit event we can read; it becomes a dead letter.

    ``reason`` is a short stable code (``not_utf8``, ``not_json``, ``unknown_shape``,
    ``oversized``, ``evaluation_error``) used in dead-letter headers and metrics.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")
