"""Plumbing shared by the Kafka and registry harnesses: ports, the download cache, and JVMs.

Stdlib only: `compose/kafka/local-kafka` runs this with whatever `python3` is on PATH, before the
project's venv exists.

The one promise this module keeps is *no orphan JVMs*. Every JVM runs in its own process group
(so a Ctrl-C meant for pytest does not reach it half-way through a test, and a stop reaches every
thread of it), is recorded in a module-level set that an `atexit` hook empties, and on Linux asks
the kernel to SIGKILL it if the Python thread that started it dies, which covers the cases where
Python itself is killed and neither teardown nor `atexit` runs.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

REPO_ROOT = Path(__file__).resolve().parents[2]

_PR_SET_PDEATHSIG = 1


class HarnessError(RuntimeError):
    """A tool is missing, a download failed, or a JVM died or never became ready."""


def cache_dir() -> Path:
    """Root of the download cache, outside git so a clean clone reuses it across runs."""
    root = os.environ.get("AUDITSTREAM_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "auditstream"


def free_ports(count: int) -> list[int]:
    """Return `count` distinct loopback ports the kernel considers free right now.

    Every socket stays bound until all ports are picked, so the list has no duplicates. A port can
    still be taken by someone else before the JVM binds it; a start then fails loudly, it never
    talks to a stranger's server, which is the trade-off every "port 0" harness makes.
    """
    ports: list[int] = []
    with contextlib.ExitStack() as stack:
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
    return ports


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def find_tool(name: str) -> str:
    """Absolute path of an executable on PATH, or a HarnessError that says what to install."""
    path = shutil.which(name)
    if path is None:
        raise HarnessError(f"`{name}` is not on PATH; the real-Kafka tests need Java 17+ and Maven")
    return path


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    alive: Callable[[], None] | None = None,
    interval: float = 0.2,
) -> None:
    """Poll `check` until it is true; raise HarnessError after `timeout` seconds.

    `alive` is called before every attempt and should raise when the process being waited for has
    died: a crashed JVM then fails the wait at once with its log, not after the full timeout.
    """
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        if check():
            return
        if time.monotonic() >= deadline:
            raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def cached_dir(dest: Path, build: Callable[[Path], None]) -> Path:
    """Return `dest`, building it first when it does not exist.

    `build` fills a fresh temporary sibling of `dest`, which is then renamed onto `dest` in one
    step: an interrupted download leaves no half-filled cache that later runs would trust. If a
    concurrent run renamed its copy first, ours is dropped and theirs, equally complete, is used.
    """
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        build(staging)
        try:
            staging.rename(dest)
        except OSError:
            if not dest.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def maven_copy_dependencies(pom: Path, out: Path) -> None:
    """Copy the runtime dependencies declared in `pom` into `out` (Maven Central only).

    Maven runs in its own process group, which is killed if we are interrupted: `mvn` is a
    shell script whose JVM would otherwise finish the download into a directory already gone.
    """
    cmd = [
        find_tool("mvn"),
        "-q",
        "-B",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={out}",
        "-DincludeScope=runtime",
        "-f",
        str(pom),
    ]
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    ) as mvn:
        try:
            output, _ = mvn.communicate()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(mvn.pid, signal.SIGKILL)
            raise
    if mvn.returncode != 0:
        raise HarnessError(f"{' '.join(cmd)} exited with {mvn.returncode}:\n{output}")


def tail(path: Path, lines: int = 60) -> str:
    """The last `lines` lines of a text file, or a note saying it does not exist (yet)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


class Server:
    """A server the harness runs (KafkaCluster, SchemaRegistry); `with` starts and stops it."""

    def start(self) -> object:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def check_alive(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec hook asking Linux to SIGKILL the child when its parent thread exits.

    The libc function is looked up here, before the fork, so the child only makes one foreign
    call. Note the kernel's rule: the signal fires when the *thread* that forked dies, so start
    JVMs from a long-lived thread (pytest and the CLI use the main thread).
    """
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    prctl = ctypes.CDLL(libc_name, use_errno=True).prctl
    sigkill = int(signal.SIGKILL)

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, sigkill)

    return hook


class JvmProcess:
    """One JVM in its own process group whose stdout and stderr go to a log file."""

    def __init__(self, name: str, argv: Sequence[str], *, log_path: Path, cwd: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Launch the JVM; it is registered for the `atexit` sweep before this returns."""
        if self.running:
            raise HarnessError(f"{self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._popen = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent(),  # noqa: PLW1509 - only a prctl call, see its doc
            )
        _LIVE.add(self)

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self._popen is None else self._popen.pid

    def check_alive(self) -> None:
        """Raise HarnessError, with the end of the log, when the JVM has exited."""
        if self._popen is not None and self._popen.poll() is not None:
            raise HarnessError(
                f"{self.name} exited with {self._popen.returncode}; end of {self.log_path}:\n"
                f"{tail(self.log_path, 40)}"
            )

    def send(self, sig: signal.Signals) -> None:
        """Send `sig` to the JVM's whole process group; a no-op when it has already exited."""
        if self.running and self._popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._popen.pid, sig)

    def wait(self, timeout: float) -> None:
        """Wait for exit; SIGKILL the group after `timeout` seconds. Always reaps the child."""
        if self._popen is None:
            return
        try:
            self._popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.send(signal.SIGKILL)
            self._popen.wait(timeout=30)
        _LIVE.discard(self)

    def stop(self, *, kill: bool = False, timeout: float = 20.0) -> None:
        """SIGTERM (or SIGKILL with `kill=True`) and wait; escalates to SIGKILL on timeout."""
        self.send(signal.SIGKILL if kill else signal.SIGTERM)
        self.wait(timeout)


def stop_all(processes: Iterable[JvmProcess], *, timeout: float = 20.0) -> None:
    """SIGTERM every process first, then wait for each: n JVMs shut down in parallel."""
    procs = list(processes)
    for proc in procs:
        proc.send(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        proc.wait(max(0.1, deadline - time.monotonic()))


_LIVE: set[JvmProcess] = set()


@atexit.register
def _kill_leftovers() -> None:
    """Last line of defence for code paths that skipped `stop()`: SIGKILL, no grace period."""
    for proc in list(_LIVE):
        proc.stop(kill=True, timeout=10)
