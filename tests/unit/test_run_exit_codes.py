"""``auditstream run`` exits 2 for configuration it cannot use, naming the setting: here an
HTTP address that cannot be listened on (it escaped as a traceback with exit 1)."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from auditstream.stream.cli.main import main


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
def test_an_http_port_in_use_exits_2_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AUDITSTREAM_CONFIG", "AUDITSTREAM_HTTP_PORT", "AUDITSTREAM_HTTP_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AUDITSTREAM_LOG_FORMAT", "json")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(
            ["run", "--bootstrap-servers", "127.0.0.1:9", "--input-topic", "audit",
             "--alert-topic", "alerts", "--dead-letter-topic", "dlq", "--http-port", str(port)]
        )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "invalid_settings" in err
    assert f"http_host, http_port (127.0.0.1:{port}): cannot listen" in err


def test_scan_with_a_window_below_1_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It escaped as a ValueError traceback from the alert window, with exit 1."""
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(SystemExit) as caught:
        main(["scan", "--window", "0", str(empty)])
    assert caught.value.code == 2
    assert "--window: must be at least 1, not 0" in capsys.readouterr().err
