"""The one exception root of the streaming runtime (:mod:`stream`).

Input problems are not errors here: they are :class:`auditstream.detections.errors.MalformedEvent`
and become
dead letters. These are configuration and infrastructure failures, which stop the service loudly
(see the exit codes in :mod:`auditstream.stream.service`).
"""

from __future__ import annotations


class StreamError(Exception):
    """Root of every error raised by the streaming runtime."""


class SettingsError(StreamError):
    """The service configuration is invalid; ``source`` names the file, variable or flag."""

    def __init__(self, message: str, source: str | None = None) -> None:
        self.source = source
        super().__init__(f"{source}: {message}" if source else message)


class DeliveryError(StreamError):
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


class FatalClientError(StreamError):
    """librdkafka reported a fatal error (e.g. the idempotent producer was fenced)."""


class StartupError(StreamError):
    """A dependency (broker, topics, registry) was not usable within the start-up deadline."""
