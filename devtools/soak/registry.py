"""A Schema Registry the soak can kill and start again at the same address, with its schemas.

:class:`devtools.jvm.registry.SchemaRegistry` keeps its schemas in memory and picks fresh ports
on every ``start()``. A restart that lost every schema or moved the endpoint would be another
fault (a registry whose storage is gone), which no producer can be expected to survive: alerts
framed with a schema id the registry no longer knows cannot be decoded by anyone. A production
registry keeps its storage in a database or in Kafka. So this one keeps it in an H2 database
file (Apicurio's default storage, pointed at a file instead of memory) and relaunches the same
JVM command line: same ports, same schemas, as after a pod restart.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from devtools.jvm.process import HarnessError, wait_until
from devtools.jvm.registry import START_TIMEOUT, SchemaRegistry

__all__ = ["RestartableRegistry"]

_STORAGE_VARIABLE: Final = "APICURIO_DATASOURCE_URL"
"""Apicurio's ``apicurio.datasource.url`` (default ``jdbc:h2:mem:...``), as Quarkus reads it
from the environment."""


class RestartableRegistry(SchemaRegistry):
    """``kill()`` then ``start_again()``: same ports, same log file, same schemas."""

    def __init__(self) -> None:
        super().__init__()
        self._storage: Path | None = None

    def start(self) -> RestartableRegistry:
        self._storage = Path(tempfile.mkdtemp(prefix="auditstream-registry-storage-"))
        with self._file_storage():
            super().start()
        return self

    def stop(self) -> None:
        super().stop()
        if self._storage is not None:
            shutil.rmtree(self._storage, ignore_errors=True)
            self._storage = None

    def kill(self) -> None:
        """SIGKILL the JVM (no graceful shutdown: the registry just disappears)."""
        if self._process is None:
            raise HarnessError("the registry is not started")
        self._process.stop(kill=True)

    def start_again(self, alive: Callable[[], None] | None = None) -> None:
        """Relaunch the same command line; return once it answers ``GET /subjects``."""
        process = self._process
        if process is None:
            raise HarnessError("the registry was never started")
        with self._file_storage():
            process.start()

        def check() -> None:
            if alive is not None:
                alive()
            process.check_alive()

        wait_until(
            self._answers,
            timeout=START_TIMEOUT,
            what=f"the registry at {self.url} after its restart",
            alive=check,
            interval=0.25,
        )

    @contextlib.contextmanager
    def _file_storage(self) -> Iterator[None]:
        """The storage setting in the environment the JVM inherits, only while it is launched
        (the harness builds the command line itself; nothing else is started meanwhile: the
        soak starts every process from one thread)."""
        if self._storage is None:
            raise HarnessError("no storage directory")
        before = os.environ.get(_STORAGE_VARIABLE)
        os.environ[_STORAGE_VARIABLE] = f"jdbc:h2:file:{self._storage / 'registry'}"
        try:
            yield
        finally:
            if before is None:
                del os.environ[_STORAGE_VARIABLE]
            else:
                os.environ[_STORAGE_VARIABLE] = before

    def subjects(self) -> list[str]:
        """The registered subjects now (to show that a restart kept them)."""
        with urllib.request.urlopen(f"{self.url}/subjects", timeout=5) as response:
            return [str(subject) for subject in json.loads(response.read())]

    def _answers(self) -> bool:
        """``GET /subjects`` answers 200."""
        try:
            with urllib.request.urlopen(f"{self.url}/subjects", timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False
