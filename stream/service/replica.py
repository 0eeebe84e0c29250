"""``auditstream run``: the long-lived consumer service, one replica of a consumer group.

The data path, top to bottom (:meth:`Service._loop`): ``consume`` a batch (what has arrived,
without waiting for it to fill: see :func:`auditstream.stream.kafka.clients.next_batch`) →
:class:`MessageProcessor` (pipeline, alerts and dead letters produced, offsets tracked) →
``poll`` the producer → :class:`Checkpoint` on its interval. Rebalance callbacks hand the
partitions to the checkpoint, which flushes and commits what is revoked within a bounded budget.
A stop request (SIGTERM/SIGINT, or :meth:`Service.stop`) ends the loop between batches (or a
wait for room in a full producer queue, leaving that message uncommitted); then the producer is
flushed, the acknowledged work committed and the clients closed. A failure reported while doing
so (a delivery error, a fatal client error) still makes the exit code 4.

This module holds the lifecycle only: the clients are made in
:mod:`auditstream.stream.kafka.clients`, the data path in :mod:`.assembly`, the alert format in
:mod:`auditstream.stream.sinks.encoders`, the client callbacks in :mod:`.callbacks`, the HTTP
endpoint in :mod:`auditstream.stream.health`.

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
from confluent_kafka import Consumer, KafkaException, Producer

from auditstream.detections.ruleset.languages import LoadedRule
from auditstream.stream.errors import SettingsError, StartupError, StreamError
from auditstream.stream.health import Health, serving
from auditstream.stream.kafka.alert_log import AlertLog
from auditstream.stream.kafka.checkpoint import Checkpoint
from auditstream.stream.kafka.clients import (
    await_topics,
    close_consumer,
    create_clients,
    next_batch,
)
from auditstream.stream.kafka.config import GROUP_ONLY, consumer_config
from auditstream.stream.kafka.delivery import Delivery, ProduceAbandoned
from auditstream.stream.kafka.offset_tracker import OffsetTracker, Partition
from auditstream.stream.kafka.transactions import Transactions
from auditstream.stream.metrics import Metrics
from auditstream.stream.processor import MessageProcessor
from auditstream.stream.service.assembly import DataPath, assemble
from auditstream.stream.service.callbacks import ClientEvents, rebalance_callbacks
from auditstream.stream.service.exactly_once import TransactionalBatches
from auditstream.stream.service.heap import pauses_observed, settle_heap
from auditstream.stream.settings_types import Settings
from auditstream.stream.sinks.encoders import encoder_for
from auditstream.stream.state.stage import StatefulStage

EXIT_OK: Final = 0
EXIT_CONFIG: Final = 2
EXIT_FATAL: Final = 4
TRANSACTION_TIMEOUT: Final = 10.0
"""Seconds a transactional call may take (under the producer's 15 s transaction timeout)."""
_log = structlog.get_logger("auditstream.service")


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
        self._tracker = OffsetTracker()
        self._events = ClientEvents(self.health, self.metrics)

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
        with (
            serving(self.settings.http, self.health, self.metrics.registry) as endpoint,
            pauses_observed(self.metrics.gc_pauses),
        ):
            self.http_port = endpoint.port
            _log.info(
                "service_starting", settings=self.settings.describe(), http_port=endpoint.port
            )
            try:
                self._run()
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
            return EXIT_OK

    # -- lifecycle ------------------------------------------------------------------------------

    def _run(self) -> None:
        events = self._events
        consumer, producer = create_clients(
            self.settings.kafka, events.on_error, events.on_stats, events.on_commit
        )
        delivery = Delivery(producer, stop=self._stop, metrics=self.metrics)
        path: DataPath | None = None
        history: AlertLog | None = None
        try:
            self._await_topics(consumer)
            path = self._assemble(consumer, delivery)
            if path.stage is not None:
                self._await_topics(consumer, path.stage)
            batches = self._transactional_batches(producer, consumer, delivery, path)
            history = self._alert_history(path)
            _log.info("heap_settled", frozen_objects=settle_heap())
            self._subscribe(consumer, path)
            self.started.set()
            self._loop(consumer, path.processor, delivery, path.checkpoint, batches, history)
            self._shutdown(consumer, delivery, path.checkpoint)
            if path.stage is not None:
                path.stage.tasks.release_all(clean=True)  # finished and committed
        except BaseException:
            if path is not None:
                path.checkpoint.halt()  # after a failure nothing is committed any more
                if path.stage is not None:
                    path.stage.tasks.release_all(clean=False)
            # Leave the group without committing anything more; drop what is queued.
            close_consumer(consumer, self.settings.runtime.shutdown_timeout)
            delivery.flush(0)
            raise
        finally:
            if history is not None:
                history.close()
        self._raise_late_failures(delivery)

    def _await_topics(self, consumer: Consumer, stage: StatefulStage | None = None) -> None:
        settings = self.settings
        topics = (
            (settings.topics.alerts, settings.topics.dead_letters)
            if stage is None
            else (stage.repartition, stage.changelog)
        )
        await_topics(
            consumer,
            topics,
            bootstrap_servers=settings.kafka.bootstrap_servers,
            deadline=settings.runtime.startup_timeout,
            abort=self._stop,
        )
        self.health.broker_reachable = True

    def _assemble(self, consumer: Consumer, delivery: Delivery) -> DataPath:
        return assemble(
            self.settings,
            self._rules,
            consumer=consumer,
            delivery=delivery,
            tracker=self._tracker,
            metrics=self.metrics,
            encoder=encoder_for(self.settings, abort=self._stop),
        )

    def _transactional_batches(
        self, producer: Producer, consumer: Consumer, delivery: Delivery, path: DataPath
    ) -> TransactionalBatches | None:
        """Exactly-once: the transactional producer registered (fencing a former instance of
        this replica) and the step that runs each batch in a transaction; ``None`` otherwise."""
        if self.settings.kafka.delivery != "exactly-once":
            return None
        transactions = Transactions(producer, consumer, self.metrics, timeout=TRANSACTION_TIMEOUT)
        transactions.start(self.settings.runtime.startup_timeout)
        return TransactionalBatches(
            transactions, path.processor, delivery, self._tracker, path.pipeline.window
        )

    def _alert_history(self, path: DataPath) -> AlertLog | None:
        """The alert topic's recent ids, read into the window now and after each assignment, so
        that a restarted replica, or one taking over a partition, does not alert a second time
        on the later stages of an exec whose alert is already out (see
        :mod:`auditstream.stream.kafka.alert_log`)."""
        horizon = self.settings.alerts.window_restore
        if horizon <= 0:
            return None
        config = {
            key: value
            for key, value in consumer_config(self.settings.kafka).items()
            if key not in GROUP_ONLY
        }
        history = AlertLog(
            config, self.settings.topics.alerts, horizon=horizon,
            remember=path.pipeline.window.record,
        )  # fmt: skip
        read = history.catch_up(self.settings.runtime.revoke_timeout)
        _log.info("alert_window_restored", alert_ids=read, horizon_s=horizon)
        return history

    def _subscribe(self, consumer: Consumer, path: DataPath) -> None:
        topics = self.settings.topics
        subscription = [topics.pattern] if topics.pattern else list(topics.inputs)
        stage = path.stage
        if stage is not None:
            subscription.append(stage.repartition)
        callbacks = rebalance_callbacks(
            path.checkpoint,
            self._events,
            None if stage is None else stage.tasks,
            "" if stage is None else stage.repartition,
        )
        consumer.subscribe(subscription, **callbacks)
        _log.info("subscribed", topics=subscription, group_id=self.settings.kafka.group_id)

    def _loop(
        self,
        consumer: Consumer,
        processor: MessageProcessor,
        delivery: Delivery,
        checkpoint: Checkpoint,
        batches: TransactionalBatches | None = None,
        history: AlertLog | None = None,
    ) -> None:
        runtime = self.settings.runtime
        events = self._events
        owned = set(self._tracker.partitions)
        while not self._stop.is_set():
            self.health.beat()
            wait = checkpoint.seconds_until_due(runtime.poll_timeout)
            messages = next_batch(consumer, runtime.batch_size, wait)
            events.raise_latched()
            if history is not None and not owned.issuperset(self._tracker.partitions):
                started = time.monotonic()  # taken over partitions: their alerts first
                read = history.catch_up(runtime.revoke_timeout)
                _log.info("alert_window_caught_up", alert_ids=read,
                          seconds=round(time.monotonic() - started, 3))  # fmt: skip
            owned = set(self._tracker.partitions)
            try:
                if batches is not None:
                    batches.run(messages, events.consumer_error)
                    continue
                processor.handle_batch(messages, events.consumer_error)
            except ProduceAbandoned:  # stopped while the producer queue was full
                _log.warning("produce_abandoned", reason=self._stop_reason)
                return
            delivery.poll(0)
            self.metrics.outputs_pending.set(delivery.queued())
            delivery.raise_delivery_errors()
            if checkpoint.due():
                checkpoint.commit_in_background()

    def _shutdown(self, consumer: Consumer, delivery: Delivery, checkpoint: Checkpoint) -> None:
        """Finish in-flight work, commit it and leave the group, within ``shutdown_timeout``."""
        budget = self.settings.runtime.shutdown_timeout
        deadline = time.monotonic() + budget
        _log.info("service_stopping", reason=self._stop_reason, pending_outputs=delivery.queued())
        checkpoint.finish(budget)
        committed = _render(checkpoint.committed)
        # Leave the group (on_revoke finds nothing new to commit); bounded.
        close_consumer(consumer, max(deadline - time.monotonic(), 1.0))
        _log.info("service_stopped", committed=committed)

    def _raise_late_failures(self, delivery: Delivery) -> None:
        """What the callbacks latched during the final flush and close (a fatal client error, a
        delivery error): the replica stopped, but not cleanly, and exits 4."""
        self._events.raise_latched()
        delivery.poll(0)
        delivery.raise_delivery_errors()


def _render(offsets: dict[Partition, int]) -> dict[str, int]:
    return {
        f"{topic}[{partition}]": offset for (topic, partition), offset in sorted(offsets.items())
    }
