"""structlog, configured once at the entry point: JSON lines in production, console on a TTY.

Event names are short and stable (``alert_emitted``, ``dead_lettered``,
``checkpoint_committed``, ``partitions_assigned``...) with the details as fields; a line about
one message (``alert_emitted``, ``dead_lettered``, ``processing_failed``) names its topic,
partition and offset as fields (binding them per message would cost more than the rest of the
loop). librdkafka's own log lines are forwarded into the same stream through
:func:`librdkafka_logger`, so a broker outage shows up as structured lines too.

Secrets never reach a line: tracebacks are rendered without local variables (a client's
constructor holds the credentials it was given in its locals), and the rendered line goes through
:class:`_MaskSecrets` last, which masks the credentials of any URL and every secret value the
settings hold (:meth:`Settings.secret_values`), in case a library quotes one in an error message.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

import structlog
from structlog.tracebacks import ExceptionDictTransformer

from auditstream.stream.settings_types import (
    MIN_SECRET_LENGTH,
    REDACTED,
    LogFormat,
    redact_text,
)

REPEAT_EVERY = 10.0
_TIMINGS = re.compile(r"\(after \d+ms[^)]*\)|\d+ms")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def configure_logging(
    fmt: LogFormat = "auto",
    level: str = "info",
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
) -> None:
    """Configure structlog for the whole process (call once, before the service starts);
    ``secrets`` are masked wherever they would appear in a rendered line."""
    out = stream or sys.stderr
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    # Frames, file names and lines, but never the values of local variables (structlog's
    # dict_tracebacks and rich both show them by default).
    renderer: list[Any] = (
        [
            structlog.dev.ConsoleRenderer(
                colors=out.isatty(), exception_formatter=structlog.dev.plain_traceback
            )
        ]
        if console
        else [
            structlog.processors.ExceptionRenderer(
                ExceptionDictTransformer(show_locals=False, use_rich=False)
            ),
            structlog.processors.JSONRenderer(),
        ]
    )
    last: list[Any] = [_MaskSecrets(secrets)]  # it takes the rendered line, not an event dict
    structlog.configure(
        processors=shared + renderer + last,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.ERROR)),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )


class _MaskSecrets:
    """The last processor: masks URL credentials and known secret values in the rendered line.

    A value is searched as given and as the JSON and console renderers escape it (inside a
    string, a quote or backslash in it is escaped); longer values first, so that a secret that
    holds another is masked whole.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        forms = {
            form
            for secret in secrets
            if len(secret) >= MIN_SECRET_LENGTH
            for form in (secret, json.dumps(secret)[1:-1], repr(secret)[1:-1])
        }
        self._forms = sorted(forms, key=len, reverse=True)

    def __call__(self, _logger: object, _method: str, line: str) -> str:
        for form in self._forms:
            if form in line:
                line = line.replace(form, REDACTED)
        return redact_text(line)


class _ToStructlog(logging.Handler):
    """Forward librdkafka's log records (given to the client as ``logger``) to structlog.

    While a broker is away librdkafka logs every reconnection attempt; the same line (timings
    aside) is forwarded at most once per :data:`REPEAT_EVERY` seconds, with how many were held.
    """

    def __init__(self) -> None:
        super().__init__()
        self._log = structlog.get_logger("auditstream.librdkafka")
        self._last: dict[str, tuple[float, int]] = {}  # line -> (last forwarded, held since)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        key = _TIMINGS.sub("", message)
        now = time.monotonic()
        last, held = self._last.get(key, (-REPEAT_EVERY, 0))
        if now - last < REPEAT_EVERY:
            self._last[key] = (last, held + 1)
            return
        if len(self._last) > 512:
            self._last.clear()
        self._last[key] = (now, 0)
        level = "info" if record.levelno < logging.WARNING else "warning"
        if record.levelno >= logging.ERROR:
            level = "error"
        getattr(self._log, level)("librdkafka", client=record.name, message=message, repeats=held)


def librdkafka_logger(name: str) -> logging.Logger:
    """A stdlib logger for one client's ``logger`` setting, forwarding to structlog."""
    logger = logging.getLogger(f"auditstream.librdkafka.{name}")
    if not logger.handlers:
        logger.addHandler(_ToStructlog())
        logger.propagate = False
        logger.setLevel(logging.INFO)
    return logger
