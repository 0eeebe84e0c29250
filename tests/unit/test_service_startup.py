"""Start-up without a broker (a closed port, no mock): bounded waiting, exit codes, stop."""

from __future__ import annotations

import threading
import time

from auditstream.detections.ruleset.loader import load_rules
from auditstream.stream.service import EXIT_CONFIG, EXIT_FATAL, EXIT_OK, Service
from auditstream.stream.settings import load_settings
from devtools.jvm.process import free_ports

RULES = load_rules([]).rules


def service_without_broker(startup_timeout: float) -> Service:
    (port,) = free_ports(1)  # nothing listens there
    env = {
        "AUDITSTREAM_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "AUDITSTREAM_INPUT_TOPICS": "audit",
        "AUDITSTREAM_ALERT_TOPIC": "alerts",
        "AUDITSTREAM_DEAD_LETTER_TOPIC": "dlq",
        "AUDITSTREAM_HTTP_PORT": "0",
        "AUDITSTREAM_STARTUP_TIMEOUT": str(startup_timeout),
        "AUDITSTREAM_KAFKA__LOG_LEVEL": "0",
    }
    return Service(load_settings(None, env), RULES)


def test_no_broker_within_the_startup_timeout_is_fatal() -> None:
    service = service_without_broker(startup_timeout=1.0)
    started = time.monotonic()
    assert service.run() == EXIT_FATAL
    assert time.monotonic() - started < 15


def test_a_stop_while_waiting_for_the_broker_exits_0_promptly() -> None:
    service = service_without_broker(startup_timeout=120.0)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(service.run()), daemon=True)
    thread.start()
    time.sleep(1.0)
    stopped = time.monotonic()
    service.stop("test")
    thread.join(15)
    assert not thread.is_alive()
    assert result == [EXIT_OK]
    assert time.monotonic() - stopped < 10


def test_a_property_librdkafka_does_not_know_is_a_configuration_error() -> None:
    bad = load_settings(
        None,
        {
            "AUDITSTREAM_BOOTSTRAP_SERVERS": "127.0.0.1:9",
            "AUDITSTREAM_INPUT_TOPICS": "audit",
            "AUDITSTREAM_ALERT_TOPIC": "alerts",
            "AUDITSTREAM_DEAD_LETTER_TOPIC": "dlq",
            "AUDITSTREAM_HTTP_PORT": "0",
            "AUDITSTREAM_KAFKA__NO_SUCH_PROPERTY": "1",
        },
    )
    assert Service(bad, RULES).run() == EXIT_CONFIG
