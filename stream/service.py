"""``auditstream run``: the long-lived consumer service, one replica of a consumer group.

The data path, top to bottom: ``consume`` a batch (what has arrived, without waiting for it to
fill: see :func:`_next_batch`) → :class:`MessageProcessor` (pipeline, alerts and dead letters
produced, offsets tracked) → ``poll`` the producer → :class:`Checkpoint` on its interval.
Rebalance callbacks flush and commit what is revoked within a bounded budget. A stop request
(SIGTERM/SIGINT, or :meth:`Service.stop`) ends the loop between batches; then the producer is
flushed, the acknowledged work committed and the clients closed.

Exit codes: 0 stopped cleanly; 2 invalid configuration; 4 a fatal failure (an output the broker
did not acknowledge, e.g. a producer message timeout; a fatal client error; topics or registry
unusable at start-up). After a failure nothing more is committed: the orchestrator restarts the
replica, which resumes from the last offsets whose outputs were all acknowledged.

Broker outages are not failures: the consumer and producer reconnect by themselves, commits
that fail are logged and held (retried at the next checkpoint), and produced records wait in the
producer until ``message.timeout.ms``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Final

import structlog
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from auditstream.detections.alert_window import RecentAlerts
from auditstream.detections.engine import Detector
from auditstream.detections.pipeline import DetectionPipeline
from auditstream.detections.ruleset.loader import LoadedRule
from auditstream.stream.alert_sink import AlertSink, Encoder, avro_encoder, json_encoder
from auditstream.stream.checkpoint import Checkpoint
from auditstream.stream.dead_letters import DeadLetterSink
from auditstream.stream.delivery import Delivery
from auditstream.stream.errors import FatalClientError, SettingsError, StartupError, StreamError
from auditstream.stream.health import Health, HttpEndpoint
from auditstream.stream.kafka_config import consumer_config, producer_config
from auditstream.stream.logs import librdkafka_logger
from auditstream.stream.metrics import Metrics, parse_statistics
from auditstream.stream.offset_tracker import OffsetTracker, Partition
from auditstream.stream.processor import MessageProcessor
from auditstream.stream.retrying import TimedOut, bounded, call_with_timeout
from auditstream.stream.settings_types import Settings

EXIT_OK: Final = 0
EXIT_CONFIG: Final = 2
EXIT_FATAL: Final = 4
_log = structlog.get_logger("auditstream.service")
_REBALANCE_EVENTS: Final = {
    "assign": "partitions_assigned",
    "revoke": "partitions_revoked",
    "lost": "partitions_lost",
}


class Service:
    """One replica. Build it, then :meth:`run` (blocking) in any thread; :meth:`stop` ends it."""

    def __init__(
        self, settings: Settings, rules: Sequence[LoadedRule], *, metrics: Metrics | None = None
    ) -> None:
        self.settings = settings
        self._rules = rules
        self.metrics = metrics or Metrics()
        self.health = Health(settings.http.stale_after)
        self.http_port: int | None = None
        self.started = threading.Event()  # the HTTP endpoint is up and clients are created
        self._stop = threading.Event()
        self._stop_reason = ""
        self._failure: BaseException | None = None  # latched in callbacks, raised by the loop
        self._failed = False  # after a failure nothing is committed any more
        self._tracker = OffsetTracker()
        self._delivery: Delivery | None = None
        self._checkpoint: Checkpoint | None = None
        self._processor: MessageProcessor | None = None

    def stop(self, reason: str = "requested") -> None:
        """Ask the loop to stop after the current batch (safe from signal handlers, threads)."""
        self._stop_reason = reason
        self._stop.set()

    @property
    def assigned(self) -> tuple[Partition, ...]:
        """The partitions this replica owns now."""
        return self._tracker.partitions

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def run(self) -> int:
        """Run until stopped or failed; returns the exit code."""
        http = self.settings.http
        endpoint = HttpEndpoint(http.host, http.port, self.health, self.metrics.registry).start()
        self.http_port = endpoint.port
        _log.info("service_starting", settings=self.settings.describe(), http_port=endpoint.port)
        try:
            return self._run()
        except SettingsError as err:
            _log.error("invalid_settings", error=str(err))
            return EXIT_CONFIG
        except (StreamError, KafkaException) as err:
            if isinstance(err, StartupError) and self._stop.is_set():
                _log.info("service_stopped", during="startup", reason=self._stop_reason)
                return EXIT_OK  # stopped while still waiting for the broker or registry
            _log.error("service_failed", error=str(err), error_class=type(err).__name__)
            return EXIT_FATAL
        except Exception:  # a defect: still exit non-zero, with the traceback in the log
            _log.exception("service_crashed")
            return EXIT_FATAL
        finally:
            self.health.stop_beating()
            endpoint.stop()
            # Let the clients go now (a finished Service object may outlive them in tests).
            self._delivery = self._checkpoint = self._processor = None

    # -- lifecycle ------------------------------------------------------------------------------

    def _run(self) -> int:
        consumer, producer = self._clients()
        delivery = Delivery(producer)
        self._delivery = delivery
        try:
            self._await_topics(consumer)
            encoder = self._encoder()
            self._processor = self._build_processor(delivery, encoder)
            self._checkpoint = Checkpoint(
                consumer, delivery, self._tracker, self.metrics,
                interval=self.settings.runtime.commit_interval,
            )  # fmt: skip
            self._subscribe(consumer)
            self.started.set()
            self._loop(consumer, self._processor, delivery, self._checkpoint)
            self._shutdown(consumer, delivery, self._checkpoint)
        except BaseException:
            self._failed = True
            self._close_after_failure(consumer, delivery)
            raise
        return EXIT_OK

    def _clients(self) -> tuple[Consumer, Producer]:
        kafka = self.settings.kafka
        consumer_conf = {
            **consumer_config(kafka),
            "error_cb": self._on_error,
            "logger": librdkafka_logger("consumer"),
        }
        if kafka.stats_interval > 0:
            consumer_conf["stats_cb"] = self._on_stats
        producer_conf = {
            **producer_config(kafka),
            "error_cb": self._on_error,
            "logger": librdkafka_logger("producer"),
        }
        try:
            return Consumer(consumer_conf), Producer(producer_conf)
        except KafkaException as err:
            raise SettingsError(f"librdkafka refused the configuration: {err}") from err

    def _encoder(self) -> Encoder:
        alerts = self.settings.alerts
        if alerts.format == "json":
            return json_encoder()
        return avro_encoder(
            alerts,
            self.settings.topics.alerts,
            startup_timeout=self.settings.runtime.startup_timeout,
            abort=self._stop,
        )

    def _build_processor(self, delivery: Delivery, encoder: Encoder) -> MessageProcessor:
        pipeline = DetectionPipeline(
            Detector(self._rules),
            RecentAlerts(self.settings.alerts.window),
            max_message_bytes=self.settings.runtime.max_message_bytes,
        )
        topics = self.settings.topics
        return MessageProcessor(
            pipeline,
            self._tracker,
            AlertSink(delivery, topics.alerts, encoder),
            DeadLetterSink(delivery, topics.dead_letters),
            self.metrics,
        )

    def _await_topics(self, consumer: Consumer) -> None:
        """Wait (bounded, logged) until the broker answers and both output topics exist."""
        outputs = (self.settings.topics.alerts, self.settings.topics.dead_letters)
        startup = max(self.settings.runtime.startup_timeout, 0.5)

        def check() -> None:
            topics = consumer.list_topics(timeout=min(5.0, startup)).topics
            missing = [t for t in outputs if t not in topics or topics[t].error is not None]
            if missing:
                raise StartupError(f"output topic(s) missing: {', '.join(missing)}")

        retrying = bounded(
            "await_topics",
            deadline=self.settings.runtime.startup_timeout,
            retriable=lambda err: isinstance(err, KafkaException | StartupError),
            abort=self._stop,
        )
        try:
            retrying(check)
        except KafkaException as err:
            raise StartupError(
                f"no broker answered at {self.settings.kafka.bootstrap_servers}: {err}"
            ) from err
        self.health.broker_reachable = True

    def _subscribe(self, consumer: Consumer) -> None:
        topics = self.settings.topics
        subscription = [topics.pattern] if topics.pattern else list(topics.inputs)
        consumer.subscribe(
            subscription,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        _log.info("subscribed", topics=subscription, group_id=self.settings.kafka.group_id)

    def _loop(
        self,
        consumer: Consumer,
        processor: MessageProcessor,
        delivery: Delivery,
        checkpoint: Checkpoint,
    ) -> None:
        runtime = self.settings.runtime
        while not self._stop.is_set():
            self.health.beat()
            messages = _next_batch(consumer, runtime.batch_size, runtime.poll_timeout)
            self._raise_latched()
            processor.handle_batch(messages, self._consumer_error)
            delivery.poll(0)
            delivery.raise_delivery_errors()
            if checkpoint.due():
                checkpoint.commit_in_background()

    def _shutdown(self, consumer: Consumer, delivery: Delivery, checkpoint: Checkpoint) -> None:
        """Finish in-flight work, commit it and leave the group, within ``shutdown_timeout``."""
        budget = self.settings.runtime.shutdown_timeout
        deadline = time.monotonic() + budget
        _log.info("service_stopping", reason=self._stop_reason, pending_outputs=delivery.queued())
        left = delivery.flush(budget * 0.5)
        delivery.raise_delivery_errors()
        checkpoint.commit_with_retries("shutdown", max(deadline - time.monotonic() - 1.0, 0.1))
        if left:
            _log.warning("shutdown_unflushed", records=left)  # their offsets stay uncommitted
        committed = _render(checkpoint.committed)
        # Leave the group (on_revoke finds nothing new to commit); bounded: close() waits for
        # the coordinator, which may be gone.
        self._close(consumer, max(deadline - time.monotonic(), 1.0))
        _log.info("service_stopped", committed=committed)

    def _close_after_failure(self, consumer: Consumer, delivery: Delivery) -> None:
        """Leave the group without committing anything more; drop what is queued."""
        self._close(consumer, self.settings.runtime.shutdown_timeout)
        delivery.flush(0)

    @staticmethod
    def _close(consumer: Consumer, timeout: float) -> None:
        try:
            call_with_timeout("consumer_close", consumer.close, timeout)
        except (KafkaException, RuntimeError, TimedOut) as err:
            _log.warning("consumer_close_failed", error=str(err))

    # -- callbacks (all run inside consume/poll/flush on the loop thread) -----------------------

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assigned = [(p.topic, p.partition) for p in partitions]
        self._tracker.assign(assigned)
        self._rebalanced("assign", assigned)

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Flush, then commit the revoked partitions' acknowledged work, within the budget."""
        revoked = [(p.topic, p.partition) for p in partitions]
        try:
            if not self._failed and self._delivery is not None and self._checkpoint is not None:
                budget = self.settings.runtime.revoke_timeout
                deadline = time.monotonic() + budget
                left = self._delivery.flush(budget * 0.6)
                self._forget_window_if(left > 0)
                self._checkpoint.commit_with_retries(
                    "revoke", max(deadline - time.monotonic(), 0.1), revoked, in_callback=True
                )
        except BaseException as err:  # latched, raised by the loop
            self._latch(err)
        finally:
            self._drop(revoked)
            self._rebalanced("revoke", revoked)

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions already owned by someone else: nothing may be committed for them."""
        lost = [(p.topic, p.partition) for p in partitions]
        self._forget_window_if(self._delivery is not None and self._delivery.queued() > 0)
        self._drop(lost)
        self._rebalanced("lost", lost)

    def _drop(self, partitions: list[Partition]) -> None:
        self._tracker.revoke(partitions)
        if self._checkpoint is not None:
            self._checkpoint.forget(partitions)

    def _forget_window_if(self, unflushed: bool) -> None:
        """Outputs still queued for partitions we give up: if we get them back, the repeats
        must be produced again rather than suppressed by the window (see
        auditstream.detections.alert_window)."""
        if unflushed and self._processor is not None:
            pipeline = self._processor.pipeline
            pipeline.window = RecentAlerts(pipeline.window.capacity)
            _log.warning("alert_window_reset", reason="partitions given up with output in flight")

    def _rebalanced(self, kind: str, partitions: list[Partition]) -> None:
        self.metrics.rebalances.labels(kind).inc()
        owned = len(self._tracker.partitions)
        self.metrics.assigned.set(owned)
        self.health.assigned = owned
        if kind == "assign":
            self.health.broker_reachable = True
        _log.info(_REBALANCE_EVENTS[kind], partitions=_render_list(partitions), owned=owned)

    def _on_error(self, error: KafkaError) -> None:
        """Client-level errors. librdkafka retries transport errors itself (and its own log
        lines say so, throttled): only a change of reachability is worth a line here."""
        if error.fatal():
            self._latch(FatalClientError(f"{error.name()}: {error.str()}"))
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            if self.health.broker_reachable:
                _log.warning("brokers_unreachable", detail=error.str())
            self.health.broker_reachable = False
        elif error.code() != KafkaError._TRANSPORT:
            _log.warning("kafka_error", code=error.name(), detail=error.str())

    def _on_stats(self, text: str) -> None:
        lag, up = parse_statistics(text)
        self.metrics.lag.update(lag)
        if up and not self.health.broker_reachable:
            _log.info("brokers_reachable")
        self.health.broker_reachable = up

    def _consumer_error(self, error: KafkaError) -> None:
        if error.fatal():
            raise FatalClientError(f"{error.name()}: {error.str()}")
        _log.warning("consume_error", code=error.name(), detail=error.str())

    def _latch(self, err: BaseException) -> None:
        if self._failure is None:
            self._failure = err

    def _raise_latched(self) -> None:
        if self._failure is not None:
            raise self._failure


def _next_batch(consumer: Consumer, size: int, timeout: float) -> list[Message]:
    """Up to ``size`` records without waiting for a batch to fill: what the consumer has queued
    already; if nothing, wait up to ``timeout`` for one record, then take what came with it.

    ``consume(size, timeout)`` alone returns only when ``size`` records are there or ``timeout``
    has passed, so below ``size / timeout`` records/s each one would wait up to ``timeout``.
    """
    batch = consumer.consume(num_messages=size, timeout=0)
    if not batch:
        batch = consumer.consume(num_messages=1, timeout=timeout)  # idle: blocks, no spinning
        if batch and size > 1:
            batch.extend(consumer.consume(num_messages=size - 1, timeout=0))
    return batch


def _render(offsets: dict[Partition, int]) -> dict[str, int]:
    return {
        f"{topic}[{partition}]": offset for (topic, partition), offset in sorted(offsets.items())
    }


def _render_list(partitions: list[Partition]) -> list[str]:
    return [f"{topic}[{partition}]" for topic, partition in sorted(partitions)]
