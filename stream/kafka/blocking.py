"""Blocking librdkafka calls that have no timeout of their own, run on a helper thread.

A synchronous commit waits for the group coordinator and ``Consumer.close()`` for the group
leave, both forever while no broker answers. A stop must stay bounded, so such calls run in a
:class:`HelperCall`: the caller waits for it at most a budget, and one that overruns is
abandoned (logged), not cancelled, and may complete later. This is the one helper-thread
mechanism of the runtime (the shutdown commit and ``close`` use it).

Only where the loop thread polls no more: the client serialises the calls on one consumer, so a
helper thread's call waits for the loop's ``consume`` to return, and the loop's next ``consume``
waits for a helper thread's commit that a frozen coordinator never answers (see
:mod:`auditstream.stream.kafka.checkpoint`, which commits asynchronously while the loop runs).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

import structlog

from auditstream.stream.errors import TimedOut

_log = structlog.get_logger("auditstream.retry")
T = TypeVar("T")


class HelperCall(Generic[T]):
    """One call running on a daemon thread from construction on; ``returned`` is set when it
    has returned or raised."""

    def __init__(self, what: str, fn: Callable[[], T]) -> None:
        self.what = what
        self.returned = threading.Event()
        self._box: list[T] = []
        self._failure: BaseException | None = None

        def run() -> None:
            try:
                self._box.append(fn())
            except BaseException as err:  # handed to the waiting thread by result()
                self._failure = err
            finally:
                self.returned.set()

        threading.Thread(target=run, name=f"auditstream-{what}", daemon=True).start()

    def result(self, timeout: float) -> T:
        """Wait at most ``timeout`` s; the call's value, or its error re-raised here.

        Raises :class:`auditstream.stream.errors.TimedOut` when it has not returned by then.
        """
        if not self.returned.wait(max(timeout, 0.0)):
            _log.warning("call_timed_out", what=self.what, timeout_s=round(timeout, 2))
            raise TimedOut(f"{self.what}: no answer within {timeout:.1f}s")
        if self._failure is not None:
            raise self._failure
        return self._box[0]


def call_with_timeout(what: str, fn: Callable[[], T], timeout: float) -> T:
    """Run ``fn`` on a helper thread and wait at most ``timeout`` s for its value."""
    return HelperCall(what, fn).result(timeout)
