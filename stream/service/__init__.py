"""``auditstream run``: the long-lived consumer service (see :mod:`.replica` for the loop)."""

from auditstream.stream.service.replica import EXIT_CONFIG, EXIT_FATAL, EXIT_OK, Service

__all__ = ["EXIT_CONFIG", "EXIT_FATAL", "EXIT_OK", "Service"]
