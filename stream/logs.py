"""structlog, configured once at the entry point: JSON lines in production, console on a TTY.

Event names are short and stable (``alert_emitted``, ``dead_lettered``,
``checkpoint_committed``, ``partitions_assigned``...) with the details as fields; a line about
one message (``alert_emitted``, ``dead_lettered``, ``processing_failed``) names its topic,
partition and offset as fields (binding them per message would cost more than the rest of the
loop). librdkafka's own log lines are forwarded into the same stream through
:func:`librdkafka_logger`, so a broker outage shows up as structured lines too.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any, TextIO

import structlog

from auditstream.stream.settings_types import LogFormat

REPEAT_EVERY = 10.0
_TIMINGS = re.compile(r"\(after \d+ms[^)]*\)|\d+ms")
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def configure_logging(
    fmt: LogFormat = "auto", level: str = "info", stream: TextIO | None = None
) -> None:
    """Configure structlog for the whole process (call once, before the service starts)."""
    out = stream or sys.stderr
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: list[Any] = (
        [structlog.dev.ConsoleRenderer(colors=out.isatty())]
        if console
        else [structlog.processors.dict_tracebacks, structlog.processors.JSONRenderer()]
    )
    structlog.configure(
        processors=shared + renderer,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.ERROR)),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=True,
    )


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
