"""The HTTP endpoint closes connections that send nothing (issue #16, defect 9): each connection
has a thread, and without a socket timeout an idle one pins its thread for good. Real sockets on
loopback, the endpoint as the service builds it (default timeout)."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from auditstream.stream.health import Health, HttpEndpoint
from auditstream.stream.metrics import Metrics

WAIT_FOR_CLOSE = 15.0  # seconds: well above the endpoint's idle timeout


@pytest.fixture
def endpoint() -> Iterator[HttpEndpoint]:
    health = Health(stale_after=10.0)
    health.beat()
    served = HttpEndpoint("127.0.0.1", 0, health, Metrics().registry).start()
    try:
        yield served
    finally:
        served.stop()


def connection_threads() -> list[threading.Thread]:
    """The server's per-connection threads (socketserver names them by their target)."""
    return [t for t in threading.enumerate() if "process_request_thread" in t.name]


def healthz(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        return int(response.status)


def closed_by_server(sock: socket.socket) -> float:
    """Seconds until the server closed the connection (recv gives b""); fails past the wait."""
    started = time.monotonic()
    sock.settimeout(WAIT_FOR_CLOSE)
    try:
        data = sock.recv(1024)
    except TimeoutError:
        pytest.fail(f"the server kept a silent connection open for {WAIT_FOR_CLOSE} s")
    assert data == b"", data  # a timed-out request gets no answer, just the close
    return time.monotonic() - started


def test_a_connection_that_sends_nothing_is_closed_and_others_are_served(
    endpoint: HttpEndpoint,
) -> None:
    before = len(connection_threads())
    silent = socket.create_connection(("127.0.0.1", endpoint.port), timeout=5)
    half = socket.create_connection(("127.0.0.1", endpoint.port), timeout=5)
    half.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never ends its headers
    try:
        time.sleep(0.3)
        assert len(connection_threads()) == before + 2  # each one holds a thread meanwhile
        assert healthz(endpoint.port) == 200  # served while the others idle
        assert closed_by_server(silent) < WAIT_FOR_CLOSE
        assert closed_by_server(half) < WAIT_FOR_CLOSE
    finally:
        silent.close()
        half.close()
    deadline = time.monotonic() + 5
    while len(connection_threads()) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(connection_threads()) == before  # the threads are given back
    assert healthz(endpoint.port) == 200
