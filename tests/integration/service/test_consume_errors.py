"""Errors among the consumed records (``msg.error()``) are not fatal unless librdkafka says so,
but each is counted by its code: a subscription to a topic that does not exist is one the
broker gives on demand."""

from __future__ import annotations

import pytest

from devtools.jvm.process import wait_until
from tests.integration.service.conftest import Deployment, StartInProcess

pytestmark = pytest.mark.integration


def test_a_missing_input_topic_is_counted_by_code(
    deployment: Deployment, in_process: StartInProcess
) -> None:
    missing = f"{deployment.topics.inputs}-missing"
    env = deployment.env(input_topics=f"{deployment.topics.inputs},{missing}")
    running = in_process(env)
    metrics = running.service.metrics.registry

    def counted() -> float:
        value = metrics.get_sample_value(
            "auditstream_consume_errors_total", {"code": "UNKNOWN_TOPIC_OR_PART"}
        )
        return value or 0.0

    wait_until(lambda: counted() >= 1, timeout=30, what="the consume error counted",
               alive=running.check_alive)  # fmt: skip
    assert running.stop() == 0
