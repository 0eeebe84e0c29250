"""The errors of the streaming runtime (:mod:`stream`), in two families that are handled apart.

- :class:`StreamError` is the root of what stops the service loudly: :class:`SettingsError`
  (invalid configuration, exit 2) and :class:`InfrastructureError` (broker, registry, lost
  output, a call that never returned: exit 4, see :mod:`auditstream.stream.service`). Some of
  them are retried first (bounded) or held (a failed commit); none is about one input record.
- :class:`DataError` is the dead-letter family of the runtime, deliberately *not* a
  :class:`StreamError`: the processor turns it into a dead letter with its ``reason`` and goes on.
  Its sibling from the detection package is :class:`auditstream.detections.errors.MalformedEvent`
  (input that is not audit data); both carry ``reason`` and ``detail``.
"""

from __future__ import annotations


class StreamError(Exception):
    """Root of every error that stops the streaming runtime (never raised for one bad record)."""


class SettingsError(StreamError):
    """The service configuration is invalid; ``source`` names the file, variable or flag."""

    def __init__(self, message: str, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class InfrastructureError(StreamError):
    """Kafka, the registry or a client call failed us; retried where that helps, else fatal."""


class DeliveryError(InfrastructureError):
    """The broker did not acknowledge an output record (alert or dead letter).

    Latched by the delivery callback and raised before every commit, so that no offset is ever
    committed past output that was lost; the replica then exits non-zero and restarts.
    """

    def __init__(self, topic: str, code: str, reason: str, *, fatal: bool = False) -> None:
        self.topic = topic
        self.code = code
        self.reason = reason
        self.fatal = fatal
        super().__init__(f"delivery to {topic} failed: {code}: {reason}")


class FatalClientError(InfrastructureError):
    """librdkafka reported a fatal error (e.g. the idempotent producer was fenced)."""


class StartupError(InfrastructureError):
    """A dependency (broker, topics, registry) was not usable within the start-up deadline."""


class CommitFailed(InfrastructureError):
    """A commit did not (fully) succeed; its offsets are held for the next attempt."""

    def __init__(self, detail: str, *, retriable: bool) -> None:
        self.retriable = retriable
        super().__init__(detail)


class TimedOut(InfrastructureError):
    """A blocking client call did not return within its budget (it may still complete later)."""


class DataError(Exception):
    """A record the runtime cannot turn into output: it becomes a dead letter, the stream goes on.

    ``reason`` is the stable code of the ``auditstream.dlq.reason`` header and of the metrics.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(detail)
