"""Bounded retries for infrastructure operations (broker metadata, commits, the registry).

Every retry has a deadline and a predicate that accepts only errors worth retrying; each wait is
logged (``retrying`` with what, attempt and error), so an outage is visible while it lasts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

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
T = TypeVar("T")


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


class TimedOut(Exception):
    """A blocking client call did not return within its budget (it may still complete later)."""


def call_with_timeout(what: str, fn: Callable[[], T], timeout: float) -> T:
    """Run a blocking client call on a daemon thread and wait at most ``timeout`` s for it.

    Some librdkafka calls have no timeout of their own: a synchronous commit waits for the group
    coordinator and ``Consumer.close()`` for the group leave, both forever while no broker
    answers. The loop must keep turning (and a stop must stay bounded), so such calls run here;
    one that overruns is abandoned (logged), not cancelled, and may complete later.
    """
    box: list[T] = []
    failure: list[BaseException] = []
    done = threading.Event()

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as err:  # handed to the caller's thread
            failure.append(err)
        finally:
            done.set()

    threading.Thread(target=run, name=f"auditstream-{what}", daemon=True).start()
    if not done.wait(max(timeout, 0.0)):
        _log.warning("call_timed_out", what=what, timeout_s=round(timeout, 2))
        raise TimedOut(f"{what}: no answer within {timeout:.1f}s")
    if failure:
        raise failure[0]
    return box[0]
