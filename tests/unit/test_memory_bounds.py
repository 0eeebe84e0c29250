"""Settings that would let memory grow without bound are refused at start-up, and the producer
queue is capped by default (issue #16, defect 7)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from confluent_kafka import Producer

from auditstream.stream.cli.main import main
from auditstream.stream.errors import SettingsError
from auditstream.stream.kafka.config import producer_config
from auditstream.stream.settings import load_settings
from devtools.jvm.process import free_ports

MINIMAL = {
    "AUDITSTREAM_BOOTSTRAP_SERVERS": "127.0.0.1:9",
    "AUDITSTREAM_INPUT_TOPICS": "audit",
    "AUDITSTREAM_ALERT_TOPIC": "alerts",
    "AUDITSTREAM_DEAD_LETTER_TOPIC": "dlq",
}
MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AUDITSTREAM_PRODUCER__MESSAGE_TIMEOUT_MS": "0"}, "message.timeout.ms=0 is refused"),
        ({"AUDITSTREAM_KAFKA__MESSAGE_TIMEOUT_MS": "0"}, "message.timeout.ms=0 is refused"),
        ({"AUDITSTREAM_PRODUCER__DELIVERY_TIMEOUT_MS": "0"}, "delivery.timeout.ms=0 is refused"),
        ({"AUDITSTREAM_PRODUCER__MESSAGE_TIMEOUT_MS": "86400000"}, "between 1 and 900000"),
        (
            {"AUDITSTREAM_PRODUCER__QUEUE_BUFFERING_MAX_MESSAGES": "0"},
            "queue.buffering.max.messages=0 is refused",
        ),
        (
            {"AUDITSTREAM_PRODUCER__QUEUE_BUFFERING_MAX_KBYTES": "1048576"},  # librdkafka's 1 GiB
            "queue.buffering.max.kbytes=1048576 is refused",
        ),
        ({"AUDITSTREAM_PRODUCER__MESSAGE_TIMEOUT_MS": "soon"}, "expected an integer"),
        (  # a queue that cannot hold two of the largest records the producer accepts
            {
                "AUDITSTREAM_PRODUCER__QUEUE_BUFFERING_MAX_KBYTES": "4096",
                "AUDITSTREAM_KAFKA__MESSAGE_MAX_BYTES": str(4 * MIB),
            },
            "[producer] queue.buffering.max.kbytes: the producer queue (4194304 bytes) must hold",
        ),
    ],
)
def test_unbounded_producer_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(None, {**MINIMAL, **env})
    assert message in str(caught.value)


def test_bounded_values_are_accepted() -> None:
    settings = load_settings(
        None,
        {
            **MINIMAL,
            "AUDITSTREAM_PRODUCER__MESSAGE_TIMEOUT_MS": "120000",
            "AUDITSTREAM_PRODUCER__QUEUE_BUFFERING_MAX_KBYTES": "262144",
        },
    )
    config = producer_config(settings.kafka)
    assert config["message.timeout.ms"] == "120000"
    assert config["queue.buffering.max.kbytes"] == "262144"  # overridable within the bound


def test_the_producer_queue_is_capped_at_64_mib_by_default() -> None:
    """librdkafka itself enforces the cap: fill a real producer whose broker never answers."""
    config = producer_config(load_settings(None, MINIMAL).kafka)
    assert config["queue.buffering.max.kbytes"] == 64 * 1024
    (port,) = free_ports(1)
    producer = Producer({**config, "bootstrap.servers": f"127.0.0.1:{port}", "log_level": 0})
    record = b"x" * 4096
    queued = 0
    try:
        while queued < 256 * MIB:
            try:
                producer.produce("dlq", value=record)
            except BufferError:
                break
            queued += len(record)
    finally:
        producer.purge()
        producer.flush(0)
    assert 60 * MIB <= queued <= 64 * MIB, f"{queued / MIB:.1f} MiB queued before BufferError"


@pytest.fixture
def restore_process_state() -> Iterator[None]:
    """``auditstream run`` configures logging and signal handlers for the process."""
    saved_signals = {n: signal.getsignal(n) for n in (signal.SIGTERM, signal.SIGINT)}
    saved_logging = structlog.get_config()
    yield
    for number, handler in saved_signals.items():
        signal.signal(number, handler)
    structlog.configure(**saved_logging)


@pytest.mark.usefixtures("restore_process_state")
def test_run_refuses_an_infinite_message_timeout_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {**MINIMAL, "AUDITSTREAM_HTTP_PORT": "0"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AUDITSTREAM_STARTUP_TIMEOUT", "1")  # no broker: fail fast if accepted
    config = tmp_path / "auditstream.toml"
    config.write_text('[producer]\n"message.timeout.ms" = 0\n', encoding="utf-8")
    assert main(["run", "--config", str(config)]) == 2
    assert (
        "[producer] message.timeout.ms: message.timeout.ms=0 is refused" in capsys.readouterr().err
    )
