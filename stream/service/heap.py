"""The interpreter's garbage collector, set up for a long-running stream loop.

CPython's full (generation 2) collection walks every tracked object, and after start-up most of
them are the compiled rules, the modules and the clients: tens of thousands of objects that live
as long as the process and never become garbage. Walking them is a pause in the consumer loop
(measured 13 to 63 ms in ``auditstream run`` at 5,000 events/s), and every alert queued behind
it waits that long. :func:`settle_heap` moves them out of the collector's sight once they are
built (``gc.freeze``); what the loop allocates from then on is collected as before.

:func:`pauses_observed` reports every collection's duration per generation as a histogram, so a
latency spike can be matched to (or ruled out as) a collector pause in production, not only
in a benchmark.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import Histogram


def settle_heap() -> int:
    """Collect what start-up left behind, then freeze the survivors; returns how many objects
    are now frozen. Call once, after everything long-lived is built, before the loop starts."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


@contextmanager
def pauses_observed(histogram: Histogram) -> Iterator[None]:
    """While inside, record each collection's duration in ``histogram`` (label ``generation``).
    The hook is process-wide, so it is removed on the way out (tests run many services)."""
    started = [0.0]
    children = [histogram.labels(generation=str(g)) for g in range(3)]

    def on_collection(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            children[info["generation"]].observe(time.perf_counter() - started[0])

    gc.callbacks.append(on_collection)
    try:
        yield
    finally:
        gc.callbacks.remove(on_collection)
