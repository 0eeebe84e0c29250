"""Bounded retries for infrastructure operations (broker metadata, commits, the registry).

Every retry has a deadline and a predicate that accepts only errors worth retrying; each wait is
logged (``retrying`` with what, attempt and error), so an outage is visible while it lasts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    stop_when_event_set,
    wait_exponential,
    wait_random,
)

_log = structlog.get_logger("auditstream.retry")


def bounded(
    what: str,
    *,
    deadline: float,
    retriable: Callable[[BaseException], bool],
    initial: float = 0.2,
    longest: float = 5.0,
    abort: threading.Event | None = None,
) -> Retrying:
    """A ``Retrying`` that gives up after ``deadline`` s (or once ``abort`` is set, e.g. by a
    stop request) and re-raises the last error."""

    def log_wait(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        _log.warning(
            "retrying", what=what, attempt=state.attempt_number, wait_s=round(wait, 2),
            error=f"{type(error).__name__}: {error}" if error else None,
        )  # fmt: skip

    return Retrying(
        retry=retry_if_exception(retriable),
        stop=stop_after_delay(deadline) | stop_when_event_set(abort or threading.Event()),
        wait=wait_exponential(multiplier=initial, max=longest) + wait_random(0, initial),
        before_sleep=log_wait,
        reraise=True,
    )
