"""The service's collector set-up: start-up objects frozen, every collection's pause measured."""

from __future__ import annotations

import gc

from prometheus_client import CollectorRegistry

from auditstream.stream.metrics import Metrics
from auditstream.stream.service.heap import pauses_observed, settle_heap


def _count(metrics: Metrics, generation: str) -> float:
    for metric in metrics.gc_pauses.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count") and sample.labels["generation"] == generation:
                return sample.value
    raise AssertionError(f"no samples for generation {generation}")


def test_settle_heap_freezes_what_start_up_built() -> None:
    survivors = [{"rule": i} for i in range(1_000)]  # long-lived, like compiled rules
    try:
        frozen = settle_heap()
        assert frozen == gc.get_freeze_count() >= len(survivors)
        collected = {id(o) for o in gc.get_objects(2)}  # what a full collection walks
        assert not any(id(o) in collected for o in survivors)
    finally:
        gc.unfreeze()


def test_every_collection_is_observed_per_generation_and_the_hook_leaves() -> None:
    metrics = Metrics(CollectorRegistry())
    hooks = len(gc.callbacks)
    with pauses_observed(metrics.gc_pauses):
        assert len(gc.callbacks) == hooks + 1
        gc.collect(0)
        gc.collect(2)
        gc.collect(2)
    assert _count(metrics, "0") >= 1
    assert _count(metrics, "2") >= 2
    assert len(gc.callbacks) == hooks
    gc.collect(2)  # outside: no longer counted
    assert _count(metrics, "2") == 2
