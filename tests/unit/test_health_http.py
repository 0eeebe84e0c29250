"""/metrics, /healthz and /readyz over real HTTP on loopback."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from auditstream.stream.health import Health, HttpEndpoint
from auditstream.stream.metrics import Metrics, parse_statistics


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def served() -> Iterator[tuple[Health, Metrics, Clock, str]]:
    clock = Clock()
    health = Health(stale_after=10.0, clock=clock)
    metrics = Metrics()
    endpoint = HttpEndpoint("127.0.0.1", 0, health, metrics.registry).start()
    try:
        yield health, metrics, clock, f"http://127.0.0.1:{endpoint.port}"
    finally:
        endpoint.stop()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_healthz_follows_the_loop_heartbeat(served: tuple[Health, Metrics, Clock, str]) -> None:
    health, _, clock, base = served
    assert get(f"{base}/healthz")[0] == 503  # not started
    health.beat()
    assert get(f"{base}/healthz") == (200, "ok: loop turned 0.0s ago\n")
    clock.now += 11
    status, body = get(f"{base}/healthz")
    assert status == 503
    assert "stuck" in body


def test_readyz_needs_partitions_and_a_broker(served: tuple[Health, Metrics, Clock, str]) -> None:
    health, _, _, base = served
    assert get(f"{base}/readyz") == (503, "fail: no partitions assigned\n")
    health.assigned = 2
    assert get(f"{base}/readyz") == (503, "fail: no broker reachable\n")
    health.broker_reachable = True
    assert get(f"{base}/readyz") == (200, "ok: 2 partitions assigned\n")
    assert get(f"{base}/nope")[0] == 404


def test_metrics_are_served_from_the_service_registry(
    served: tuple[Health, Metrics, Clock, str],
) -> None:
    _, metrics, _, base = served
    metrics.alerts.labels("rule-1", "Reverse shell").inc()
    metrics.dead_letters.labels("not_json").inc(2)
    metrics.latency.labels("kafka").observe(0.02)
    metrics.lag.update({("audit", 0): 42})
    status, body = get(f"{base}/metrics")
    assert status == 200
    assert 'auditstream_alerts_total{rule_id="rule-1",rule_name="Reverse shell"} 1.0' in body
    assert 'auditstream_dead_letters_total{reason="not_json"} 2.0' in body
    assert 'auditstream_alert_latency_seconds_count{since="kafka"} 1.0' in body
    assert 'auditstream_consumer_lag{partition="0",topic="audit"} 42.0' in body


def test_two_services_have_separate_registries() -> None:
    first, second = Metrics(), Metrics()
    first.messages.inc()
    assert second.registry.get_sample_value("auditstream_messages_consumed_total") == 0.0


def test_statistics_give_lag_and_broker_state() -> None:
    stats = {
        "brokers": {
            "127.0.0.1:9092/bootstrap": {"nodeid": -1, "state": "UP"},
            "127.0.0.1:9092/1": {"nodeid": 1, "state": "UP"},
        },
        "topics": {
            "audit": {
                "partitions": {
                    "0": {"consumer_lag": 7},
                    "1": {"consumer_lag": -1},
                    "-1": {"consumer_lag": 0},
                }
            }
        },
    }
    assert parse_statistics(json.dumps(stats)) == ({("audit", 0): 7}, True)
    stats["brokers"]["127.0.0.1:9092/1"]["state"] = "DOWN"  # type: ignore[index]
    assert parse_statistics(json.dumps(stats))[1] is False
