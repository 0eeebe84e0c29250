"""``/metrics``, ``/healthz`` and ``/readyz`` over HTTP, on a thread beside the loop.

- ``/healthz`` (liveness): 200 while the processing loop has turned within ``stale_after``
  seconds. A stuck loop (a hung call, a dead thread) fails it and the orchestrator restarts the
  replica. A broker outage does not fail it: the loop keeps turning while it waits.
- ``/readyz`` (readiness): 200 when the consumer owns at least one partition, a broker
  connection is up (from librdkafka statistics and error callbacks) and the group coordinator
  has not refused the last commits with errors no retry cures (see
  :mod:`auditstream.stream.kafka.checkpoint`).
- ``/metrics``: the service's own Prometheus registry.

Every connection has a thread; a connection that sends nothing for :data:`IDLE_TIMEOUT` seconds
(while its request is read, or its answer written) is closed, so that idle or stalled clients
cannot pin threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from auditstream.stream.settings_types import HttpSettings

TEXT: Final = "text/plain; charset=utf-8"
IDLE_TIMEOUT: Final = 5.0
"""Seconds a connection may stay silent. Probes and scrapes send their request at once (the
kubelet gives up after 1 s by default); a client this slow is not one of them."""


class Health:
    """Loop heartbeat, partition count, broker reachability and whether commits are blocked;
    safe to read from any thread."""

    def __init__(self, stale_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stale_after = stale_after
        self._clock = clock
        self._last_beat: float | None = None
        self.assigned = 0
        self.broker_reachable = False
        self.commits_blocked: str | None = None  # why, while commits are refused for good

    def beat(self) -> None:
        self._last_beat = self._clock()

    def stop_beating(self) -> None:
        self._last_beat = None

    def alive(self) -> tuple[bool, str]:
        if self._last_beat is None:
            return False, "loop not running"
        age = self._clock() - self._last_beat
        if age > self.stale_after:
            return False, f"loop stuck for {age:.1f}s"
        return True, f"loop turned {age:.1f}s ago"

    def ready(self) -> tuple[bool, str]:
        if not self.assigned:
            return False, "no partitions assigned"
        if not self.broker_reachable:
            return False, "no broker reachable"
        if self.commits_blocked is not None:
            return False, f"commits refused: {self.commits_blocked}"
        return True, f"{self.assigned} partitions assigned"


class HttpEndpoint:
    """A small HTTP server for probes and scrapes; ``port`` is the bound port (0 picks one)."""

    def __init__(
        self,
        host: str,
        port: int,
        health: Health,
        registry: CollectorRegistry,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        handler = _handler(health, registry)
        handler.timeout = idle_timeout  # StreamRequestHandler sets it on each connection
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="auditstream-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HttpEndpoint:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def serving(
    settings: HttpSettings, health: Health, registry: CollectorRegistry
) -> Iterator[HttpEndpoint]:
    """The endpoint, up for the duration of the block; when it ends the heartbeat stops first,
    so that a probe during the stop already reports the loop as not running."""
    endpoint = HttpEndpoint(settings.host, settings.port, health, registry).start()
    try:
        yield endpoint
    finally:
        health.stop_beating()
        endpoint.stop()


def _handler(health: Health, registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            elif path in ("/healthz", "/readyz"):
                ok, detail = health.alive() if path == "/healthz" else health.ready()
                self._send(200 if ok else 503, TEXT, f"{'ok' if ok else 'fail'}: {detail}\n")
            else:
                self._send(404, TEXT, "not found\n")

        def _send(self, status: int, content_type: str, body: bytes | str) -> None:
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            """Probes every few seconds would drown the logs."""

    return Handler
