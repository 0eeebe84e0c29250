"""Prometheus metrics of one service, in its own registry (several services may share a process).

Names (counters get ``_total`` on the wire):

``auditstream_messages_consumed``, ``auditstream_events_consumed``, ``auditstream_exec_requests``,
``auditstream_alerts{rule_id,rule_name}``, ``auditstream_alert_repeats_suppressed``,
``auditstream_dead_letters{reason}``, ``auditstream_alert_latency_seconds{since}`` (from the audit
event's timestamp, ``since="audit"``, or the Kafka record's, ``since="kafka"``, to the alert's
acknowledgement by the broker), ``auditstream_consumer_lag{topic,partition}`` (librdkafka
statistics), ``auditstream_commits{trigger}``, ``auditstream_commit_failures{trigger}``,
``auditstream_rebalances{kind}``, ``auditstream_assigned_partitions``,
``auditstream_delivery_errors`` (every output the broker did not acknowledge),
``auditstream_commit_errors{code}`` (errors in the coordinator's answers to commits, by Kafka
error code), ``auditstream_commit_blocked`` (1 while commits are refused with errors no retry
cures, see :mod:`auditstream.stream.kafka.checkpoint`), ``auditstream_consume_errors{code}``
(errors among the consumed records, by code).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class LagCollector(Collector):
    """Consumer lag per partition, as the last librdkafka statistics reported it."""

    def __init__(self) -> None:
        self._lag: dict[tuple[str, int], int] = {}

    def update(self, lag: dict[tuple[str, int], int]) -> None:
        self._lag = lag  # replaced whole: a scrape sees one consistent snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "auditstream_consumer_lag",
            "Messages between the consumer position and the partition's end (librdkafka)",
            labels=["topic", "partition"],
        )
        for (topic, partition), lag in sorted(self._lag.items()):
            family.add_metric([topic, str(partition)], lag)
        yield family


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter("auditstream_messages_consumed", "Kafka records read", registry=r)
        self.events = Counter("auditstream_events_consumed", "Audit events decoded", registry=r)
        self.exec_requests = Counter("auditstream_exec_requests", "Exec requests seen", registry=r)
        self.alerts = Counter(
            "auditstream_alerts", "Alerts produced", ["rule_id", "rule_name"], registry=r
        )
        self.repeats = Counter(
            "auditstream_alert_repeats_suppressed", "Repeats of a recent alert id", registry=r
        )
        self.dead_letters = Counter(
            "auditstream_dead_letters",
            "Input sent to the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.skipped_entries = Counter(
            "auditstream_entries_skipped",
            "Entries of cloud envelopes passed over on purpose (another diagnostic category, "
            "another EKS log stream, a CloudWatch control message, another GCP service)",
            ["reason"],
            registry=r,
        )
        self.latency = Histogram(
            "auditstream_alert_latency_seconds", "Audit or Kafka timestamp to alert acknowledged",
            ["since"], buckets=LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.gc_pauses = Histogram(
            "auditstream_gc_pause_seconds",
            "Garbage-collector pauses of the consumer loop's interpreter, per generation",
            ["generation"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
            registry=r,
        )
        self.commits = Counter("auditstream_commits", "Offset commits", ["trigger"], registry=r)
        self.commit_failures = Counter(
            "auditstream_commit_failures", "Failed offset commits", ["trigger"], registry=r
        )
        self.rebalances = Counter(
            "auditstream_rebalances", "Rebalance callbacks", ["kind"], registry=r
        )
        self.assigned = Gauge("auditstream_assigned_partitions", "Partitions owned", registry=r)
        self.state_partitions = Gauge(
            "auditstream_state_partitions", "Stateful-rule stores open (repartition partitions)",
            registry=r,
        )  # fmt: skip
        self.state_keys = Gauge(
            "auditstream_state_keys", "Keys a stateful rule holds in a store (at the last sweep)",
            ["rule_id", "partition"], registry=r,
        )  # fmt: skip
        self.state_bytes = Gauge(
            "auditstream_state_bytes", "A store's size as RocksDB estimates it (at the last sweep)",
            ["partition"], registry=r,
        )  # fmt: skip
        self.state_restore_seconds = Histogram(
            "auditstream_state_restore_seconds", "Restoring a store from its changelog",
            buckets=(0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300), registry=r,
        )  # fmt: skip
        self.state_late = Counter(
            "auditstream_state_late_candidates",
            "Candidates older than the watermark (event time less allowed lateness): not applied",
            ["rule_id"], registry=r,
        )  # fmt: skip
        self.state_oversized = Counter(
            "auditstream_state_oversized_candidates",
            "Candidates not applied: their group's state would outgrow a changelog record",
            ["rule_id"], registry=r,
        )  # fmt: skip
        self.candidates = Counter(
            "auditstream_stateful_candidates", "Events sent to a stateful rule's state",
            registry=r,
        )  # fmt: skip
        self.outputs_pending = Gauge(
            "auditstream_outputs_pending",
            "Records handed to the producer and not yet acknowledged (after the last batch)",
            registry=r,
        )
        self.delivery_errors = Counter(
            "auditstream_delivery_errors", "Output records the broker refused", registry=r
        )
        self.commit_errors = Counter(
            "auditstream_commit_errors", "Errors in commit answers, by Kafka error code",
            ["code"], registry=r,
        )  # fmt: skip
        self.commit_blocked = Gauge(
            "auditstream_commit_blocked",
            "1 while commits are refused with errors that no retry cures",
            registry=r,
        )
        self.consume_errors = Counter(
            "auditstream_consume_errors", "Errors among the consumed records, by Kafka error code",
            ["code"], registry=r,
        )  # fmt: skip
        self.lag = LagCollector()
        r.register(self.lag)


def parse_statistics(text: str) -> tuple[dict[tuple[str, int], int], bool]:
    """(lag per partition, whether any real broker connection is up) from librdkafka stats."""
    stats: dict[str, Any] = json.loads(text)
    lag: dict[tuple[str, int], int] = {}
    for topic, data in stats.get("topics", {}).items():
        for key, part in data.get("partitions", {}).items():
            partition = int(key)
            value = part.get("consumer_lag", -1)
            if partition >= 0 and isinstance(value, int) and value >= 0:
                lag[(topic, partition)] = value
    brokers = stats.get("brokers", {}).values()
    up = any(b.get("nodeid", -1) >= 0 and b.get("state") == "UP" for b in brokers)
    return lag, up
